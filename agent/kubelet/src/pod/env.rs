//! A container's environment: the image's Env, then the Service variables
//! (`service_env`), then envFrom, then env (literal with `$(VAR)`
//! expansion, fieldRef, configMapKeyRef, secretKeyRef), later entries
//! winning, so a container's own env beats a Service's as in kubelet. Pure over a `PodFields` snapshot
//! and an `Objects` lookup; never reads the API or the disk itself.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

use crate::pod::command::expand;

/// Values fieldRef can name that are not in the pod spec itself.
#[derive(Clone, Debug, Default)]
pub struct PodFields {
    pub pod_ip: String,
    pub host_ip: String,
    pub node_name: String,
}

/// Where configMapKeyRef/secretKeyRef and configMap/secret volumes look.
pub trait Objects: Send + Sync {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap>;
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret>;
}

#[derive(Debug, PartialEq, Eq)]
pub struct EnvError(pub String);

/// Value of a downward-API field path (`metadata.name`,
/// `metadata.labels['x']`, `status.podIP`, ...).
pub fn field_value(pod: &Pod, fields: &PodFields, path: &str) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let map_key = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => fields.node_name.clone(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => fields.pod_ip.clone(),
        "status.podIPs" => fields.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => fields.host_ip.clone(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        _ => {
            if let Some(k) = map_key("metadata.labels['") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&k).cloned())
                    .unwrap_or_default()
            } else if let Some(k) = map_key("metadata.annotations['") {
                meta.annotations
                    .as_ref()
                    .and_then(|l| l.get(&k).cloned())
                    .unwrap_or_default()
            } else {
                return Err(EnvError(format!("unsupported fieldPath {path:?}")));
            }
        }
    })
}

/// kubelet's `FormatMap`: sorted `key="value"` lines, no trailing newline.
fn format_map(m: Option<&std::collections::BTreeMap<String, String>>) -> String {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// `KEY=value` pairs for the OCI spec, in a stable order.
pub fn build(
    pod: &Pod,
    container: &Container,
    image_env: &[String],
    service_env: &std::collections::BTreeMap<String, String>,
    fields: &PodFields,
    objects: &dyn Objects,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut order: Vec<String> = Vec::new();
    let mut vars: HashMap<String, String> = HashMap::new();
    let set = |order: &mut Vec<String>, vars: &mut HashMap<String, String>, k: String, v| {
        if !vars.contains_key(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    for kv in image_env {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        set(&mut order, &mut vars, k.to_string(), v.to_string());
    }
    for (k, v) in service_env {
        set(&mut order, &mut vars, k.clone(), v.clone());
    }
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match objects.config_map(ns, &r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.unwrap_or_default() {
                        set(&mut order, &mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError(format!("configmap {:?} not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match objects.secret(ns, &r.name) {
                Some(s) => {
                    for (k, v) in secret_data(&s) {
                        set(&mut order, &mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError(format!("secret {:?} not found", r.name))),
            }
        }
    }
    for e in container.env.iter().flatten() {
        let value = match &e.value_from {
            None => expand(e.value.as_deref().unwrap_or(""), &vars),
            Some(src) => {
                if let Some(f) = &src.field_ref {
                    field_value(pod, fields, &f.field_path)?
                } else if let Some(r) = &src.config_map_key_ref {
                    match objects
                        .config_map(ns, &r.name)
                        .and_then(|cm| cm.data.and_then(|d| d.get(&r.key).cloned()))
                    {
                        Some(v) => v,
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(EnvError(format!(
                                "configmap {:?} key {:?} not found",
                                r.name, r.key
                            )))
                        }
                    }
                } else if let Some(r) = &src.secret_key_ref {
                    match objects
                        .secret(ns, &r.name)
                        .and_then(|s| secret_data(&s).remove(&r.key))
                    {
                        Some(v) => v,
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(EnvError(format!(
                                "secret {:?} key {:?} not found",
                                r.name, r.key
                            )))
                        }
                    }
                } else {
                    return Err(EnvError(format!(
                        "env {:?}: resourceFieldRef is not supported yet",
                        e.name
                    )));
                }
            }
        };
        set(&mut order, &mut vars, e.name.clone(), value);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars.remove(&k).unwrap_or_default();
            (k, v)
        })
        .collect())
}

/// A secret's values as text: `data` (bytes) and `stringData`.
pub fn secret_data(s: &Secret) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    for (k, v) in s.data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, EnvVar, EnvVarSource, ObjectFieldSelector, SecretKeySelector,
    };
    use k8s_openapi::ByteString;

    struct Fake;
    impl Objects for Fake {
        fn config_map(&self, ns: &str, name: &str) -> Option<ConfigMap> {
            (ns == "default" && name == "cm").then(|| ConfigMap {
                data: Some([("k".to_string(), "cmv".to_string())].into()),
                ..Default::default()
            })
        }
        fn secret(&self, _: &str, name: &str) -> Option<Secret> {
            (name == "s").then(|| Secret {
                data: Some([("p".to_string(), ByteString(b"hunter2".to_vec()))].into()),
                ..Default::default()
            })
        }
    }

    fn var(name: &str, value: Option<&str>, from: Option<EnvVarSource>) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: value.map(Into::into),
            value_from: from,
        }
    }

    #[test]
    fn literal_fieldref_configmap_secret_and_expansion() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p1".into());
        pod.metadata.namespace = Some("default".into());
        let c = Container {
            env: Some(vec![
                var("A", Some("a"), None),
                var("B", Some("$(A)-$(PATH)"), None),
                var(
                    "NAME",
                    None,
                    Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                ),
                var(
                    "IP",
                    None,
                    Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "status.podIP".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                ),
                var(
                    "CM",
                    None,
                    Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "cm".into(),
                            key: "k".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                ),
                var(
                    "S",
                    None,
                    Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "s".into(),
                            key: "p".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                ),
                var("PATH", Some("/override"), None),
            ]),
            ..Default::default()
        };
        let fields = PodFields {
            pod_ip: "10.0.0.5".into(),
            host_ip: "192.168.0.1".into(),
            node_name: "n1".into(),
        };
        let services = [
            (
                "KUBERNETES_SERVICE_HOST".to_string(),
                "10.96.0.1".to_string(),
            ),
            ("A".to_string(), "from a service".to_string()),
        ]
        .into();
        let env = build(&pod, &c, &["PATH=/bin".into()], &services, &fields, &Fake).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(env[0].0, "PATH");
        assert_eq!(get("PATH"), Some("/override"));
        assert_eq!(get("B"), Some("a-/bin"));
        assert_eq!(get("NAME"), Some("p1"));
        assert_eq!(get("IP"), Some("10.0.0.5"));
        assert_eq!(get("CM"), Some("cmv"));
        assert_eq!(get("S"), Some("hunter2"));
        // Service variables are there; the container's own env wins.
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("A"), Some("a"));

        let missing = Container {
            env: Some(vec![var(
                "X",
                None,
                Some(EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: "nope".into(),
                        key: "k".into(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            )]),
            ..Default::default()
        };
        assert!(build(&pod, &missing, &[], &Default::default(), &fields, &Fake).is_err());
    }
}
