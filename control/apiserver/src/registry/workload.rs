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
            // As Kubernetes: RollingUpdate by default, and a rolling update
            // without numbers replaces one pod at a time, without surge.
            set_default(spec, "updateStrategy", json!({}));
            let us = &mut spec["updateStrategy"];
            if us.is_object() {
                set_default(us, "type", json!("RollingUpdate"));
                if us.get("type") == Some(&json!("RollingUpdate")) {
                    set_default(us, "rollingUpdate", json!({}));
                    let ru = &mut us["rollingUpdate"];
                    if ru.is_object() {
                        set_default(ru, "maxUnavailable", json!(1));
                        set_default(ru, "maxSurge", json!(0));
                    }
                }
            }
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
    if kind == "DaemonSet" {
        validate_daemon_update_strategy(spec.get("updateStrategy"), out);
    }
}

/// An int or percentage's value, and whether it is well formed.
fn int_or_percent(v: Option<&Value>) -> Option<Result<i64, ()>> {
    match v? {
        Value::Number(n) => Some(n.as_i64().ok_or(())),
        Value::String(s) => Some(
            s.strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .map(|p| p.min(101))
                .ok_or(()),
        ),
        Value::Null => None,
        _ => Some(Err(())),
    }
}

/// Kubernetes' DaemonSet update strategy rules: RollingUpdate or OnDelete;
/// maxUnavailable and maxSurge non-negative, at most 100%, exactly one of
/// them non-zero.
fn validate_daemon_update_strategy(us: Option<&Value>, out: &mut Vec<Cause>) {
    let Some(us) = us.filter(|u| !u.is_null()) else {
        return;
    };
    let ty = us.get("type").and_then(Value::as_str).unwrap_or_default();
    if !matches!(ty, "RollingUpdate" | "OnDelete") {
        out.push(Cause::not_supported(
            "spec.updateStrategy.type",
            ty,
            &["OnDelete", "RollingUpdate"],
        ));
        return;
    }
    if ty != "RollingUpdate" {
        return;
    }
    let ru = us.get("rollingUpdate");
    let mut value = |name: &str| -> i64 {
        let field = format!("spec.updateStrategy.rollingUpdate.{name}");
        let raw = ru.and_then(|r| r.get(name));
        let shown = raw
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default();
        match int_or_percent(raw) {
            None => 0,
            Some(Err(())) => {
                out.push(Cause::invalid(&field, &shown, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"));
                0
            }
            Some(Ok(n)) if n < 0 => {
                out.push(Cause::invalid(
                    &field,
                    &shown,
                    "must be greater than or equal to 0",
                ));
                0
            }
            Some(Ok(n)) => {
                if raw.is_some_and(Value::is_string) && n > 100 {
                    out.push(Cause::invalid(
                        &field,
                        &shown,
                        "must not be greater than 100%",
                    ));
                }
                n
            }
        }
    };
    let unavailable = value("maxUnavailable");
    let surge = value("maxSurge");
    match (unavailable != 0, surge != 0) {
        (true, true) => out.push(Cause::invalid(
            "spec.updateStrategy.rollingUpdate.maxSurge",
            surge,
            "may not be set when maxUnavailable is non-zero",
        )),
        (false, false) => out.push(Cause {
            reason: "FieldValueRequired",
            field: "spec.updateStrategy.rollingUpdate.maxUnavailable".into(),
            message: "Required value: cannot be 0 when maxSurge is 0".into(),
        }),
        _ => {}
    }
}

/// The annotation Kubernetes keeps on a DaemonSet: the template's
/// generation, 1 on create and one more on every template change. The
/// controller labels pods with it (`pod-template-generation`).
pub const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn template_generation(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/annotations")?
        .get(TEMPLATE_GENERATION)?
        .as_str()?
        .parse()
        .ok()
}

fn set_template_generation(obj: &mut Value, g: i64) {
    let m = super::meta::meta_mut(obj);
    if !m.get("annotations").is_some_and(Value::is_object) {
        m.insert("annotations".into(), json!({}));
    }
    if let Some(Value::Object(a)) = m.get_mut("annotations") {
        a.insert(TEMPLATE_GENERATION.into(), json!(g.to_string()));
    }
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
    fn prepare_for_create(&self, obj: &mut Value) {
        if self.kind == "DaemonSet" {
            set_template_generation(obj, 1);
        }
    }

    fn prepare_for_update(&self, old: &Value, new: &mut Value) {
        if self.kind != "DaemonSet" {
            return;
        }
        let g = template_generation(old).unwrap_or(1);
        let changed = old.pointer("/spec/template") != new.pointer("/spec/template");
        set_template_generation(new, if changed { g + 1 } else { g });
    }

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

    fn daemon_set(strategy: Value) -> Value {
        json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "a"}}, "updateStrategy": strategy,
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    #[test]
    fn daemon_set_update_strategy_defaults_and_rules() {
        let mut spec = daemon_set(json!({"type": "RollingUpdate"}))["spec"].take();
        default_spec("DaemonSet", &mut spec);
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        let fields = |strategy: Value| {
            let mut spec = daemon_set(strategy)["spec"].take();
            default_spec("DaemonSet", &mut spec);
            let mut out = Vec::new();
            validate_spec("DaemonSet", Some(&spec), &mut out);
            out.into_iter().map(|c| c.field).collect::<Vec<_>>()
        };
        let surge = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}});
        assert!(fields(surge).is_empty());
        let both =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}});
        assert_eq!(fields(both), ["spec.updateStrategy.rollingUpdate.maxSurge"]);
        let neither = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}});
        assert_eq!(
            fields(neither),
            ["spec.updateStrategy.rollingUpdate.maxUnavailable"]
        );
        let bad = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "x%", "maxSurge": -1}});
        assert_eq!(fields(bad).len(), 3);
        assert_eq!(
            fields(json!({"type": "Sometimes"})),
            ["spec.updateStrategy.type"]
        );
        assert!(fields(json!({"type": "OnDelete"})).is_empty());
    }

    #[test]
    fn daemon_set_template_generation_follows_the_template() {
        let s = WorkloadStrategy::DAEMON_SET;
        let mut ds = daemon_set(json!({"type": "OnDelete"}));
        s.prepare_for_create(&mut ds);
        assert_eq!(ds["metadata"]["annotations"][TEMPLATE_GENERATION], "1");
        let mut same = ds.clone();
        same["spec"]["minReadySeconds"] = json!(5);
        s.prepare_for_update(&ds, &mut same);
        assert_eq!(same["metadata"]["annotations"][TEMPLATE_GENERATION], "1");
        let mut restarted = ds.clone();
        restarted["spec"]["template"]["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/restartedAt": "now"});
        // A client that drops the annotation gets it back, moved on.
        restarted["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        s.prepare_for_update(&ds, &mut restarted);
        assert_eq!(
            restarted["metadata"]["annotations"][TEMPLATE_GENERATION],
            "2"
        );
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
