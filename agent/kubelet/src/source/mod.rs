//! Where the kubelet learns which pods should run here. A source publishes
//! complete snapshots (level-triggered: the manager diffs them against its
//! workers), plus the ConfigMaps and Secrets pods may reference. `static_dir`
//! reads a manifest directory; the API source plugs in the same way.

pub mod api;
pub mod merge;
pub mod node;
pub mod services;
pub mod snapshot;
pub mod static_dir;
