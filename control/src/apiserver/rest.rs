//! The verbs on stored objects: get, list, create, update (guaranteed,
//! optimistic), delete (graceful for pods, finalizers), deletecollection,
//! binding and scale. Everything that writes goes through one etcd
//! transaction per object. No HTTP here: handlers translate requests into
//! these calls and results into responses.

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::registry::{self, meta, service};
use super::resources::{Resource, Sub};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, Subject};
use super::storage::{Expect, StorageError, Stored, Write, WriteOutcome};
use super::ApiServer;

/// How many times a read-modify-write retries after losing a race.
const UPDATE_RETRIES: usize = 16;

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Compacted(_) => ApiError::Gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
            ),
            StorageError::Etcd { .. } => ApiError::Unavailable(e.to_string()),
            StorageError::Decode { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

pub fn object_path(res: &Resource, ns: Option<&str>, name: &str) -> String {
    match (res.namespaced, ns) {
        (true, Some(ns)) => format!("{}/{}/{}", res.plural, ns, name),
        _ => format!("{}/{}", res.plural, name),
    }
}

pub fn dir_path(res: &Resource, ns: Option<&str>) -> String {
    match (res.namespaced, ns) {
        (true, Some(ns)) => format!("{}/{}/", res.plural, ns),
        _ => format!("{}/", res.plural),
    }
}

/// The object as clients see it: the stored JSON plus its revision.
pub fn with_rv(mut value: Value, rev: i64) -> Value {
    meta::meta_mut(&mut value).insert("resourceVersion".into(), json!(rev.to_string()));
    value
}

fn subject(res: &Resource, name: &str) -> Subject {
    Subject {
        group: res.group.into(),
        kind: res.plural.into(),
        name: name.into(),
    }
}

fn conflict(res: &Resource, name: &str) -> ApiError {
    ApiError::Conflict {
        subject: subject(res, name),
        msg: "the object has been modified; please apply your changes to the latest version and try again".into(),
    }
}

fn encode(v: &Value) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v).map_err(|e| ApiError::Internal(format!("encode: {e}")))
}

pub async fn get(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
) -> Result<Stored, ApiError> {
    let key = api.storage.key(&object_path(res, ns, name));
    api.storage
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(res.group, res.plural, name))
}

/// Field paths each resource can be selected by, beyond metadata.name and
/// metadata.namespace.
pub fn selectable_fields(res: &Resource) -> Vec<&'static str> {
    let mut f = vec!["metadata.name", "metadata.namespace"];
    match res.plural {
        "pods" => f.extend([
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
        ]),
        "events" => f.extend([
            "involvedObject.kind",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.uid",
            "reason",
            "type",
        ]),
        "secrets" => f.push("type"),
        "namespaces" => f.push("status.phase"),
        "nodes" => f.push("spec.unschedulable"),
        "replicationcontrollers" | "replicasets" => f.push("status.replicas"),
        _ => {}
    }
    f
}

#[derive(Default, Debug, Clone)]
pub struct ListOptions {
    pub label: LabelSelector,
    pub field: FieldSelector,
    pub limit: i64,
    pub continue_token: Option<String>,
}

pub fn matches(opts_label: &LabelSelector, opts_field: &FieldSelector, obj: &Value) -> bool {
    opts_label.matches(obj.pointer("/metadata/labels")) && opts_field.matches(obj)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: i64,
    start: String,
}

fn decode_continue(t: &str) -> Result<ContinueToken, ApiError> {
    use base64::Engine;
    let bad = || ApiError::BadRequest(format!("continue key is not valid: {t}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

fn encode_continue(rv: i64, start: &str) -> String {
    use base64::Engine;
    let t = ContinueToken {
        rv,
        start: start.to_string(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&t).unwrap_or_default())
}

/// A consistent list (one etcd revision across pages), filtered by the
/// selectors, paged by `limit`/`continue` as Kubernetes pages.
pub async fn list(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    opts: &ListOptions,
) -> Result<Value, ApiError> {
    let dir = api.storage.key(&dir_path(res, ns));
    let (mut revision, mut start) = match &opts.continue_token {
        Some(t) => {
            let c = decode_continue(t)?;
            if !c.start.starts_with(&dir) {
                return Err(ApiError::BadRequest(
                    "continue key is not valid for this list".into(),
                ));
            }
            (c.rv, Some(c.start))
        }
        None => (0, None),
    };
    let mut items = Vec::new();
    let mut next: Option<String> = None;
    let mut remaining = 0;
    loop {
        let want = if opts.limit > 0 {
            opts.limit - items.len() as i64
        } else {
            0
        };
        // Fetch one more than needed to know whether another page exists.
        let fetch = if want > 0 { want + 1 } else { 0 };
        let page = api
            .storage
            .list(&dir, start.as_deref(), revision, fetch)
            .await?;
        revision = page.revision;
        let n = page.items.len() as i64;
        let mut last_key = None;
        for (i, s) in page.items.into_iter().enumerate() {
            if want > 0 && i as i64 == want {
                // The extra item: the next page starts here.
                next = Some(s.key.clone());
                break;
            }
            last_key = Some(s.key.clone());
            if matches(&opts.label, &opts.field, &s.value) {
                items.push(with_rv(s.value, s.mod_revision));
            }
        }
        if next.is_some() {
            remaining = page.remaining + 1;
            if (items.len() as i64) < opts.limit {
                // Filters dropped some: keep filling this page.
                start = next.take();
                continue;
            }
            break;
        }
        if fetch == 0 || n < fetch {
            break;
        }
        // Exactly `fetch` items and all consumed: continue after the last.
        start = last_key.map(|k| format!("{k}\0"));
        if (items.len() as i64) >= opts.limit {
            next = start.clone();
            remaining = page.remaining;
            break;
        }
    }
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(n) = next {
        metadata["continue"] = json!(encode_continue(revision, &n));
        if opts.label.is_empty() && opts.field.is_empty() && remaining > 0 {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    Ok(json!({
        "kind": res.list_kind(),
        "apiVersion": res.api_version(),
        "metadata": metadata,
        "items": items,
    }))
}

async fn check_namespace(api: &ApiServer, ns: &str) -> Result<(), ApiError> {
    let Some(nsres) = super::resources::find("", "v1", "namespaces") else {
        return Ok(());
    };
    match get(api, nsres, None, ns).await {
        Ok(s) if s.value.pointer("/metadata/deletionTimestamp").is_some() => {
            Err(ApiError::Forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )))
        }
        Ok(_) => Ok(()),
        // The system namespaces always exist, even before `bootstrap` ran.
        Err(ApiError::NotFound(_)) if super::SYSTEM_NAMESPACES.contains(&ns) => {
            match Box::pin(create(api, nsres, None, json!({"metadata": {"name": ns}}))).await {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(ApiError::NotFound(_)) => Err(ApiError::not_found("", "namespaces", ns)),
        Err(e) => Err(e),
    }
}

/// Keys taken in an allocation directory, as IPs or ports.
async fn taken(api: &ApiServer, dir: &str) -> Result<Vec<String>, ApiError> {
    let full = api.storage.key(dir);
    Ok(api
        .storage
        .keys(&full)
        .await?
        .into_iter()
        .filter_map(|k| k.strip_prefix(&full).map(str::to_string))
        .collect())
}

/// Claims for a service's allocations, planned against what is taken now.
async fn plan_service(
    api: &ApiServer,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<Vec<service::Claim>, ApiError> {
    let ips: HashSet<Ipv4Addr> = taken(api, service::IP_DIR)
        .await?
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let ports: HashSet<i64> = taken(api, service::PORT_DIR)
        .await?
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let name = meta::name_of(obj).to_string();
    let Some(spec) = obj.get_mut("spec") else {
        return Ok(Vec::new());
    };
    service::allocate(spec, old, &api.ranges, &ips, &ports)
        .map_err(|causes| ApiError::invalid("", "Service", &name, causes))
}

/// What a write must claim and release, for kinds that allocate.
fn claim_keys(api: &ApiServer, claims: &[service::Claim]) -> Vec<String> {
    claims.iter().map(|c| api.storage.key(&c.key)).collect()
}

fn releases(api: &ApiServer, old: &Value, new: Option<&Value>) -> Vec<String> {
    let before = service::held(old);
    let after = new.map(service::held).unwrap_or_default();
    before
        .difference(&after)
        .map(|k| api.storage.key(k))
        .collect()
}

pub async fn create(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    body: Value,
) -> Result<Value, ApiError> {
    create_with(api, res, ns, body, false).await
}

/// `create`; with `dry_run` everything but the write happens (`dryRun=All`).
pub async fn create_with(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    body: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let mut base = body;
    meta::type_meta(res, &mut base)?;
    let mut base = registry::normalize(res, base)?;
    meta::prepare_create(res, &mut base, ns)?;
    registry::prepare_create(res, &mut base)?;
    let name = meta::name_of(&base).to_string();
    if res.namespaced {
        if let Some(ns) = ns {
            check_namespace(api, ns).await?;
        }
    }
    let path = object_path(res, ns, &name);
    let key = api.storage.key(&path);
    for _ in 0..UPDATE_RETRIES {
        let mut obj = base.clone();
        let claims = if res.kind == "Service" {
            plan_service(api, &mut obj, None).await?
        } else {
            Vec::new()
        };
        if dry_run {
            if api.storage.get(&key).await?.is_some() {
                return Err(ApiError::AlreadyExists(subject(res, &name)));
            }
            return Ok(obj);
        }
        let write = Write {
            value: Some(encode(&obj)?),
            claims: claim_keys(api, &claims),
            releases: Vec::new(),
            owner: path.clone(),
        };
        match api.storage.write(&key, Expect::Absent, write).await? {
            WriteOutcome::Done { revision } => {
                tracing::debug!(resource = res.plural, name = %name, revision, "created");
                return Ok(with_rv(obj, revision));
            }
            WriteOutcome::ObjectChanged(_) => {
                return Err(ApiError::AlreadyExists(subject(res, &name)))
            }
            WriteOutcome::ClaimTaken(k) => {
                if let Some(c) = claims
                    .iter()
                    .find(|c| api.storage.key(&c.key) == k && c.explicit)
                {
                    return Err(ApiError::invalid(
                        res.group,
                        res.kind,
                        &name,
                        vec![super::status::Cause::invalid(
                            &c.field,
                            &c.value,
                            "provided value is already allocated",
                        )],
                    ));
                }
                // Someone took the value we picked between our read and
                // our write: pick again.
            }
        }
    }
    Err(ApiError::Conflict {
        subject: subject(res, &name),
        msg: "allocation kept racing with concurrent writers; try again".into(),
    })
}

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
    for _ in 0..UPDATE_RETRIES {
        let current = get(api, res, ns, name).await?;
        let old = with_rv(current.value.clone(), current.mod_revision);
        let (mut new, pinned) = match &mut change {
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
        registry::prepare_update(res, &current.value, &mut new, sub)?;
        let claims = if res.kind == "Service" && sub.is_none() {
            plan_service(api, &mut new, Some(&current.value)).await?
        } else {
            Vec::new()
        };
        if dry_run {
            return Ok(with_rv(new, current.mod_revision));
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
                == 0;
        let write = if finished {
            Write {
                value: None,
                claims: Vec::new(),
                releases: releases(api, &current.value, None),
                owner: path.clone(),
            }
        } else {
            Write {
                value: Some(encode(&new)?),
                claims: claim_keys(api, &claims),
                releases: releases(api, &current.value, Some(&new)),
                owner: path.clone(),
            }
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
            WriteOutcome::ObjectChanged(Some(_)) => {
                if pinned.is_some() {
                    return Err(conflict(res, name));
                }
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
                        vec![super::status::Cause::invalid(
                            &c.field,
                            &c.value,
                            "provided value is already allocated",
                        )],
                    ));
                }
            }
        }
    }
    Err(conflict(res, name))
}

#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

impl DeleteOptions {
    /// From a `DeleteOptions` body (may be empty).
    pub fn from_body(body: &Value) -> Self {
        DeleteOptions {
            grace_period_seconds: body.get("gracePeriodSeconds").and_then(Value::as_i64),
            precondition_uid: body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
            precondition_rv: body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }
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
    let path = object_path(res, ns, name);
    let key = api.storage.key(&path);
    for _ in 0..UPDATE_RETRIES {
        let current = get(api, res, ns, name).await?;
        let obj = &current.value;
        if let Some(uid) = &opts.precondition_uid {
            if obj.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid.as_str()) {
                return Err(ApiError::Conflict {
                    subject: subject(res, name),
                    msg: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        obj.pointer("/metadata/uid")
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
        let grace = graceful_period(res, obj, opts.grace_period_seconds);
        let has_finalizers = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let mut marked = obj.clone();
        let write = if grace > 0 || has_finalizers {
            let already = obj.pointer("/metadata/deletionTimestamp").is_some();
            let old_grace = obj
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if already && old_grace.is_none_or(|g| g <= grace) {
                // Deletion already under way and not shortened: nothing to do.
                return Ok((with_rv(current.value, current.mod_revision), false));
            }
            let m = meta::meta_mut(&mut marked);
            m.insert(
                "deletionTimestamp".into(),
                json!(meta::rfc3339_after(grace)),
            );
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            Write {
                value: Some(encode(&marked)?),
                ..Default::default()
            }
        } else {
            Write {
                value: None,
                releases: releases(api, obj, None),
                ..Default::default()
            }
        };
        let removing = write.value.is_none();
        match api
            .storage
            .write(&key, Expect::ModRevision(current.mod_revision), write)
            .await?
        {
            WriteOutcome::Done { revision } => {
                if removing && res.plural == "namespaces" {
                    delete_namespace_contents(api, name).await?;
                }
                return Ok((with_rv(marked, revision), removing));
            }
            WriteOutcome::ObjectChanged(None) => {
                return Err(ApiError::not_found(res.group, res.plural, name))
            }
            WriteOutcome::ObjectChanged(Some(_)) | WriteOutcome::ClaimTaken(_) => {}
        }
    }
    Err(conflict(res, name))
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

/// Without a namespace controller yet, deleting a namespace deletes what
/// it holds right away (pods with grace 0, allocations released).
async fn delete_namespace_contents(api: &ApiServer, ns: &str) -> Result<(), ApiError> {
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    for res in super::resources::RESOURCES.iter().filter(|r| r.namespaced) {
        let page = api
            .storage
            .list(&api.storage.key(&dir_path(res, Some(ns))), None, 0, 0)
            .await?;
        for s in page.items {
            let name = meta::name_of(&s.value).to_string();
            // Strip finalizers: nothing would ever remove them.
            let key = s.key.clone();
            let write = Write {
                value: None,
                releases: releases(api, &s.value, None),
                ..Default::default()
            };
            match api
                .storage
                .write(&key, Expect::ModRevision(s.mod_revision), write)
                .await?
            {
                WriteOutcome::Done { .. } => {}
                _ => match Box::pin(delete(api, res, Some(ns), &name, &now)).await {
                    Ok(_) | Err(ApiError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                },
            }
        }
    }
    Ok(())
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

/// `POST pods/<name>/binding`: sets spec.nodeName once.
pub async fn bind(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    binding: &Value,
) -> Result<Value, ApiError> {
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            name,
            vec![super::status::Cause::required("target.name")],
        ));
    }
    let pod_name = name.to_string();
    let path = object_path(res, ns, name);
    let key = api.storage.key(&path);
    for _ in 0..UPDATE_RETRIES {
        let current = get(api, res, ns, name).await?;
        let mut pod = current.value.clone();
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::Conflict {
                subject: subject(res, &pod_name),
                msg: "pod is being deleted, cannot be assigned to a host".into(),
            });
        }
        match pod.pointer("/spec/nodeName").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => {
                return Err(ApiError::Conflict {
                    subject: subject(res, &pod_name),
                    msg: format!("pod {pod_name} is already assigned to node \"{n}\""),
                })
            }
            _ => {}
        }
        pod["spec"]["nodeName"] = json!(node);
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": meta::now()});
        if !pod.get("status").is_some_and(Value::is_object) {
            pod["status"] = json!({});
        }
        let mut conds: Vec<Value> = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conds.retain(|c| c["type"] != "PodScheduled");
        conds.push(cond);
        pod["status"]["conditions"] = json!(conds);
        let write = Write {
            value: Some(encode(&pod)?),
            ..Default::default()
        };
        if let WriteOutcome::Done { .. } = api
            .storage
            .write(&key, Expect::ModRevision(current.mod_revision), write)
            .await?
        {
            return Ok(super::status::success_status(
                json!({"name": pod_name, "kind": "pods"}),
            ));
        }
    }
    Err(conflict(res, name))
}

/// Revision-free set of allocation keys a service holds (for tests).
pub fn service_allocations(obj: &Value) -> BTreeSet<String> {
    service::held(obj)
}
