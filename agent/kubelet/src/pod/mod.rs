//! From a pod's spec to what containerd runs: the command (`command`), the
//! environment (`env`), volumes (`volumes`), the OCI spec (`spec`), one
//! container put together (`assemble`), lifecycle hooks (`hooks`) and the
//! image reference check (`image_ref`). Index only.

pub mod assemble;
pub mod command;
pub mod env;
pub mod hooks;
pub mod image_ref;
pub mod service_env;
pub mod spec;
pub mod volumes;
