//! Kubernetes for every Capstan component: the API client and reflectors
//! (the only I/O here), and the pure helpers both the control plane and the
//! node agent need to agree on (quantities, pod requests, scheduling
//! predicates). Must never import another Capstan crate.

pub mod client;
pub mod client_error;
pub mod in_cluster;
pub mod quantity;
pub mod reflector;
pub mod requests;
pub mod scheduling;

pub use client::{client, config, ClientError, ClientOptions};
pub use reflector::{pace, spawn_reflector};
