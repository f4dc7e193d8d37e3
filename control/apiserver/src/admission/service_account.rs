//! kube-apiserver's ServiceAccount admission on pod create, as a pure
//! function over the pod and its ServiceAccount: the default account name,
//! the deprecated `spec.serviceAccount` mirror, and the `kube-api-access-*`
//! projected volume (token, cluster CA, namespace) mounted read-only in
//! every container unless automounting is off. Looking the account up is
//! the caller's (`admission::admit_pod`); nothing here touches storage.

use serde_json::{json, Value};

/// The account a pod runs as when it names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Where the token, CA and namespace files appear in every container.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The volume's name prefix (`kube-api-access-<5 chars>`).
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The ConfigMap with the cluster CA the volume projects (published in
/// every namespace by the root-ca-cert-publisher controller).
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// Kubernetes' bound-token lifetime that the kubelet asks for: one hour
/// and seven seconds, the seconds marking a token kube-apiserver may
/// extend (`WarnOnlyBoundTokenExpirationSeconds`).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// The account the pod runs as: `spec.serviceAccountName`, else the
/// deprecated `spec.serviceAccount` (v1 conversion reads it), else
/// `default`.
pub fn account_name(pod: &Value) -> String {
    ["/spec/serviceAccountName", "/spec/serviceAccount"]
        .iter()
        .find_map(|p| {
            pod.pointer(p)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
        .to_string()
}

/// Sets both spellings of the account name (v1 keeps the deprecated one
/// equal to the real one).
pub fn set_account_name(pod: &mut Value, name: &str) {
    if !pod.get("spec").is_some_and(Value::is_object) {
        return;
    }
    pod["spec"]["serviceAccountName"] = json!(name);
    pod["spec"]["serviceAccount"] = json!(name);
}

/// The pod's choice wins, then the account's; automounting is the default.
pub fn should_automount(pod: &Value, account: &Value) -> bool {
    pod.pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            account
                .get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true)
}

/// The projected volume source Kubernetes mounts (`TokenVolumeSource`),
/// with the default mode written out as kube-apiserver does.
pub fn token_volume_source() -> Value {
    json!({
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
            {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]
    })
}

/// Mounts the token volume in every container and init container that
/// does not already mount something at the token path, adding the volume
/// (named `kube-api-access-<suffix>` unless the pod already has one) when
/// any container needs it — `mountServiceAccountToken` in kube-apiserver.
pub fn mount_token(pod: &mut Value, suffix: &str) {
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with(VOLUME_PREFIX))
        .map(str::to_string);
    let name = existing
        .clone()
        .unwrap_or_else(|| format!("{VOLUME_PREFIX}{suffix}"));
    let mount = json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs.iter_mut().filter(|c| c.is_object()) {
            let mounted = c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH));
            if mounted {
                continue;
            }
            if !c.get("volumeMounts").is_some_and(Value::is_array) {
                c["volumeMounts"] = json!([]);
            }
            if let Some(ms) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                ms.push(mount.clone());
                needed = true;
            }
        }
    }
    if existing.is_none() && needed {
        if !spec.get("volumes").is_some_and(Value::is_array) {
            spec["volumes"] = json!([]);
        }
        if let Some(vs) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
            vs.push(json!({"name": name, "projected": token_volume_source()}));
        }
    }
}

/// The whole mutation once the account is known: name, token volume
/// (unless automounting is off) and the account's image pull secrets when
/// the pod has none.
pub fn admit(pod: &mut Value, account: &Value, suffix: &str) {
    let name = account_name(pod);
    set_account_name(pod, &name);
    if should_automount(pod, account) {
        mount_token(pod, suffix);
    }
    let has_pull_secrets = pod
        .pointer("/spec/imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_pull_secrets {
        let from_account: Vec<Value> = account
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("name").and_then(Value::as_str))
            .map(|n| json!({"name": n}))
            .collect();
        if !from_account.is_empty() {
            pod["spec"]["imagePullSecrets"] = json!(from_account);
        }
    }
}

/// Mirror pods (made by a kubelet from a static manifest) are not mutated:
/// the kubelet could not mount a token for them.
pub fn is_mirror_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(extra: Value) -> Value {
        let mut p = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {
            "initContainers": [{"name": "i", "image": "x"}],
            "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]
        }});
        if let (Some(s), Some(e)) = (p["spec"].as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        p
    }

    #[test]
    fn defaults_the_account_and_mounts_the_token_everywhere() {
        let mut p = pod(json!({}));
        admit(&mut p, &json!({}), "abcde");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["serviceAccount"], "default");
        assert_eq!(
            p["spec"]["volumes"],
            json!([{"name": "kube-api-access-abcde", "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]}}])
        );
        let mount = json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(
            p["spec"]["initContainers"][0]["volumeMounts"],
            json!([mount])
        );
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(
            p["spec"]["containers"][1]["volumeMounts"],
            json!([{"name": "data", "mountPath": "/data"}, mount])
        );
    }

    #[test]
    fn the_deprecated_field_names_the_account() {
        let mut p = pod(json!({"serviceAccount": "robot"}));
        assert_eq!(account_name(&p), "robot");
        admit(&mut p, &json!({}), "abcde");
        assert_eq!(p["spec"]["serviceAccountName"], "robot");
        let both = pod(json!({"serviceAccount": "old", "serviceAccountName": "new"}));
        assert_eq!(account_name(&both), "new");
    }

    #[test]
    fn automount_false_on_the_pod_or_the_account_mounts_nothing() {
        let mut p = pod(json!({"automountServiceAccountToken": false}));
        admit(&mut p, &json!({}), "abcde");
        assert!(p["spec"].get("volumes").is_none());
        assert!(p["spec"]["containers"][0].get("volumeMounts").is_none());
        assert_eq!(p["spec"]["serviceAccountName"], "default");

        let mut p = pod(json!({}));
        admit(
            &mut p,
            &json!({"automountServiceAccountToken": false}),
            "abcde",
        );
        assert!(p["spec"].get("volumes").is_none());
        // The pod's own choice wins over the account's.
        let mut p = pod(json!({"automountServiceAccountToken": true}));
        admit(
            &mut p,
            &json!({"automountServiceAccountToken": false}),
            "abcde",
        );
        assert_eq!(p["spec"]["volumes"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn a_container_with_its_own_token_mount_keeps_it() {
        let own = json!([{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]);
        let mut p =
            json!({"spec": {"containers": [{"name": "a", "image": "x", "volumeMounts": own}]}});
        admit(&mut p, &json!({}), "abcde");
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"], own);
        // No container needs it, so no volume either.
        assert!(p["spec"].get("volumes").is_none());
    }

    #[test]
    fn an_existing_access_volume_is_reused() {
        let mut p = pod(json!({"volumes": [{"name": "kube-api-access-zzzzz", "emptyDir": {}}]}));
        admit(&mut p, &json!({}), "abcde");
        assert_eq!(p["spec"]["volumes"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            p["spec"]["containers"][0]["volumeMounts"][0]["name"],
            "kube-api-access-zzzzz"
        );
    }

    #[test]
    fn pull_secrets_come_from_the_account_when_the_pod_has_none() {
        let sa = json!({"imagePullSecrets": [{"name": "reg"}]});
        let mut p = pod(json!({}));
        admit(&mut p, &sa, "abcde");
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "reg"}]));
        let mut own = pod(json!({"imagePullSecrets": [{"name": "mine"}]}));
        admit(&mut own, &sa, "abcde");
        assert_eq!(own["spec"]["imagePullSecrets"], json!([{"name": "mine"}]));
    }

    #[test]
    fn the_node_authorizer_sees_the_ca_config_map() {
        let mut p = pod(json!({}));
        admit(&mut p, &json!({}), "abcde");
        let refs = crate::auth::pod_refs::referenced(&p);
        assert!(refs.names("configmaps", ROOT_CA_CONFIG_MAP), "{refs:?}");
    }

    #[test]
    fn malformed_pods_are_left_alone() {
        let mut p = json!({"spec": "nonsense"});
        admit(&mut p, &json!({}), "abcde");
        assert_eq!(p, json!({"spec": "nonsense"}));
        let mut p = json!({"spec": {"containers": ["x", 7]}});
        admit(&mut p, &json!({}), "abcde");
        assert!(p["spec"].get("volumes").is_none());
    }
}
