//! Address management for the node's subnet: a pure allocation plan and a
//! file-locked on-disk store (one file per reserved address, host-local
//! style). Must never hold the lock across kernel work.

pub mod owner;
pub mod plan;
pub mod store;

pub use owner::Owner;
pub use plan::{plan_allocation, Pool};
pub use store::Store;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("no free address in {pool} ({reserved} reserved)")]
    Exhausted { pool: String, reserved: usize },
    #[error("IPAM store {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}
