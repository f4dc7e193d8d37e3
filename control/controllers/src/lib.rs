//! capstan-controllers: the scheduler and the controllers of
//! capstan-control — level-triggered loops that read the cluster through
//! kube-rs reflectors (like any other API client, never etcd) and write only
//! the difference between desired and stored state. It must never depend on
//! capstan-apiserver: what both sides agree on is capstan-control-contract.

pub mod clients;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod endpoints_sync;
pub mod gc;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
mod options;
pub mod pods;
pub mod replicas;
pub mod root_ca;
mod run;
pub mod scheduler;
pub mod service_account;

pub use options::{Options, Pem};
pub use run::{run, ControllerError};
