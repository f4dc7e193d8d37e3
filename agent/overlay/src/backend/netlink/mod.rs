//! The real `Dataplane` over rtnetlink.

mod read;
pub use read::*;
