//! What a pod needs to reach the API from inside the cluster, as
//! kube-apiserver and kube-controller-manager provide it: a `default`
//! ServiceAccount and a `kube-root-ca.crt` ConfigMap in every namespace
//! (back after deletion or an edit), the `kube-api-access-*` volume that
//! ServiceAccount admission mounts (not with automount off, a refusal for
//! a missing account), and the `default/kubernetes` Service with its
//! Endpoints and EndpointSlice pointing at the API server.

use std::time::Duration;

use capstan_lab::wait::wait_for;
use libtest_mimic::Failed;
use serde_json::{json, Value};

use crate::fixture::*;
use crate::objects::*;

const TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn get_json(s: &Suite, args: &[&str]) -> Result<Value, Failed> {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let out = kubectl(s, &a, None)?;
    serde_json::from_str(&out).map_err(|e| format!("{args:?}: not JSON: {e}").into())
}

fn cluster_ca(s: &Suite) -> Result<String, Failed> {
    let path = s.base.cp().ca_cert();
    std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()).into())
}

/// The namespace's published CA, without its final newline (kubectl
/// keeps that; the comparisons trim the file's too).
fn root_ca_in(s: &Suite, ns: &str) -> String {
    jsonpath(
        s,
        &["-n", ns, "get", "configmap", "kube-root-ca.crt"],
        "{.data.ca\\.crt}",
    )
    .trim_end()
    .to_string()
}

pub fn namespaces_get_default_account_and_root_ca(s: &Suite) -> Result<(), Failed> {
    let ns = "inside";
    namespace(s, ns)?;
    // Made with the namespace, in the same transaction: no wait.
    if !exists(s, ns, "serviceaccount/default")? {
        return Err("a new namespace has no default service account".into());
    }
    let ca = cluster_ca(s)?;
    wait_for(
        "kube-root-ca.crt with the cluster CA",
        Duration::from_secs(30),
        || (root_ca_in(s, ns) == ca.trim_end()).then_some(()),
    )
    .map_err(|e| format!("{e}: {:?}, want {ca:?}", root_ca_in(s, ns)))?;
    let desc = jsonpath(
        s,
        &["-n", ns, "get", "configmap", "kube-root-ca.crt"],
        "{.metadata.annotations.kubernetes\\.io/description}",
    );
    if !desc.contains("verify the kube-apiserver") {
        return Err(format!("description annotation: {desc:?}").into());
    }
    // Every namespace, the system ones too.
    for system in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        wait_for(
            "the system namespace's account and CA",
            Duration::from_secs(30),
            || {
                (exists(s, system, "serviceaccount/default").unwrap_or(false)
                    && root_ca_in(s, system) == ca.trim_end())
                .then_some(())
            },
        )?;
    }
    kubectl(s, &["-n", ns, "delete", "serviceaccount", "default"], None)?;
    kubectl(
        s,
        &["-n", ns, "delete", "configmap", "kube-root-ca.crt"],
        None,
    )?;
    wait_for(
        "the account and the CA back after deletion",
        Duration::from_secs(30),
        || {
            (exists(s, ns, "serviceaccount/default").unwrap_or(false)
                && root_ca_in(s, ns) == ca.trim_end())
            .then_some(())
        },
    )?;
    kubectl(
        s,
        &[
            "-n",
            ns,
            "patch",
            "configmap",
            "kube-root-ca.crt",
            "--type=merge",
            "-p",
            r#"{"data":{"ca.crt":"tampered"}}"#,
        ],
        None,
    )?;
    wait_for("the edited CA restored", Duration::from_secs(30), || {
        (root_ca_in(s, ns) == ca.trim_end()).then_some(())
    })?;
    kubectl(s, &["delete", "namespace", ns, "--wait=false"], None)?;
    Ok(())
}

fn pod_manifest(ns: &str, name: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec_extra}  initContainers:\n  - name: init\n    image: capstan.local/busybox:latest\n  containers:\n  - name: a\n    image: capstan.local/busybox:latest\n  - name: b\n    image: capstan.local/busybox:latest\n    volumeMounts:\n    - name: data\n      mountPath: /data\n  volumes:\n  - name: data\n    emptyDir: {{}}\n"
    )
}

/// The pod's volumes other than `data`, and each container's mounts.
fn access(pod: &Value) -> (Vec<Value>, Vec<Value>) {
    let spec = &pod["spec"];
    let volumes = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["name"] != "data")
        .cloned()
        .collect();
    let mounts = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| spec[*l].as_array().into_iter().flatten())
        .map(|c| c["volumeMounts"].clone())
        .collect();
    (volumes, mounts)
}

pub fn pods_get_the_api_access_volume(s: &Suite) -> Result<(), Failed> {
    let ns = "access";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&pod_manifest(ns, "plain", "")),
    )?;
    let pod = get_json(s, &["-n", ns, "get", "pod", "plain"])?;
    if pod["spec"]["serviceAccountName"] != "default" || pod["spec"]["serviceAccount"] != "default"
    {
        return Err(format!("account names: {}", pod["spec"]).into());
    }
    let (volumes, mounts) = access(&pod);
    let name = volumes
        .first()
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let suffix = name.strip_prefix("kube-api-access-").unwrap_or_default();
    if suffix.len() != 5
        || !suffix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(format!("volume name {name:?}").into());
    }
    let want_volume = json!({"name": name, "projected": {
    "defaultMode": 420,
    "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
    ]}});
    if volumes != vec![want_volume] {
        return Err(format!("volumes: {volumes:?}").into());
    }
    let mount = json!({"name": name, "readOnly": true, "mountPath": TOKEN_PATH});
    let want_mounts = vec![
        json!([mount]),
        json!([mount]),
        json!([{"name": "data", "mountPath": "/data"}, mount]),
    ];
    if mounts != want_mounts {
        return Err(format!("mounts: {mounts:?}").into());
    }

    // automountServiceAccountToken: false on the pod, or on its account.
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&pod_manifest(
            ns,
            "no-pod-token",
            "  automountServiceAccountToken: false\n",
        )),
    )?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: quiet\n  namespace: {ns}\nautomountServiceAccountToken: false\n"
        )),
    )?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&pod_manifest(
            ns,
            "no-sa-token",
            "  serviceAccountName: quiet\n",
        )),
    )?;
    for p in ["no-pod-token", "no-sa-token"] {
        let pod = get_json(s, &["-n", ns, "get", "pod", p])?;
        let (volumes, mounts) = access(&pod);
        let want_mounts = vec![
            Value::Null,
            Value::Null,
            json!([{"name": "data", "mountPath": "/data"}]),
        ];
        if !volumes.is_empty() || mounts != want_mounts {
            return Err(format!("{p}: volumes {volumes:?}, mounts {mounts:?}").into());
        }
    }

    // A missing account is refused, in kube-apiserver's words.
    let err = kubectl_err(
        s,
        &["create", "-f", "-", "--validate=false"],
        Some(&pod_manifest(
            ns,
            "orphan",
            "  serviceAccountName: missing\n",
        )),
    )?;
    let want = format!(
        "pods \"orphan\" is forbidden: error looking up service account {ns}/missing: serviceaccount \"missing\" not found"
    );
    if !err.contains(&want) {
        return Err(format!("missing account: {err}").into());
    }

    // Pods made by controllers get the volume too.
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(
            ns,
            "made",
            1,
            "capstan.local/busybox:latest",
            "",
        )),
    )?;
    let made = wait_for("the deployment's pod", Duration::from_secs(30), || {
        pods(s, ns, "app=made").into_iter().next()
    })?;
    let mounted = made
        .spec
        .as_ref()
        .map(|sp| {
            sp.containers.iter().all(|c| {
                c.volume_mounts
                    .iter()
                    .flatten()
                    .any(|m| m.mount_path == TOKEN_PATH && m.read_only == Some(true))
            }) && sp
                .volumes
                .iter()
                .flatten()
                .any(|v| v.name.starts_with("kube-api-access-") && v.projected.is_some())
        })
        .unwrap_or(false);
    if !mounted {
        return Err(format!("the controller's pod: {:?}", made.spec).into());
    }
    kubectl(s, &["delete", "namespace", ns, "--wait=false"], None)?;
    Ok(())
}

pub fn kubernetes_service_points_at_the_api_server(s: &Suite) -> Result<(), Failed> {
    let server = s.base.lab().underlay_ip().to_string();
    let port = capstan_lab::control::PORT;
    let svc = || {
        jsonpath(
            s,
            &["-n", "default", "get", "svc", "kubernetes"],
            "{.spec.clusterIP} {.spec.ports[0].name} {.spec.ports[0].port} {.spec.ports[0].protocol} {.spec.ports[0].targetPort} {.metadata.labels.component} {.metadata.labels.provider} {.spec.selector}",
        )
    };
    let want_svc = format!("10.96.0.1 https 443 TCP {port} apiserver kubernetes ");
    let slice = || {
        jsonpath(
            s,
            &["-n", "default", "get", "endpointslice", "kubernetes"],
            "{.addressType} {.endpoints[*].addresses[*]} {.ports[0].name} {.ports[0].port} {.metadata.labels.kubernetes\\.io/service-name}",
        )
    };
    let want_slice = format!("IPv4 {server} https {port} kubernetes");
    let eps = || {
        jsonpath(
            s,
            &["-n", "default", "get", "endpoints", "kubernetes"],
            "{.subsets[*].addresses[*].ip} {.subsets[0].ports[0].port}",
        )
    };
    let want_eps = format!("{server} {port}");
    let all_right = || svc() == want_svc && slice() == want_slice && eps() == want_eps;
    wait_for("the kubernetes service", Duration::from_secs(30), || {
        all_right().then_some(())
    })
    .map_err(|e| format!("{e}: {:?} / {:?} / {:?}", svc(), slice(), eps()))?;
    let table = kubectl(s, &["get", "svc", "kubernetes"], None)?;
    if !table.contains("10.96.0.1") || !table.contains("443/TCP") {
        return Err(format!("kubectl get svc kubernetes:\n{table}").into());
    }
    // Deleted or edited: put back by the API server's reconciler.
    kubectl(s, &["-n", "default", "delete", "svc", "kubernetes"], None)?;
    kubectl(
        s,
        &["-n", "default", "delete", "endpointslice", "kubernetes"],
        None,
    )?;
    kubectl(
        s,
        &[
            "-n",
            "default",
            "patch",
            "endpoints",
            "kubernetes",
            "--type=merge",
            "-p",
            r#"{"subsets":[{"addresses":[{"ip":"10.1.2.3"}],"ports":[{"name":"https","port":1}]}]}"#,
        ],
        None,
    )?;
    wait_for(
        "the kubernetes service restored",
        Duration::from_secs(40),
        || all_right().then_some(()),
    )
    .map_err(|e| format!("{e}: {:?} / {:?} / {:?}", svc(), slice(), eps()))?;
    // Its address is never handed to another service.
    let ips = jsonpath(
        s,
        &["get", "svc", "-A"],
        "{range .items[*]}{.metadata.namespace}/{.metadata.name}={.spec.clusterIP}{\"\\n\"}{end}",
    );
    let holders: Vec<&str> = ips.lines().filter(|l| l.ends_with("=10.96.0.1")).collect();
    if holders != ["default/kubernetes=10.96.0.1"] {
        return Err(format!("10.96.0.1 held by {holders:?}").into());
    }
    Ok(())
}
