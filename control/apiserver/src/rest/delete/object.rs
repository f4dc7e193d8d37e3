//! Delete: preconditions, graceful deletion of pods bound to a node,
//! finalizers (generic ones and the garbage collector's `orphan` and
//! `foregroundDeletion` chosen by the propagation policy), allocations
//! released with the object, namespace contents, and deletecollection.

use serde_json::{json, Value};

use super::create::releases;
use super::list::{list, ListOptions};
use super::{conflict, dir_path, encode, get, object_path, subject, with_rv, UPDATE_RETRIES};
use crate::registry::meta;
use crate::resources::Resource;
use crate::status::ApiError;
use crate::status::Cause;
use crate::storage::{Expect, Write, WriteOutcome};
use crate::ApiServer;
pub use capstan_control_contract::finalizers::{FOREGROUND, ORPHAN};
use capstan_control_contract::owner_kinds::tracks_owner;

/// What happens to an object's dependents (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    fn parse(v: &str) -> Result<Self, ApiError> {
        match v {
            "Orphan" => Ok(Propagation::Orphan),
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            other => Err(invalid_options(Cause::not_supported(
                "propagationPolicy",
                format!("{other:?}"),
                &["Foreground", "Background", "Orphan"],
            ))),
        }
    }
}

fn invalid_options(c: Cause) -> ApiError {
    ApiError::invalid("meta.k8s.io", "DeleteOptions", "", vec![c])
}

#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// None: the object's own GC finalizers decide, else background.
    pub propagation: Option<Propagation>,
    /// The deprecated `orphanDependents` as given: an explicit `false` is
    /// what makes a delete that leaves the object in place answer 202.
    pub orphan_dependents: Option<bool>,
}

impl DeleteOptions {
    /// From a `DeleteOptions` body (may be empty).
    pub fn from_body(body: &Value) -> Result<Self, ApiError> {
        let mut o = DeleteOptions {
            grace_period_seconds: body.get("gracePeriodSeconds").and_then(Value::as_i64),
            precondition_uid: body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
            precondition_rv: body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
            propagation: None,
            orphan_dependents: None,
        };
        o.set_propagation(
            body.get("propagationPolicy").and_then(Value::as_str),
            body.get("orphanDependents").and_then(Value::as_bool),
        )?;
        Ok(o)
    }

    /// `propagationPolicy` and the deprecated `orphanDependents`, from the
    /// body or the query; setting both is invalid, as in Kubernetes.
    pub fn set_propagation(
        &mut self,
        policy: Option<&str>,
        orphan_dependents: Option<bool>,
    ) -> Result<(), ApiError> {
        if policy.is_some() && orphan_dependents.is_some() {
            return Err(invalid_options(Cause::invalid(
                "propagationPolicy",
                policy.unwrap_or_default(),
                "orphanDependents and deletionPropagation cannot be both set",
            )));
        }
        if let Some(p) = policy {
            self.propagation = Some(Propagation::parse(p)?);
        }
        if let Some(o) = orphan_dependents {
            self.orphan_dependents = Some(o);
            self.propagation = Some(if o {
                Propagation::Orphan
            } else {
                Propagation::Background
            });
        }
        Ok(())
    }
}

/// The finalizers an object has after a delete with `policy`: the
/// collector's two are replaced by the one the policy asks for; without a
/// policy the object's own choice stands. Kinds the collector does not
/// track as owners never get them (nothing would remove them).
pub fn finalizers_after_delete(
    current: &[String],
    policy: Option<Propagation>,
    tracked_owner: bool,
) -> Vec<String> {
    if !tracked_owner {
        return current.to_vec();
    }
    let Some(policy) = policy else {
        return current.to_vec();
    };
    let mut out: Vec<String> = current
        .iter()
        .filter(|f| *f != ORPHAN && *f != FOREGROUND)
        .cloned()
        .collect();
    match policy {
        Propagation::Orphan => out.push(ORPHAN.into()),
        Propagation::Foreground => out.push(FOREGROUND.into()),
        Propagation::Background => {}
    }
    out
}

fn finalizers_of(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Deletes one object. Pods on a node get a grace period (deletionTimestamp
/// and deletionGracePeriodSeconds) and stay until the kubelet deletes them
/// with grace 0; objects with finalizers stay until those are removed.
/// Returns the object as deleted or as now marked for deletion, and
/// whether it is gone.
pub async fn delete(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(Value, bool), ApiError> {
    if res.plural == "namespaces" {
        return delete_namespace(api, res, name, opts).await;
    }
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
        match api
            .storage
            .write(&key, Expect::ModRevision(current.mod_revision), write)
            .await?
        {
            WriteOutcome::Done { revision } => {
                return Ok((with_rv(marked, revision), removing));
            }
            WriteOutcome::ObjectChanged(None) => {
                return Err(ApiError::not_found(res.group, res.plural, name))
            }
            WriteOutcome::ObjectChanged(Some(_))
            | WriteOutcome::ClaimTaken(_)
            | WriteOutcome::GuardChanged(_) => {}
        }
    }
    Err(conflict(res, name))
}

/// DeleteOptions.preconditions against the stored object.
fn check_preconditions(
    res: &Resource,
    name: &str,
    opts: &DeleteOptions,
    current: &crate::storage::Stored,
) -> Result<(), ApiError> {
    if let Some(uid) = &opts.precondition_uid {
        if current
            .value
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            != Some(uid.as_str())
        {
            return Err(ApiError::Conflict {
                subject: subject(res, name),
                msg: format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    current
                        .value
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                ),
            });
        }
    }
    if let Some(rv) = &opts.precondition_rv {
        if *rv != current.mod_revision.to_string() {
            return Err(ApiError::Conflict {
                subject: subject(res, name),
                msg: format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", current.mod_revision),
            });
        }
    }
    Ok(())
}

/// What one delete does to the stored object.
#[derive(Debug, PartialEq, Eq)]
enum DeleteStep {
    /// Already being deleted and nothing to shorten or re-finalize.
    Unchanged,
    /// Kept (grace period or finalizers); `restart_clock` sets a new
    /// deletionTimestamp and grace period.
    Mark {
        restart_clock: bool,
    },
    Remove,
}

/// Kubernetes' rules: a pending grace period can only be shortened (and
/// while it runs the finalizers are not touched); an object with
/// finalizers stays; a second delete of an object that only waits for
/// finalizers may switch the collector's finalizer and otherwise does
/// nothing.
fn plan_delete(
    deleting: bool,
    old_grace: i64,
    grace: i64,
    finalizers_change: bool,
    no_finalizers_left: bool,
) -> DeleteStep {
    if deleting && old_grace > 0 {
        if grace >= old_grace {
            return DeleteStep::Unchanged;
        }
        if grace == 0 && no_finalizers_left {
            return DeleteStep::Remove;
        }
        return DeleteStep::Mark {
            restart_clock: true,
        };
    }
    if deleting {
        // Only finalizers hold it: a grace period no longer applies.
        return if no_finalizers_left {
            DeleteStep::Remove
        } else if finalizers_change {
            DeleteStep::Mark {
                restart_clock: false,
            }
        } else {
            DeleteStep::Unchanged
        };
    }
    if grace > 0 || !no_finalizers_left {
        DeleteStep::Mark {
            restart_clock: true,
        }
    } else {
        DeleteStep::Remove
    }
}

/// The grace period a delete gets: only pods bound to a node and not yet
/// finished wait for their kubelet.
fn graceful_period(res: &Resource, obj: &Value, asked: Option<i64>) -> i64 {
    if res.kind != "Pod" {
        return 0;
    }
    let node = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let phase = obj
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if node.is_empty() || matches!(phase, "Succeeded" | "Failed") {
        return 0;
    }
    asked
        .or_else(|| {
            obj.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

/// The finalizer that keeps a Terminating namespace until its content
/// is gone (in `spec.finalizers`, as Kubernetes keeps it).
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// Kubernetes' namespace lifecycle: a delete marks the namespace
/// Terminating (deletionTimestamp, `status.phase`, the `kubernetes`
/// finalizer), after which nothing new may be created in it. Its content is
/// deleted right here, as the namespace controller would (pods bound to a
/// node get their grace period, objects with finalizers stay); when nothing
/// is left the namespace goes with this same request, else the namespace
/// controller finishes once the rest is gone.
async fn delete_namespace(
    api: &ApiServer,
    res: &Resource,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(Value, bool), ApiError> {
    let marked = mark_terminating(api, res, name, opts).await?;
    if delete_namespace_contents(api, name).await? > 0 {
        return Ok((marked, false));
    }
    finalize_namespace(api, res, name).await
}

/// The Terminating form of a namespace; None when it already is.
pub fn terminating(ns: &Value) -> Option<Value> {
    if ns.pointer("/metadata/deletionTimestamp").is_some() {
        return None;
    }
    let mut t = ns.clone();
    let m = meta::meta_mut(&mut t);
    m.insert("deletionTimestamp".into(), json!(meta::now()));
    m.insert("deletionGracePeriodSeconds".into(), json!(0));
    if !t.get("spec").is_some_and(Value::is_object) {
        t["spec"] = json!({});
    }
    let mut f: Vec<Value> = t["spec"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !f.iter().any(|x| x == NAMESPACE_FINALIZER) {
        f.push(json!(NAMESPACE_FINALIZER));
    }
    t["spec"]["finalizers"] = json!(f);
    if !t.get("status").is_some_and(Value::is_object) {
        t["status"] = json!({});
    }
    t["status"]["phase"] = json!("Terminating");
    Some(t)
}

async fn mark_terminating(
    api: &ApiServer,
    res: &Resource,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    let key = api.storage.key(&object_path(res, None, name));
    for _ in 0..UPDATE_RETRIES {
        let current = get(api, res, None, name).await?;
        check_preconditions(res, name, opts, &current)?;
        let Some(marked) = terminating(&current.value) else {
            return Ok(with_rv(current.value, current.mod_revision));
        };
        let write = Write {
            value: Some(encode(&marked)?),
            ..Default::default()
        };
        match api
            .storage
            .write(&key, Expect::ModRevision(current.mod_revision), write)
            .await?
        {
            WriteOutcome::Done { revision } => return Ok(with_rv(marked, revision)),
            WriteOutcome::ObjectChanged(None) => {
                return Err(ApiError::not_found(res.group, res.plural, name))
            }
            WriteOutcome::ObjectChanged(Some(_))
            | WriteOutcome::ClaimTaken(_)
            | WriteOutcome::GuardChanged(_) => {}
        }
    }
    Err(conflict(res, name))
}

/// Removes the `kubernetes` finalizer (what Kubernetes' `finalize`
/// subresource does; an ordinary update keeps `spec.finalizers`), and the
/// namespace with it when no other finalizer is left.
async fn finalize_namespace(
    api: &ApiServer,
    res: &Resource,
    name: &str,
) -> Result<(Value, bool), ApiError> {
    let key = api.storage.key(&object_path(res, None, name));
    for _ in 0..UPDATE_RETRIES {
        let current = get(api, res, None, name).await?;
        let mut next = current.value.clone();
        if let Some(list) = next
            .pointer_mut("/spec/finalizers")
            .and_then(Value::as_array_mut)
        {
            list.retain(|x| x != NAMESPACE_FINALIZER);
        }
        let gone = namespace_finalized(&next) && finalizers_of(&next).is_empty();
        if !gone && next == current.value {
            return Ok((with_rv(next, current.mod_revision), false));
        }
        let write = Write {
            value: if gone { None } else { Some(encode(&next)?) },
            ..Default::default()
        };
        match api
            .storage
            .write(&key, Expect::ModRevision(current.mod_revision), write)
            .await?
        {
            WriteOutcome::Done { revision } => {
                if gone {
                    tracing::info!(namespace = %name, "namespace empty and finalized: removed");
                }
                return Ok((with_rv(next, revision), gone));
            }
            WriteOutcome::ObjectChanged(None) => {
                return Err(ApiError::not_found(res.group, res.plural, name))
            }
            WriteOutcome::ObjectChanged(Some(_))
            | WriteOutcome::ClaimTaken(_)
            | WriteOutcome::GuardChanged(_) => {}
        }
    }
    Err(conflict(res, name))
}

/// Whether nothing in `spec.finalizers` holds a namespace any more.
pub fn namespace_finalized(ns: &Value) -> bool {
    ns.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|f| f.is_empty())
}

/// Deletes what a namespace holds through the ordinary delete; returns
/// how many objects are still there (graceful pods, finalizers).
async fn delete_namespace_contents(api: &ApiServer, ns: &str) -> Result<usize, ApiError> {
    let opts = DeleteOptions::default();
    let mut left = 0;
    for res in crate::resources::RESOURCES.iter().filter(|r| r.namespaced) {
        let page = api
            .storage
            .list(&api.storage.key(&dir_path(res, Some(ns))), None, 0, 0)
            .await?;
        for s in page.items {
            let name = meta::name_of(&s.value).to_string();
            match Box::pin(delete(api, res, Some(ns), &name, &opts)).await {
                Ok((_, true)) | Err(ApiError::NotFound(_)) => {}
                Ok((_, false)) => left += 1,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(left)
}

pub async fn delete_collection(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    list_opts: &ListOptions,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    let all = ListOptions {
        limit: 0,
        continue_token: None,
        ..list_opts.clone()
    };
    let listed = list(api, res, ns, &all).await?;
    let mut deleted = Vec::new();
    for item in listed["items"].as_array().into_iter().flatten() {
        let name = meta::name_of(item);
        let item_ns = item.pointer("/metadata/namespace").and_then(Value::as_str);
        match delete(api, res, item_ns.or(ns), name, opts).await {
            Ok((v, _)) => deleted.push(v),
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json!({
        "kind": res.list_kind(),
        "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": listed["metadata"]["resourceVersion"]},
        "items": deleted,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn policy_picks_the_collectors_finalizer() {
        let f = finalizers_after_delete;
        assert_eq!(
            f(&[], Some(Propagation::Foreground), true),
            v(&[FOREGROUND])
        );
        assert_eq!(
            f(&v(&["x"]), Some(Propagation::Orphan), true),
            v(&["x", ORPHAN])
        );
        // Switching policy replaces the other one.
        assert_eq!(
            f(&v(&[ORPHAN]), Some(Propagation::Foreground), true),
            v(&[FOREGROUND])
        );
        assert_eq!(
            f(&v(&[FOREGROUND, "x"]), Some(Propagation::Background), true),
            v(&["x"])
        );
        // No policy: the object's own finalizers stand.
        assert_eq!(f(&v(&[ORPHAN]), None, true), v(&[ORPHAN]));
        // A kind nobody collects dependents of gets nothing added.
        assert!(f(&[], Some(Propagation::Foreground), false).is_empty());
    }

    #[test]
    fn delete_steps_follow_kubernetes() {
        use DeleteStep::*;
        // Plain object: gone.
        assert_eq!(plan_delete(false, 0, 0, false, true), Remove);
        // Finalizers keep it.
        assert_eq!(
            plan_delete(false, 0, 0, true, false),
            Mark {
                restart_clock: true
            }
        );
        // Second delete of a finalizing object: a no-op unless the policy changed.
        assert_eq!(plan_delete(true, 0, 0, false, false), Unchanged);
        assert_eq!(
            plan_delete(true, 0, 0, true, false),
            Mark {
                restart_clock: false
            }
        );
        // Switching to background with nothing else pending removes it.
        assert_eq!(plan_delete(true, 0, 0, true, true), Remove);
        // Graceful pods: only a shorter grace period changes anything.
        assert_eq!(
            plan_delete(false, 0, 30, false, true),
            Mark {
                restart_clock: true
            }
        );
        assert_eq!(plan_delete(true, 30, 30, false, true), Unchanged);
        assert_eq!(
            plan_delete(true, 30, 5, false, true),
            Mark {
                restart_clock: true
            }
        );
        assert_eq!(plan_delete(true, 30, 0, false, true), Remove);
        assert_eq!(
            plan_delete(true, 30, 0, false, false),
            Mark {
                restart_clock: true
            }
        );
        // Waiting only for finalizers: a grace period does not restart the clock.
        assert_eq!(plan_delete(true, 0, 30, false, false), Unchanged);
    }

    #[test]
    fn namespace_goes_terminating_once() {
        let ns = json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["other"]}, "status": {"phase": "Active"}});
        let t = terminating(&ns).unwrap();
        assert_eq!(t["status"]["phase"], "Terminating");
        assert_eq!(t["spec"]["finalizers"], json!(["other", "kubernetes"]));
        assert!(t["metadata"]["deletionTimestamp"].is_string());
        assert!(terminating(&t).is_none());
        assert!(!namespace_finalized(&t));
        assert!(namespace_finalized(&json!({"spec": {"finalizers": []}})));
    }

    #[test]
    fn options_from_body_and_conflicts() {
        let o = DeleteOptions::from_body(&json!({"propagationPolicy": "Foreground"})).unwrap();
        assert_eq!(o.propagation, Some(Propagation::Foreground));
        let o = DeleteOptions::from_body(&json!({"orphanDependents": true})).unwrap();
        assert_eq!(o.propagation, Some(Propagation::Orphan));
        assert!(DeleteOptions::from_body(&json!({"propagationPolicy": "Sideways"})).is_err());
        assert!(DeleteOptions::from_body(
            &json!({"propagationPolicy": "Orphan", "orphanDependents": false})
        )
        .is_err());
    }
}
