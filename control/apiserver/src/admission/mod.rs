//! Admission that needs more than the object itself: kube-apiserver's
//! ServiceAccount plugin on pod create (the account must exist; the token
//! volume goes in). The mutation is pure (`service_account`); `pod` reads
//! the account; `plugins` says what runs. It runs after the namespace
//! check and before the object is written; it never writes. An index.

mod plugins;
mod pod;
pub mod service_account;

pub use plugins::{Plugins, KNOWN_PLUGINS};
pub use pod::admit_pod;
