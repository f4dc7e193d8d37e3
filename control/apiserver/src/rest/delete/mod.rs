//! Delete: options and preconditions, the collector's finalizers chosen by
//! the propagation policy, the graceful-deletion plan, the write of one
//! object, the namespace lifecycle, and deletecollection. An index.

mod collection;
mod finalizers;
mod namespace;
mod object;
mod one;
mod options;
mod plan;
mod write;

pub use collection::delete_collection;
pub use finalizers::{finalizers_after_delete, FOREGROUND, ORPHAN};
pub use namespace::namespace_finalized;
pub use one::delete;
pub use options::{DeleteOptions, Propagation};
