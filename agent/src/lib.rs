//! capstan-agent's components as a library, so the binary only parses and wires.

pub mod config_file;
// The overlay is its own crate; `crate::overlay` stays a name for it.
pub use capstan_overlay as overlay;
