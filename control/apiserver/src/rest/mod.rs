//! The verbs on stored objects: get, list, create, update (guaranteed,
//! optimistic), delete (graceful for pods, finalizers), deletecollection,
//! binding. Everything that writes goes through one etcd transaction per
//! object. No HTTP here: handlers translate requests into these calls and
//! results into responses.

mod bind;
mod create;
mod delete;
mod fields;
mod list;
mod stored;
mod update;

pub use bind::bind;
pub use create::{create, create_with};
pub use delete::{
    delete, delete_collection, finalizers_after_delete, DeleteOptions, Propagation, FOREGROUND,
    ORPHAN,
};
pub use fields::selectable_fields;
pub use list::{list, matches, ListOptions};
pub use stored::{dir_path, get, object_path, with_rv};
pub use update::{update, update_with, Change, ComputeFn};
