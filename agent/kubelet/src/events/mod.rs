//! Kubernetes Events the kubelet reports about a pod's containers (a failed
//! probe and the kill it causes, restart and image-pull back-off), as
//! `kubectl describe`/`get events` show them. Built here, then correlated
//! (`correlator`: repeats patch one object's count) and sent by one
//! background task (`record`): recording never blocks or fails a pod worker.

pub mod build;
mod correlator;
pub mod record;

pub use record::Recorder;
