//! capstan-agent's components as a library, so the binary only parses and wires.

pub mod api;
pub mod config_file;
pub mod kubelet;
pub mod metrics_endpoint;
pub mod node;
pub mod overlay;
