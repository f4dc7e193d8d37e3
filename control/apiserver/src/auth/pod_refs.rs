//! Which Secrets, ConfigMaps and ServiceAccount a pod names: the edges of
//! Kubernetes' Node authorizer graph (pod → secret/configmap/serviceaccount)
//! that decide what a node may read, and for which service accounts it may
//! request tokens. Works on the stored JSON so the API server needs no typed decode;
//! malformed fields are skipped (they name nothing), never a panic.

use std::collections::BTreeSet;

use serde_json::Value;

/// The names (in the pod's namespace) a pod references.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PodRefs {
    pub secrets: BTreeSet<String>,
    pub config_maps: BTreeSet<String>,
    /// `spec.serviceAccountName`, `default` when empty (what the
    /// ServiceAccount admission sets).
    pub service_account: Option<String>,
}

impl PodRefs {
    /// Whether the pod names `name` of `resource` ("secrets", "configmaps",
    /// "serviceaccounts").
    pub fn names(&self, resource: &str, name: &str) -> bool {
        match resource {
            "secrets" => self.secrets.contains(name),
            "configmaps" => self.config_maps.contains(name),
            "serviceaccounts" => self.service_account.as_deref() == Some(name),
            _ => false,
        }
    }
}

/// Volume plugins whose `secretRef.name` the kubelet reads (Kubernetes'
/// `VisitPodSecretNames` covers the same ones).
const SECRET_REF_VOLUMES: &[&str] = &[
    "cephfs",
    "cinder",
    "flexVolume",
    "iscsi",
    "rbd",
    "scaleIO",
    "storageos",
];

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn array<'a>(v: &'a Value, ptr: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Every secret and configmap the pod at `pod` (a Pod object) references:
/// env `valueFrom` and `envFrom` of all containers (init and ephemeral
/// too), `imagePullSecrets`, and volumes (secret, configMap, projected
/// sources, and the plugins' secret references); and its service account.
pub fn referenced(pod: &Value) -> PodRefs {
    let mut r = PodRefs {
        service_account: Some(
            str_at(pod, "/spec/serviceAccountName")
                .unwrap_or("default")
                .to_string(),
        ),
        ..Default::default()
    };
    let mut secret = |s: Option<&str>| {
        if let Some(s) = s {
            r.secrets.insert(s.to_string());
        }
    };
    for p in array(pod, "/spec/imagePullSecrets") {
        secret(str_at(p, "/name"));
    }
    let mut cms = BTreeSet::new();
    let mut cm = |s: Option<&str>| {
        if let Some(s) = s {
            cms.insert(s.to_string());
        }
    };
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in array(pod, &format!("/spec/{list}")) {
            for e in array(c, "/env") {
                secret(str_at(e, "/valueFrom/secretKeyRef/name"));
                cm(str_at(e, "/valueFrom/configMapKeyRef/name"));
            }
            for f in array(c, "/envFrom") {
                secret(str_at(f, "/secretRef/name"));
                cm(str_at(f, "/configMapRef/name"));
            }
        }
    }
    for v in array(pod, "/spec/volumes") {
        secret(str_at(v, "/secret/secretName"));
        cm(str_at(v, "/configMap/name"));
        for s in array(v, "/projected/sources") {
            secret(str_at(s, "/secret/name"));
            cm(str_at(s, "/configMap/name"));
        }
        secret(str_at(v, "/azureFile/secretName"));
        secret(str_at(v, "/csi/nodePublishSecretRef/name"));
        for plugin in SECRET_REF_VOLUMES {
            secret(str_at(v, &format!("/{plugin}/secretRef/name")));
        }
    }
    r.config_maps = cms;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_reference_kind() {
        let pod = json!({"spec": {
            "imagePullSecrets": [{"name": "pull"}, {}],
            "containers": [{
                "name": "c",
                "env": [
                    {"name": "A", "value": "x"},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "env-s", "key": "k"}}},
                    {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
                    {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ],
                "envFrom": [{"secretRef": {"name": "from-s"}}, {"configMapRef": {"name": "from-cm"}}]
            }],
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-s"}}]}],
            "ephemeralContainers": [{"name": "e", "env": [
                {"name": "E", "valueFrom": {"configMapKeyRef": {"name": "eph-cm", "key": "k"}}}
            ]}],
            "volumes": [
                {"name": "v1", "secret": {"secretName": "vol-s"}},
                {"name": "v2", "configMap": {"name": "vol-cm"}},
                {"name": "v3", "projected": {"sources": [
                    {"secret": {"name": "proj-s"}},
                    {"configMap": {"name": "proj-cm"}},
                    {"serviceAccountToken": {"path": "token"}},
                    {"downwardAPI": {"items": []}}
                ]}},
                {"name": "v4", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-s"}}},
                {"name": "v5", "rbd": {"image": "i", "secretRef": {"name": "rbd-s"}}},
                {"name": "v6", "azureFile": {"secretName": "az-s", "shareName": "x"}},
                {"name": "v7", "emptyDir": {}}
            ]
        }});
        let r = referenced(&pod);
        assert_eq!(
            r.secrets,
            set(&[
                "pull", "env-s", "from-s", "init-s", "vol-s", "proj-s", "csi-s", "rbd-s", "az-s"
            ])
        );
        assert_eq!(
            r.config_maps,
            set(&["env-cm", "from-cm", "eph-cm", "vol-cm", "proj-cm"])
        );
        assert!(r.names("secrets", "pull"));
        assert!(!r.names("secrets", "env-cm"));
        assert!(r.names("configmaps", "proj-cm"));
        assert!(!r.names("pods", "pull"));
        assert!(r.names("serviceaccounts", "default"));
        let own = referenced(&json!({"spec": {"serviceAccountName": "agent"}}));
        assert!(own.names("serviceaccounts", "agent") && !own.names("serviceaccounts", "default"));
    }

    #[test]
    fn malformed_or_empty_names_nothing() {
        let nothing = PodRefs {
            service_account: Some("default".into()),
            ..Default::default()
        };
        assert_eq!(referenced(&json!({})), nothing);
        let odd = json!({"spec": {
            "imagePullSecrets": "pull",
            "containers": [{"env": [{"valueFrom": {"secretKeyRef": {"name": 7}}}]}],
            "volumes": [{"secret": {"secretName": ""}}, {"projected": {"sources": {}}}]
        }});
        assert_eq!(referenced(&odd), nothing);
    }
}
