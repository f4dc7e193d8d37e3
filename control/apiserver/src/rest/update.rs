//! Update: Kubernetes' GuaranteedUpdate (read, change, compare-and-swap on
//! the mod revision, retry unless the client pinned a resourceVersion),
//! for replacements, patches, status and scale.

use serde_json::Value;

use super::create::{claim_keys, plan_service, releases};
use super::stored::{conflict, encode, get, object_path, with_rv, UPDATE_RETRIES};
use crate::registry::{self, meta};
use crate::resources::{Resource, Sub};
use crate::status::ApiError;
use crate::storage::{Expect, Stored, Write, WriteOutcome};
use crate::ApiServer;

/// Computes the new object from the current one.
pub type ComputeFn = Box<dyn FnMut(&Value) -> Result<Value, ApiError> + Send>;

/// What a read-modify-write does to the current object.
pub enum Change {
    /// A new object: checked against `resourceVersion` if it carries one.
    Replace(Value),
    /// Computed from the current object (patch, scale), optionally only
    /// if the object is still at `precondition` (a resourceVersion).
    Compute {
        f: ComputeFn,
        precondition: Option<String>,
    },
}

/// An update carries the stored `spec.finalizers` of a namespace over.
fn keep_namespace_finalizers(old: &Value, new: &mut Value) {
    match old.pointer("/spec/finalizers") {
        Some(f) => {
            if !new.get("spec").is_some_and(Value::is_object) {
                new["spec"] = serde_json::json!({});
            }
            new["spec"]["finalizers"] = f.clone();
        }
        None => {
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
            }
        }
    }
}

/// Kubernetes' GuaranteedUpdate: read, change, write if nobody wrote in
/// between, else retry (or 409 if the client pinned a resourceVersion).
/// Returns the written object; a deleting object with no finalizers left
/// is removed instead.
pub async fn update(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    sub: Option<Sub>,
    change: Change,
) -> Result<Value, ApiError> {
    update_with(api, res, ns, name, sub, change, false).await
}

/// `update`; with `dry_run` everything but the write happens.
pub async fn update_with(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    sub: Option<Sub>,
    mut change: Change,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let path = object_path(res, ns, name);
    let key = api.storage.key(&path);
    // The object to start from: this server's last sight of it (a guess),
    // the current one a failed compare-and-swap handed back, or a read.
    let mut known: Option<Stored> = None;
    let mut trust_guess = !dry_run;
    for _ in 0..UPDATE_RETRIES {
        let (current, verified) = match known.take() {
            Some(c) => (c, true),
            None => match trust_guess.then(|| api.storage.guess(&key)).flatten() {
                Some(c) => (c, false),
                None => (get(api, res, ns, name).await?, true),
            },
        };
        let attempt = attempt(api, res, ns, name, sub, &mut change, &current, dry_run).await;
        let (new, pinned, write, claims) = match attempt {
            Ok(Attempt::Write {
                new,
                pinned,
                write,
                claims,
            }) => (new, pinned, write, claims),
            Ok(Attempt::DryRun(v)) => return Ok(v),
            // An answer drawn from a guess is no answer: read and redo.
            Err(_) if !verified => {
                trust_guess = false;
                continue;
            }
            Err(e) => return Err(e),
        };
        match api
            .storage
            .write(&key, Expect::ModRevision(current.mod_revision), write)
            .await?
        {
            WriteOutcome::Done { revision } => return Ok(with_rv(new, revision)),
            WriteOutcome::ObjectChanged(None) => {
                return Err(ApiError::not_found(res.group, res.plural, name))
            }
            WriteOutcome::ObjectChanged(Some(now)) => {
                if pinned.is_some() && verified {
                    return Err(conflict(res, name));
                }
                known = Some(now);
            }
            WriteOutcome::ClaimTaken(k) => {
                if let Some(c) = claims
                    .iter()
                    .find(|c| api.storage.key(&c.key) == k && c.explicit)
                {
                    return Err(ApiError::invalid(
                        res.group,
                        res.kind,
                        name,
                        vec![crate::status::Cause::invalid(
                            &c.field,
                            &c.value,
                            "provided value is already allocated",
                        )],
                    ));
                }
            }
            WriteOutcome::GuardChanged(_) => {}
        }
    }
    Err(conflict(res, name))
}

/// What one round of an update produced.
enum Attempt {
    Write {
        new: Value,
        pinned: Option<String>,
        write: Write,
        claims: Vec<crate::registry::service::Claim>,
    },
    DryRun(Value),
}

/// One round of an update against `current`: the new object and the write
/// that stores it (or the dry-run answer).
#[allow(clippy::too_many_arguments)]
async fn attempt(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    sub: Option<Sub>,
    change: &mut Change,
    current: &Stored,
    dry_run: bool,
) -> Result<Attempt, ApiError> {
    let path = object_path(res, ns, name);
    let old = with_rv(current.value.clone(), current.mod_revision);
    let (mut new, pinned) = match change {
        Change::Replace(v) => {
            let pinned = v
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .filter(|rv| !rv.is_empty())
                .map(str::to_string);
            (v.clone(), pinned)
        }
        Change::Compute { f, precondition } => (f(&old)?, precondition.clone()),
    };
    meta::type_meta(res, &mut new)?;
    if let Some(rv) = &pinned {
        if *rv != current.mod_revision.to_string() {
            return Err(conflict(res, name));
        }
    }
    if sub != Some(Sub::Status) {
        new = registry::normalize(res, new)?;
    } else {
        // Only the status is taken, but it must still decode.
        registry::normalize(res, new.clone())?;
    }
    meta::prepare_update(res, &current.value, &mut new, name, ns)?;
    if res.plural == "namespaces" {
        // Only deletion finalizes a namespace (Kubernetes' `finalize`).
        keep_namespace_finalizers(&current.value, &mut new);
    }
    registry::prepare_update(res, &current.value, &mut new, sub)?;
    let claims = if res.kind == "Service" && sub.is_none() {
        plan_service(api, &mut new, Some(&current.value)).await?
    } else {
        Vec::new()
    };
    if dry_run {
        return Ok(Attempt::DryRun(with_rv(new, current.mod_revision)));
    }
    let finished = new.pointer("/metadata/deletionTimestamp").is_some()
        && new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty())
        && new
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
        && (res.plural != "namespaces" || super::delete::namespace_finalized(&new));
    let write = if finished {
        Write {
            value: None,
            releases: releases(api, &current.value, None),
            owner: path.clone(),
            ..Default::default()
        }
    } else {
        Write {
            value: Some(encode(&new)?),
            claims: claim_keys(api, &claims),
            releases: releases(api, &current.value, Some(&new)),
            owner: path.clone(),
            ..Default::default()
        }
    };
    Ok(Attempt::Write {
        new,
        pinned,
        write,
        claims,
    })
}
