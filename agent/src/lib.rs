//! capstan-agent's components as a library, so the binary only parses and wires.

pub mod config_file;
