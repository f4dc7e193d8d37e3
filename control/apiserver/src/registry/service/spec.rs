//! A Service's spec: its type, defaulting and validation. Pure functions
//! over JSON; allocation of cluster IPs and node ports is `alloc`.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::registry::validation;
use crate::status::Cause;

pub fn type_of(spec: &Value) -> &str {
    spec.get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn wants_node_ports(spec: &Value) -> bool {
    matches!(type_of(spec), "NodePort" | "LoadBalancer")
}

pub fn set_default(obj: &mut Value, key: &str, v: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj[key] = v;
    }
}

pub fn default_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    if type_of(spec) != "ExternalName" {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if wants_node_ports(spec) {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
            if p.get("targetPort").is_none_or(Value::is_null) {
                if let Some(port) = p.get("port").cloned() {
                    p["targetPort"] = port;
                }
            }
        }
    }
}

pub fn validate_spec(spec: Option<&Value>, out: &mut Vec<Cause>) {
    let Some(spec) = spec else {
        out.push(Cause::required("spec"));
        return;
    };
    let ty = type_of(spec);
    if !matches!(
        ty,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        out.push(Cause::not_supported(
            "spec.type",
            ty,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let ports = spec.get("ports").and_then(Value::as_array);
    if ty == "ExternalName" {
        let ext = spec
            .get("externalName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if ext.is_empty() {
            out.push(Cause::required("spec.externalName"));
        }
    } else if ports.is_none_or(|p| p.is_empty()) && !headless {
        out.push(Cause::required("spec.ports"));
    }
    if let Some(a) = spec.get("sessionAffinity").and_then(Value::as_str) {
        if !matches!(a, "None" | "ClientIP") {
            out.push(Cause::not_supported(
                "spec.sessionAffinity",
                a,
                &["ClientIP", "None"],
            ));
        }
    }
    let ports = ports.map(Vec::as_slice).unwrap_or_default();
    let mut names = HashSet::new();
    let mut seen = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("spec.ports[{i}]");
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            out.push(Cause::required(format!("{f}.name")));
        }
        if !name.is_empty() {
            validation::dns1123_label(&format!("{f}.name"), name, out);
            if !names.insert(name) {
                out.push(Cause::duplicate(format!("{f}.name"), name));
            }
        }
        validation::port(&format!("{f}.port"), p.get("port"), true, out);
        validation::protocol(&format!("{f}.protocol"), p.get("protocol"), out);
        let key = (
            p.get("port").and_then(Value::as_i64),
            p.get("protocol").and_then(Value::as_str).unwrap_or("TCP"),
        );
        if !seen.insert(key) {
            out.push(Cause::duplicate(
                f.to_string(),
                format!("{}/{}", key.0.unwrap_or(0), key.1),
            ));
        }
        match p.get("targetPort") {
            Some(Value::Number(_)) => {
                validation::port(&format!("{f}.targetPort"), p.get("targetPort"), false, out)
            }
            Some(Value::String(s)) => validation::port_name(&format!("{f}.targetPort"), s, out),
            _ => {}
        }
        if p.get("nodePort").and_then(Value::as_i64).is_some() && !wants_node_ports(spec) {
            out.push(Cause::forbidden(
                format!("{f}.nodePort"),
                format!("may not be used when `type` is '{ty}'"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_requires_ports_and_names() {
        let mut out = Vec::new();
        validate_spec(Some(&json!({"type": "ClusterIP"})), &mut out);
        assert_eq!(out[0].field, "spec.ports");
        out.clear();
        validate_spec(
            Some(&json!({"ports": [{"port": 80}, {"port": 0, "nodePort": 30000}]})),
            &mut out,
        );
        let f: Vec<&str> = out.iter().map(|c| c.field.as_str()).collect();
        assert!(
            f.contains(&"spec.ports[0].name")
                && f.contains(&"spec.ports[1].port")
                && f.contains(&"spec.ports[1].nodePort"),
            "{f:?}"
        );
    }
}
