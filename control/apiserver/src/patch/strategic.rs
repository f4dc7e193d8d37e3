//! Strategic merge patch for the built-in kinds: lists with a merge key
//! (containers by name, container ports by containerPort, service ports by
//! port, ...) merge element-wise; `$patch: delete|replace`, `$retainKeys`,
//! `$deleteFromPrimitiveList/`, `$setElementOrder/` directives as kubectl
//! apply sends them. The merge keys come from a table keyed by field name
//! (and parent where names clash), not from OpenAPI.

use serde_json::{Map, Value};

/// How a list field merges.
#[derive(Debug, PartialEq, Eq)]
enum ListStrategy {
    Replace,
    /// Objects merged by this key.
    MergeBy(&'static str),
    /// A set of scalars.
    MergePrimitives,
}

/// The merge strategy of the list `field` whose parent field is `parent`.
fn strategy(parent: Option<&str>, field: &str) -> ListStrategy {
    use ListStrategy::*;
    match (parent, field) {
        (_, "containers" | "initContainers" | "ephemeralContainers") => MergeBy("name"),
        (Some("containers" | "initContainers" | "ephemeralContainers"), "ports") => {
            MergeBy("containerPort")
        }
        (Some("spec"), "ports") => MergeBy("port"),
        (_, "env" | "volumes" | "imagePullSecrets" | "secrets" | "resourceClaims") => {
            MergeBy("name")
        }
        (_, "volumeMounts") => MergeBy("mountPath"),
        (_, "volumeDevices") => MergeBy("devicePath"),
        (_, "hostAliases") => MergeBy("ip"),
        (_, "conditions") => MergeBy("type"),
        (Some("status"), "addresses") => MergeBy("type"),
        (_, "ownerReferences") => MergeBy("uid"),
        (_, "taints") => MergeBy("key"),
        (_, "topologySpreadConstraints") => MergeBy("topologyKey"),
        (_, "finalizers") => MergePrimitives,
        _ => Replace,
    }
}

pub fn merge(original: &Value, patch: &Value) -> Result<Value, String> {
    merge_value(original, patch, None)
}

fn merge_value(original: &Value, patch: &Value, parent: Option<&str>) -> Result<Value, String> {
    match (original, patch) {
        (Value::Object(o), Value::Object(p)) => merge_object(o, p, parent).map(Value::Object),
        _ => Ok(strip_directives(patch)),
    }
}

/// A patch value used as a whole still must not carry directives.
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|e| e.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn merge_object(
    original: &Map<String, Value>,
    patch: &Map<String, Value>,
    parent: Option<&str>,
) -> Result<Map<String, Value>, String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            return match strip_directives(&Value::Object(patch.clone())) {
                Value::Object(m) => Ok(m),
                _ => Ok(Map::new()),
            }
        }
        Some("delete") => return Ok(Map::new()),
        Some(other) => return Err(format!("unknown patch type: {other}")),
        None => {}
    }
    let mut out = original.clone();
    let mut orders: Vec<(&str, &Vec<Value>)> = Vec::new();
    for (k, pv) in patch {
        if k == "$patch" || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Some(order) = pv.as_array() {
                orders.push((field, order));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let drop: Vec<&Value> = pv
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            if let Some(Value::Array(list)) = out.get_mut(field) {
                list.retain(|v| !drop.contains(&v));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            out.remove(k);
            continue;
        }
        let merged = match (out.get(k), pv) {
            (Some(Value::Array(ov)), Value::Array(pl)) => {
                merge_list(ov, pl, strategy(parent, k), k)?
            }
            (Some(ov), _) => merge_value(ov, pv, Some(k))?,
            (None, Value::Array(pl)) => merge_list(&[], pl, strategy(parent, k), k)?,
            (None, _) => strip_directives(pv),
        };
        out.insert(k.clone(), merged);
    }
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (field, order) in orders {
        if let Some(Value::Array(list)) = out.get_mut(field) {
            reorder(list, order, strategy(parent, field));
        }
    }
    Ok(out)
}

fn merge_list(
    original: &[Value],
    patch: &[Value],
    how: ListStrategy,
    field: &str,
) -> Result<Value, String> {
    match how {
        ListStrategy::Replace => Ok(strip_directives(&Value::Array(patch.to_vec()))),
        ListStrategy::MergePrimitives => {
            let mut out = original.to_vec();
            for v in patch {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(Value::Array(out))
        }
        ListStrategy::MergeBy(key) => {
            if patch
                .iter()
                .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"))
            {
                return Ok(strip_directives(&Value::Array(
                    patch
                        .iter()
                        .filter(|e| e.get("$patch").is_none())
                        .cloned()
                        .collect(),
                )));
            }
            let mut out = original.to_vec();
            for pe in patch {
                let Some(kv) = pe.get(key) else {
                    return Err(format!(
                        "map: {pe} does not contain declared merge key: {key}"
                    ));
                };
                let pos = out.iter().position(|oe| oe.get(key) == Some(kv));
                if pe.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = pos {
                        out.remove(i);
                    }
                    continue;
                }
                match pos {
                    Some(i) => out[i] = merge_value(&out[i], pe, Some(field))?,
                    None => out.push(merge_value(&Value::Object(Map::new()), pe, Some(field))?),
                }
            }
            Ok(Value::Array(out))
        }
    }
}

/// Puts the listed elements first, in the given order (kubectl apply sends
/// the order it wants with `$setElementOrder/<field>`).
fn reorder(list: &mut Vec<Value>, order: &[Value], how: ListStrategy) {
    let key_of = |v: &Value| -> Option<Value> {
        match how {
            ListStrategy::MergeBy(k) => v.get(k).cloned(),
            _ => Some(v.clone()),
        }
    };
    let mut rest = std::mem::take(list);
    for o in order {
        let want = key_of(o);
        if let Some(i) = rest.iter().position(|e| key_of(e) == want) {
            list.push(rest.remove(i));
        }
    }
    list.extend(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_ports_by_container_port() {
        let cur = json!({"spec": {"containers": [
            {"name": "a", "image": "x:1", "ports": [{"containerPort": 80, "name": "http"}]},
            {"name": "b", "image": "y:1"}
        ]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [
                {"name": "a", "image": "x:2", "ports": [{"containerPort": 81}]},
            ]
        }});
        let out = merge(&cur, &patch).unwrap();
        let cs = out["spec"]["containers"].as_array().unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0]["name"], "b");
        assert_eq!(cs[1]["image"], "x:2");
        assert_eq!(cs[1]["ports"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn directives() {
        let cur = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "ports": [{"port": 80}], "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]},
            "spec": {
                "containers": [{"name": "a", "$patch": "delete"}],
                "ports": [{"port": 443}],
                "strategy": {"$retainKeys": ["type"], "type": "Recreate"}
            }
        });
        let out = merge(&cur, &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
        assert_eq!(out["spec"]["ports"].as_array().unwrap().len(), 2);
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let replaced = merge(
            &cur,
            &json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "z"}]}}),
        )
        .unwrap();
        assert_eq!(replaced["spec"]["containers"], json!([{"name": "z"}]));
    }

    #[test]
    fn non_merge_lists_are_replaced() {
        let cur = json!({"spec": {"tolerations": [{"key": "a"}]}});
        let out = merge(&cur, &json!({"spec": {"tolerations": [{"key": "b"}]}})).unwrap();
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "b"}]));
    }
}
