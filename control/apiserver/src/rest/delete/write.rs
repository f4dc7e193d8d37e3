//! The guarded write every delete step ends with: one etcd transaction on
//! the revision the step read. A lost race is retried by the caller; an
//! object deleted meanwhile is 404.

use crate::resources::Resource;
use crate::status::ApiError;
use crate::storage::{Expect, Write, WriteOutcome};
use crate::ApiServer;

/// Writes `write` if the object is still at `read_revision`: the new
/// revision, or `None` when something else changed it first (read again).
pub(super) async fn write_guarded(
    api: &ApiServer,
    key: &str,
    read_revision: i64,
    write: Write,
    res: &Resource,
    name: &str,
) -> Result<Option<i64>, ApiError> {
    match api
        .storage
        .write(key, Expect::ModRevision(read_revision), write)
        .await?
    {
        WriteOutcome::Done { revision } => Ok(Some(revision)),
        WriteOutcome::ObjectChanged(None) => Err(ApiError::not_found(res.group, res.plural, name)),
        WriteOutcome::ObjectChanged(Some(_))
        | WriteOutcome::ClaimTaken(_)
        | WriteOutcome::GuardChanged(_) => Ok(None),
    }
}
