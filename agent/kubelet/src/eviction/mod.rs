//! Node-pressure eviction, kubelet's way: every monitoring interval the
//! manager observes the node (memory, filesystems, PIDs, each pod's memory
//! working set), compares the signals with the hard thresholds, publishes
//! the pressure conditions, and under memory, disk or PID pressure evicts
//! one pod (the first in kubelet's order for the starved resource, which
//! is measured per pod only then), then waits for it to be gone before
//! observing again. It asks the pod manager to kill; from containerd it
//! only reads writable-layer usage; it never evicts critical (static)
//! pods.

pub mod decide;
pub mod manager;
pub mod observe;
pub mod rank;
pub mod report;
pub mod settings;
pub mod threshold;
pub mod usage;

pub use settings::{parse_duration, Settings};
