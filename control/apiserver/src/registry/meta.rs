//! Object metadata the server owns: name generation, namespace, uid,
//! creationTimestamp, generation, and what an update may not change. It
//! never validates a kind's spec.

use rand::Rng;
use serde_json::{json, Map, Value};

use crate::resources::Resource;
use crate::status::{ApiError, Cause};

use super::validation;

/// RFC 3339 UTC with second precision, as Kubernetes writes timestamps.
pub fn now() -> String {
    rfc3339_after(0)
}

pub fn rfc3339_after(seconds: i64) -> String {
    let t = k8s_openapi::jiff::Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
        .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now());
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random version-4 UUID.
pub fn uuid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The suffix `generateName` gets (Kubernetes' alphabet without vowels).
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        // Just made an object above.
        _ => unreachable!("metadata is an object"),
    }
}

pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Fills kind/apiVersion and checks a body's own ones agree with the URL.
pub fn type_meta(res: &Resource, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    let want_av = res.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(want_av),
        Some(av) if av == want_av => {}
        Some(av) => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )))
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(res.kind),
        Some(k) if k == res.kind => {}
        Some(k) => {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                res.kind
            )))
        }
    }
    Ok(())
}

/// Server-owned metadata for a new object; `namespace` is the URL's.
pub fn prepare_create(
    res: &Resource,
    obj: &mut Value,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    let m = meta_mut(obj);
    let name = m
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        match m.get("generateName").and_then(Value::as_str) {
            Some(g) if !g.is_empty() => {
                let n = format!("{g}{}", name_suffix());
                m.insert("name".into(), json!(n));
            }
            _ => {
                return Err(ApiError::invalid(
                    res.group,
                    res.kind,
                    "",
                    vec![Cause::required("metadata.name")],
                ))
            }
        }
    }
    set_namespace(res, m, namespace)?;
    m.insert("uid".into(), json!(uuid()));
    m.insert("creationTimestamp".into(), json!(now()));
    m.insert("generation".into(), json!(1));
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        m.remove(k);
    }
    Ok(())
}

fn set_namespace(
    res: &Resource,
    m: &mut Map<String, Value>,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    if !res.namespaced {
        m.remove("namespace");
        return Ok(());
    }
    let url_ns = namespace.unwrap_or_default();
    match m.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() && ns != url_ns => Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        )),
        _ => {
            m.insert("namespace".into(), json!(url_ns));
            Ok(())
        }
    }
}

fn finalizers(obj: &Value) -> Vec<&str> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Name, label and finalizer checks every kind shares.
pub fn validate(res: &Resource, obj: &Value, out: &mut Vec<Cause>) {
    let f = finalizers(obj);
    if f.contains(&"orphan") && f.contains(&"foregroundDeletion") {
        out.push(Cause::invalid(
            "metadata.finalizers",
            "foregroundDeletion",
            "finalizer foregroundDeletion and orphan cannot be both set",
        ));
    }
    let name = name_of(obj);
    // Kubernetes holds namespaces and services to the stricter DNS label.
    if matches!(res.plural, "namespaces" | "services") {
        validation::dns1123_label("metadata.name", name, out);
    } else if super::rbac::is_rbac_plural(res.plural) {
        // RBAC names are path segments (`system:masters`).
        super::rbac::path_segment_name("metadata.name", name, out);
    } else if res.plural != "events" {
        validation::dns1123_subdomain("metadata.name", name, out);
    }
    if let Some(meta) = obj.get("metadata") {
        validation::labels("metadata", meta, out);
    }
}

/// Carries what an update may not change from the stored object into the
/// new one, and checks the name and namespace agree with the URL.
pub fn prepare_update(
    res: &Resource,
    old: &Value,
    new: &mut Value,
    name: &str,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    let body_name = name_of(new).to_string();
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if old.pointer("/metadata/deletionTimestamp").is_some() {
        let before = finalizers(old);
        let added: Vec<&str> = finalizers(new)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            return Err(ApiError::invalid(
                res.group,
                res.kind,
                name,
                vec![Cause::forbidden(
                    "metadata.finalizers",
                    format!("no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"),
                )],
            ));
        }
    }
    let m = meta_mut(new);
    m.insert("name".into(), json!(name));
    set_namespace(res, m, namespace)?;
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old.pointer(&format!("/metadata/{k}")) {
            Some(v) => {
                m.insert(k.into(), v.clone());
            }
            None => {
                m.remove(k);
            }
        }
    }
    m.remove("managedFields");
    m.remove("resourceVersion");
    // Spec changes move the generation, which controllers compare with
    // status.observedGeneration.
    if old.get("spec") != new.get("spec") {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(new).insert("generation".into(), json!(g + 1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn create_generates_name_and_owns_metadata() {
        let pods = find("", "v1", "pods").unwrap();
        let mut o =
            json!({"metadata": {"generateName": "web-", "resourceVersion": "5", "uid": "x"}});
        prepare_create(pods, &mut o, Some("default")).unwrap();
        let name = name_of(&o);
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(o["metadata"]["namespace"], "default");
        assert_ne!(o["metadata"]["uid"], "x");
        assert!(o["metadata"].get("resourceVersion").is_none());
        assert_eq!(uuid().len(), 36);
    }

    #[test]
    fn namespace_mismatch_is_bad_request() {
        let pods = find("", "v1", "pods").unwrap();
        let mut o = json!({"metadata": {"name": "a", "namespace": "other"}});
        assert!(matches!(
            prepare_create(pods, &mut o, Some("default")),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn update_bumps_generation_on_spec_change_only() {
        let deps = find("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d", "uid": "u", "generation": 3}, "spec": {"replicas": 1}});
        let mut same = json!({"metadata": {"name": "d"}, "spec": {"replicas": 1}});
        prepare_update(deps, &old, &mut same, "d", Some("ns")).unwrap();
        assert_eq!(same["metadata"]["generation"], 3);
        assert_eq!(same["metadata"]["uid"], "u");
        let mut changed = json!({"metadata": {"name": "d"}, "spec": {"replicas": 2}});
        prepare_update(deps, &old, &mut changed, "d", Some("ns")).unwrap();
        assert_eq!(changed["metadata"]["generation"], 4);
    }

    #[test]
    fn no_new_finalizers_while_deleting() {
        let deps = find("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d", "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["a", "b"]}});
        let mut fewer = json!({"metadata": {"name": "d", "finalizers": ["b"]}});
        prepare_update(deps, &old, &mut fewer, "d", Some("ns")).unwrap();
        assert_eq!(
            fewer["metadata"]["deletionTimestamp"],
            "2026-01-01T00:00:00Z"
        );
        let mut more = json!({"metadata": {"name": "d", "finalizers": ["b", "c"]}});
        assert!(matches!(
            prepare_update(deps, &old, &mut more, "d", Some("ns")),
            Err(ApiError::Invalid { .. })
        ));
    }
}
