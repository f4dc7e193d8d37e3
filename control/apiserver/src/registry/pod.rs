//! Pods: defaulting and validation of pod specs (also used for the pod
//! templates of workloads), the fields an update may change, and the
//! graceful-deletion rule. Binding lives in the REST layer; this file never
//! touches storage.

use serde_json::{json, Value};

use crate::status::Cause;

use super::strategy::Strategy;
use super::validation;

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj[key] = v;
    }
}

fn default_container(c: &mut Value) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    // No tag, or `:latest`, means the image can change under the same name.
    let last = image.rsplit('/').next().unwrap_or_default();
    let policy = if image.contains('@') {
        "IfNotPresent"
    } else if !last.contains(':') || last.ends_with(":latest") {
        "Always"
    } else {
        "IfNotPresent"
    };
    set_default(c, "imagePullPolicy", json!(policy));
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
        }
    }
}

/// Kubernetes' defaults for a pod spec.
pub fn default_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(default_container);
        }
    }
}

/// Validates a pod spec found at `field` (`spec` or `spec.template.spec`).
pub fn validate_spec(field: &str, spec: Option<&Value>, out: &mut Vec<Cause>) {
    let Some(spec) = spec else {
        out.push(Cause::required(field));
        return;
    };
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        out.push(Cause::required(format!("{field}.containers")));
    }
    let mut names: Vec<&str> = Vec::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let f = format!("{field}.{list}[{i}]");
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() {
                out.push(Cause::required(format!("{f}.name")));
            } else {
                validation::dns1123_label(&format!("{f}.name"), name, out);
                if names.contains(&name) {
                    out.push(Cause::duplicate(format!("{f}.name"), name));
                }
                names.push(name);
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                out.push(Cause::required(format!("{f}.image")));
            }
            let mut port_names: Vec<&str> = Vec::new();
            for (j, p) in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let pf = format!("{f}.ports[{j}]");
                validation::port(
                    &format!("{pf}.containerPort"),
                    p.get("containerPort"),
                    true,
                    out,
                );
                if p.get("hostPort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    validation::port(&format!("{pf}.hostPort"), p.get("hostPort"), false, out);
                }
                validation::protocol(&format!("{pf}.protocol"), p.get("protocol"), out);
                if let Some(n) = p.get("name").and_then(Value::as_str) {
                    validation::port_name(&format!("{pf}.name"), n, out);
                    if port_names.contains(&n) {
                        out.push(Cause::duplicate(format!("{pf}.name"), n));
                    }
                    port_names.push(n);
                }
            }
        }
    }
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str) {
        if !matches!(rp, "Always" | "OnFailure" | "Never") {
            out.push(Cause::not_supported(
                format!("{field}.restartPolicy"),
                rp,
                &["Always", "OnFailure", "Never"],
            ));
        }
    }
    if let Some(g) = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
    {
        if g < 0 {
            out.push(Cause::invalid(
                format!("{field}.terminationGracePeriodSeconds"),
                g,
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// The spec with the fields an update may change blanked out: two specs
/// that differ after this differ in something immutable.
fn immutable_view(spec: Option<&Value>) -> Value {
    let mut s = spec.cloned().unwrap_or(Value::Null);
    for list in ["containers", "initContainers"] {
        if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                if let Some(o) = c.as_object_mut() {
                    o.remove("image");
                }
            }
        }
    }
    if let Some(o) = s.as_object_mut() {
        o.remove("activeDeadlineSeconds");
        o.remove("tolerations");
    }
    s
}

pub fn validate_update(old: &Value, new: &Value, out: &mut Vec<Cause>) {
    if immutable_view(old.get("spec")) != immutable_view(new.get("spec")) {
        out.push(Cause::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing tolerations)",
        ));
    }
}

/// Kubernetes' QoS class: Guaranteed when every container sets cpu and
/// memory limits equal to its requests (requests default to limits),
/// BestEffort when none sets any, Burstable otherwise.
pub fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| {
            spec.and_then(|s| s.get(*l))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        let relevant = |m: Option<&serde_json::Map<String, Value>>| {
            m.into_iter()
                .flatten()
                .filter(|(k, _)| *k == "cpu" || *k == "memory")
                .count()
        };
        if relevant(req) + relevant(lim) > 0 {
            any = true;
        }
        for r in ["cpu", "memory"] {
            // Compared as quantities: "1" and "1000m" are the same CPU.
            let amount = |v: Option<&Value>| {
                v.and_then(Value::as_str)
                    .and_then(capstan_k8s::quantity::parse_milli)
            };
            let l = amount(lim.and_then(|m| m.get(r)));
            let q = amount(req.and_then(|m| m.get(r))).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed && !containers.is_empty() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Status a new pod starts with.
pub fn initial_status(spec: Option<&Value>) -> Value {
    json!({"phase": "Pending", "qosClass": qos_class(spec)})
}

/// The Pod strategy: a new pod starts Pending with its QoS class, specs
/// are defaulted and validated, and an update may change only what
/// `validate_update` allows.
pub struct PodStrategy;

impl Strategy for PodStrategy {
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = initial_status(obj.get("spec"));
    }

    fn canonicalize(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            default_spec(spec);
        }
    }

    fn validate(&self, obj: &Value, out: &mut Vec<Cause>) {
        validate_spec("spec", obj.get("spec"), out);
    }

    fn validate_update(&self, old: &Value, new: &Value, out: &mut Vec<Cause>) {
        validate_update(old, new, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pull_policy_by_tag() {
        let mut s = json!({"containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "reg:5000/x:1.2"}]});
        default_spec(&mut s);
        assert_eq!(s["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(s["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(s["restartPolicy"], "Always");
    }

    #[test]
    fn validation_names_fields() {
        let mut out = Vec::new();
        let s = json!({"containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 70000}]},
            {"name": "a"}
        ]});
        validate_spec("spec", Some(&s), &mut out);
        let fields: Vec<&str> = out.iter().map(|c| c.field.as_str()).collect();
        assert!(
            fields.contains(&"spec.containers[0].ports[0].containerPort"),
            "{fields:?}"
        );
        assert!(fields.contains(&"spec.containers[1].name"), "{fields:?}");
        assert!(fields.contains(&"spec.containers[1].image"), "{fields:?}");
    }

    #[test]
    fn qos_classes() {
        let c = |r: Value| json!({"containers": [{"name": "a", "resources": r}]});
        assert_eq!(qos_class(Some(&c(json!({})))), "BestEffort");
        assert_eq!(
            qos_class(Some(&c(json!({"limits": {"cpu": "1", "memory": "1Gi"}})))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(Some(&c(json!({"requests": {"cpu": "1"}})))),
            "Burstable"
        );
        assert_eq!(
            qos_class(Some(&c(
                json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            ))),
            "Burstable"
        );
    }

    #[test]
    fn only_images_may_change() {
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        let img = json!({"spec": {"containers": [{"name": "a", "image": "y"}]}});
        let mut out = Vec::new();
        validate_update(&old, &img, &mut out);
        assert!(out.is_empty());
        let node = json!({"spec": {"containers": [{"name": "a", "image": "x"}], "nodeName": "n"}});
        validate_update(&old, &node, &mut out);
        assert_eq!(out.len(), 1);
    }
}
