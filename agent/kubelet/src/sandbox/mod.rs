//! A pod's sandbox: its namespaces as files (`netns`), its CNI attachment
//! (`cni`) and the record and per-pod files tying them together
//! (`pod_sandbox`). Index only.

pub mod cni;
pub mod netns;
pub mod pod_sandbox;
