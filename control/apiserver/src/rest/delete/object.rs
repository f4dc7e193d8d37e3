//! Deleting one stored object (not a namespace): preconditions, the
//! collector's finalizers, the grace period, then one guarded write that
//! marks or removes it (and releases its allocations), retried on a race.

use serde_json::{json, Value};

use super::finalizers::{finalizers_after_delete, finalizers_of};
use super::options::{check_preconditions, DeleteOptions};
use super::plan::{graceful_period, plan_delete, DeleteStep};
use super::write::write_guarded;
use crate::registry::meta;
use crate::resources::Resource;
use crate::rest::create::releases;
use crate::rest::stored::{conflict, encode, get, object_path, with_rv, UPDATE_RETRIES};
use crate::status::ApiError;
use crate::storage::Write;
use crate::ApiServer;
use capstan_control_contract::owner_kinds::tracks_owner;

/// `delete` for every kind but namespaces (see `one::delete`).
pub(super) async fn delete_object(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(Value, bool), ApiError> {
    let path = object_path(res, ns, name);
    let key = api.storage.key(&path);
    for _ in 0..UPDATE_RETRIES {
        let current = get(api, res, ns, name).await?;
        let obj = &current.value;
        check_preconditions(res, name, opts, &current)?;
        let grace = graceful_period(res, obj, opts.grace_period_seconds);
        let before = finalizers_of(obj);
        let after = finalizers_after_delete(
            &before,
            opts.propagation,
            tracks_owner(res.api_version().as_str(), res.kind),
        );
        let deleting = obj.pointer("/metadata/deletionTimestamp").is_some();
        let old_grace = obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let mut marked = obj.clone();
        let step = plan_delete(
            deleting,
            old_grace,
            grace,
            before != after,
            after.is_empty(),
        );
        let write = match step {
            DeleteStep::Unchanged => {
                return Ok((with_rv(current.value, current.mod_revision), false));
            }
            DeleteStep::Mark { restart_clock } => {
                let m = meta::meta_mut(&mut marked);
                if restart_clock {
                    m.insert(
                        "deletionTimestamp".into(),
                        json!(meta::rfc3339_after(grace)),
                    );
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                if after.is_empty() {
                    m.remove("finalizers");
                } else {
                    m.insert("finalizers".into(), json!(after));
                }
                Write {
                    value: Some(encode(&marked)?),
                    ..Default::default()
                }
            }
            DeleteStep::Remove => Write {
                value: None,
                releases: releases(api, obj, None),
                ..Default::default()
            },
        };
        let removing = write.value.is_none();
        if let Some(revision) =
            write_guarded(api, &key, current.mod_revision, write, res, name).await?
        {
            return Ok((with_rv(marked, revision), removing));
        }
    }
    Err(conflict(res, name))
}
