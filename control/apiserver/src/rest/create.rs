//! Create: server-owned metadata, defaulting and validation, the
//! namespace check, and service allocations claimed in the same etcd
//! transaction as the object (re-picked when a concurrent create won).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::stored::{encode, get, object_path, subject, with_rv, UPDATE_RETRIES};
use crate::registry::{self, meta, service};
use crate::resources::Resource;
use crate::status::ApiError;
use crate::storage::{Expect, Write, WriteOutcome};
use crate::ApiServer;

/// The namespace exists and is not Terminating (Kubernetes' NamespaceLifecycle
/// admission: `<plural> "<name>" is forbidden: ...`). Answers the namespace's
/// key and mod revision, for the create's transaction to compare: the check
/// and the write are then atomic, and the namespace may come from the recent
/// cache (a stale guess fails the compare and is checked again with `live`).
async fn check_namespace(
    api: &ApiServer,
    res: &Resource,
    name: &str,
    ns: &str,
    live: bool,
) -> Result<Option<(String, i64)>, ApiError> {
    let Some(nsres) = crate::resources::find("", "v1", "namespaces") else {
        return Ok(None);
    };
    let key = api.storage.key(&object_path(nsres, None, ns));
    if !live {
        // Only an active namespace is taken on trust; a Terminating or
        // missing one is confirmed by a read before the create is refused.
        if let Some(s) = api.storage.guess(&key) {
            if s.value.pointer("/metadata/deletionTimestamp").is_none() {
                return Ok(Some((key, s.mod_revision)));
            }
        }
    }
    match get(api, nsres, None, ns).await {
        Ok(s) if s.value.pointer("/metadata/deletionTimestamp").is_some() => {
            Err(ApiError::Forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                res.plural
            )))
        }
        Ok(s) => Ok(Some((key, s.mod_revision))),
        // The system namespaces always exist, even before `bootstrap` ran.
        Err(ApiError::NotFound(_)) if crate::SYSTEM_NAMESPACES.contains(&ns) => {
            match Box::pin(create(api, nsres, None, json!({"metadata": {"name": ns}}))).await {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => Ok(None),
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
pub(super) async fn plan_service(
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
pub(super) fn claim_keys(api: &ApiServer, claims: &[service::Claim]) -> Vec<String> {
    claims.iter().map(|c| api.storage.key(&c.key)).collect()
}

pub(super) fn releases(api: &ApiServer, old: &Value, new: Option<&Value>) -> Vec<String> {
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
    // Admission names the object as the client sent it (generateName if
    // the name is not made yet), as kube-apiserver's admission runs first.
    let reported = ["/metadata/name", "/metadata/generateName"]
        .iter()
        .find_map(|p| {
            base.pointer(p)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_default()
        .to_string();
    meta::prepare_create(res, &mut base, ns)?;
    registry::prepare_create(res, &mut base)?;
    let name = meta::name_of(&base).to_string();
    let path = object_path(res, ns, &name);
    let key = api.storage.key(&path);
    let companions = companions(api, res, &base)?;
    let mut live_namespace = dry_run;
    let mut admitted = false;
    for _ in 0..UPDATE_RETRIES {
        let guard = match (res.namespaced, ns) {
            (true, Some(ns)) => check_namespace(api, res, &name, ns, live_namespace).await?,
            _ => None,
        };
        // After the namespace check (a pod in a missing namespace is a 404
        // there, not a missing account here), once.
        if !admitted && res.kind == "Pod" {
            if let Some(ns) = ns {
                crate::admission::admit_pod(api, ns, &mut base, &reported).await?;
                // The token volume went in after validation: check again.
                registry::validate_create(res, &base)?;
            }
            admitted = true;
        }
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
            guards: guard.into_iter().collect(),
            companions: companions.clone(),
        };
        match api.storage.write(&key, Expect::Absent, write).await? {
            WriteOutcome::Done { revision } => {
                tracing::debug!(resource = res.plural, name = %name, revision, "created");
                return Ok(with_rv(obj, revision));
            }
            WriteOutcome::ObjectChanged(_) => {
                return Err(ApiError::AlreadyExists(subject(res, &name)))
            }
            // The namespace changed since it was checked: check it again.
            WriteOutcome::GuardChanged(_) => live_namespace = true,
            WriteOutcome::ClaimTaken(k) => {
                if let Some(c) = claims
                    .iter()
                    .find(|c| api.storage.key(&c.key) == k && c.explicit)
                {
                    return Err(ApiError::invalid(
                        res.group,
                        res.kind,
                        &name,
                        vec![crate::status::Cause::invalid(
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

/// The objects a create writes along with its own, in the same
/// transaction, each only if absent: a new namespace's `default`
/// ServiceAccount. Kubernetes leaves that to the serviceaccount controller,
/// and refuses pods made before it ran (after retrying for about a
/// second); making it with the namespace is a deliberate deviation that
/// removes that race. The controller still recreates a deleted one.
fn companions(
    api: &ApiServer,
    res: &Resource,
    obj: &Value,
) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    if res.kind != "Namespace" || !api.config.admission.service_account {
        return Ok(Vec::new());
    }
    let Some(sa_res) = crate::resources::find("", "v1", "serviceaccounts") else {
        return Ok(Vec::new());
    };
    let ns = meta::name_of(obj);
    let mut sa = json!({"metadata": {
        "name": crate::admission::service_account::DEFAULT_SERVICE_ACCOUNT
    }});
    meta::type_meta(sa_res, &mut sa)?;
    let mut sa = registry::normalize(sa_res, sa)?;
    meta::prepare_create(sa_res, &mut sa, Some(ns))?;
    registry::prepare_create(sa_res, &mut sa)?;
    let path = object_path(sa_res, Some(ns), meta::name_of(&sa));
    Ok(vec![(api.storage.key(&path), encode(&sa)?)])
}
