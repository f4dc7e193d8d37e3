//! Workloads (Deployment, ReplicaSet, DaemonSet, ReplicationController):
//! defaults, selector-vs-template checks, and the `scale` subresource's
//! view (autoscaling/v1 Scale). Pod template specs go through the pod rules.

use serde_json::{json, Value};

use crate::selectors::LabelSelector;
use crate::status::Cause;

use super::pod;
use super::strategy::Strategy;

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj[key] = v;
    }
}

pub fn default_spec(kind: &str, spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    if kind != "DaemonSet" {
        set_default(spec, "replicas", json!(1));
    }
    match kind {
        "Deployment" => {
            set_default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
            );
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
        }
        "DaemonSet" => {
            set_default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
            set_default(spec, "revisionHistoryLimit", json!(10));
        }
        // An RC without a selector selects its template's labels.
        "ReplicationController" if spec.get("selector").is_none_or(Value::is_null) => {
            if let Some(l) = spec.pointer("/template/metadata/labels").cloned() {
                spec["selector"] = l;
            }
        }
        _ => {}
    }
    if let Some(ps) = spec.pointer_mut("/template/spec") {
        pod::default_spec(ps);
    }
}

/// The selector as a label selector (RCs carry a plain map).
fn selector(kind: &str, spec: &Value) -> Option<Result<LabelSelector, String>> {
    let sel = spec.get("selector")?;
    if sel.is_null() {
        return None;
    }
    Some(if kind == "ReplicationController" {
        LabelSelector::from_object(&json!({ "matchLabels": sel })).map_err(|e| e.to_string())
    } else {
        LabelSelector::from_object(sel).map_err(|e| e.to_string())
    })
}

pub fn validate_spec(kind: &str, spec: Option<&Value>, out: &mut Vec<Cause>) {
    let Some(spec) = spec else {
        out.push(Cause::required("spec"));
        return;
    };
    if let Some(r) = spec.get("replicas").and_then(Value::as_i64) {
        if r < 0 {
            out.push(Cause::invalid(
                "spec.replicas",
                r,
                "must be greater than or equal to 0",
            ));
        }
    }
    let labels = spec.pointer("/template/metadata/labels");
    match selector(kind, spec) {
        None => out.push(Cause::required("spec.selector")),
        Some(Err(e)) => out.push(Cause::invalid("spec.selector", "", &e)),
        Some(Ok(sel)) if sel.is_empty() => out.push(Cause::invalid(
            "spec.selector",
            "",
            "empty selector is invalid for deployment",
        )),
        Some(Ok(sel)) => {
            if !sel.matches(labels) {
                out.push(Cause::invalid(
                    "spec.template.metadata.labels",
                    labels.map(Value::to_string).unwrap_or_default(),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    pod::validate_spec("spec.template.spec", spec.pointer("/template/spec"), out);
}

/// The autoscaling/v1 Scale of a workload.
pub fn scale_of(kind: &str, obj: &Value) -> Value {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let selector = match selector(kind, &spec) {
        Some(Ok(s)) => s.to_query(),
        _ => String::new(),
    };
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": spec.get("replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// The strategy of one workload kind: spec defaults and validation by
/// kind, and — for the apps/v1 kinds — an immutable selector.
pub struct WorkloadStrategy {
    kind: &'static str,
    /// apps/v1 made `spec.selector` immutable; core/v1's
    /// ReplicationController kept it mutable.
    immutable_selector: bool,
}

impl WorkloadStrategy {
    pub const DEPLOYMENT: WorkloadStrategy = WorkloadStrategy {
        kind: "Deployment",
        immutable_selector: true,
    };
    pub const REPLICA_SET: WorkloadStrategy = WorkloadStrategy {
        kind: "ReplicaSet",
        immutable_selector: true,
    };
    pub const DAEMON_SET: WorkloadStrategy = WorkloadStrategy {
        kind: "DaemonSet",
        immutable_selector: true,
    };
    pub const REPLICATION_CONTROLLER: WorkloadStrategy = WorkloadStrategy {
        kind: "ReplicationController",
        immutable_selector: false,
    };
}

impl Strategy for WorkloadStrategy {
    fn canonicalize(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            default_spec(self.kind, spec);
        }
    }

    fn validate(&self, obj: &Value, out: &mut Vec<Cause>) {
        validate_spec(self.kind, obj.get("spec"), out);
    }

    fn validate_update(&self, old: &Value, new: &Value, out: &mut Vec<Cause>) {
        if let Some(sel) = old.pointer("/spec/selector") {
            if self.immutable_selector && new.pointer("/spec/selector") != Some(sel) {
                out.push(Cause::invalid("spec.selector", "", "field is immutable"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_must_match_template() {
        let spec = json!({"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}});
        let mut out = Vec::new();
        validate_spec("Deployment", Some(&spec), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn rc_selector_defaults_from_template_and_scale_reads_it() {
        let mut spec = json!({"template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}});
        default_spec("ReplicationController", &mut spec);
        assert_eq!(spec["selector"], json!({"app": "a"}));
        assert_eq!(spec["replicas"], 1);
        let s = scale_of(
            "ReplicationController",
            &json!({"metadata": {"name": "r"}, "spec": spec}),
        );
        assert_eq!(s["status"]["selector"], "app=a");
        assert_eq!(s["spec"]["replicas"], 1);
    }
}
