//! Per-kind strategy: what a create or update of each resource defaults,
//! validates and resets, one `Strategy` per kind (`kinds`) run in one
//! order (`prepare`). Pure functions over JSON objects; storage and
//! allocation commits are the REST layer's. An index: items live below.

pub mod config_map;
pub mod decode;
pub mod kinds;
pub mod meta;
pub mod namespace;
pub mod pod;
pub mod prepare;
pub mod rbac;
pub mod secret;
pub mod service;
pub mod strategy;
pub mod validation;
pub mod workload;

pub use decode::{normalize, strict, unknown_fields};
pub use prepare::{prepare_create, prepare_update};
pub use strategy::Strategy;
