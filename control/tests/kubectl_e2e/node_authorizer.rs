//! Kubernetes' Node authorizer: a node writes only its own Node, Lease
//! and pods' status, registers itself, and reads only the secrets and
//! configmaps its pods use (by kubectl, curl and kube-rs).

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use libtest_mimic::Failed;

use crate::clients::*;
use crate::manifests::*;
use crate::support::*;

pub fn nodes_write_only_their_own_objects(s: &Suite) -> Result<(), Failed> {
    ensure_nodes(s)?;
    let n1 = s.node_kubeconfig("node-1");
    let out = kubectl_as(s, &n1, &["label", "node", "node-1", "own=yes"], None)?;
    check(out.status.success(), || {
        format!("node-1 labels itself: {}", text(&out.stderr))
    })?;
    let err = kubectl_err(s, &n1, &["label", "node", "node-2", "evil=yes"], None)?;
    check(
        err.contains("Forbidden") || err.contains("forbidden"),
        || err.clone(),
    )?;
    let err = kubectl_err(s, &n1, &["create", "-f", "-"], Some(&node_yaml("node-3")))?;
    check(err.contains("orbidden"), || err.clone())?;
    let err = kubectl_err(s, &n1, &["delete", "node", "node-2"], None)?;
    check(err.contains("orbidden"), || err.clone())?;
    let err = kubectl_err(
        s,
        &n1,
        &["create", "-f", "-"],
        Some(&configmap_yaml("by-node", "x")),
    )?;
    check(err.contains("orbidden"), || err.clone())?;
    let err = kubectl_err(s, &n1, &["create", "-f", "-"], Some(&lease_yaml("node-2")))?;
    check(err.contains("orbidden"), || err.clone())?;
    // Its own Lease (made by the admin here) it may renew.
    let _ = kubectl(s, &["create", "-f", "-"], Some(&lease_yaml("node-1")))?;
    let out = kubectl_as(
        s,
        &n1,
        &[
            "patch",
            "lease",
            "node-1",
            "-n",
            "kube-node-lease",
            "--type=merge",
            "-p",
            r#"{"spec":{"leaseDurationSeconds":41}}"#,
        ],
        None,
    )?;
    check(out.status.success(), || {
        format!("own lease: {}", text(&out.stderr))
    })?;
    // Reads are open to nodes.
    let out = kubectl_as(s, &n1, &["get", "nodes", "-o", "name"], None)?;
    check(text(&out.stdout).contains("node/node-2"), || {
        text(&out.stderr)
    })?;
    // Raw: the 403 is a Status with reason Forbidden.
    let (code, body) = curl(
        s,
        Some("node-node-1"),
        "PATCH",
        "/api/v1/nodes/node-2",
        Some((
            "application/merge-patch+json",
            r#"{"metadata":{"labels":{"x":"y"}}}"#,
        )),
    )?;
    check(code == 403 && json(&body)?["reason"] == "Forbidden", || {
        format!("{code} {body}")
    })?;
    Ok(())
}

/// A node creates its own Node and Lease (the kubelet's registration) and
/// no other: needs the API server to give the authorizer the name from the
/// body of a create.
pub fn nodes_register_themselves(s: &Suite) -> Result<(), Failed> {
    let n1 = s.node_kubeconfig("node-1");
    let _ = kubectl(s, &["delete", "node", "node-1", "--ignore-not-found"], None)?;
    let _ = kubectl(
        s,
        &[
            "delete",
            "lease",
            "node-1",
            "-n",
            "kube-node-lease",
            "--ignore-not-found",
        ],
        None,
    )?;
    let out = kubectl_as(s, &n1, &["create", "-f", "-"], Some(&node_yaml("node-1")))?;
    check(out.status.success(), || {
        format!("node-1 registering itself: {}", text(&out.stderr))
    })?;
    let out = kubectl_as(s, &n1, &["create", "-f", "-"], Some(&lease_yaml("node-1")))?;
    check(out.status.success(), || {
        format!("own lease: {}", text(&out.stderr))
    })?;
    let err = kubectl_err(s, &n1, &["create", "-f", "-"], Some(&node_yaml("node-9")))?;
    check(err.contains("orbidden"), || err.clone())?;
    Ok(())
}

pub fn kube_rs_client_with_node_credentials(s: &Suite) -> Result<(), Failed> {
    create(
        s,
        &pod_yaml("kube-rs-pod", Some("node-1"), "    app: kube-rs\n"),
    )?;
    create(
        s,
        &pod_yaml("kube-rs-other", Some("node-2"), "    app: kube-rs\n"),
    )?;
    ensure_nodes(s)?;
    let kc = s.node_kubeconfig("node-1");
    with_kube(s, kc, |client| {
        Box::pin(async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
            let mine = pods
                .list(
                    &ListParams::default()
                        .fields("spec.nodeName=node-1")
                        .labels("app=kube-rs"),
                )
                .await
                .map_err(|e| format!("list pods: {e}"))?;
            let names: Vec<_> = mine
                .items
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            check(names == ["kube-rs-pod"], || format!("{names:?}"))?;
            let status = serde_json::json!({"status": {"phase": "Running", "podIP": "10.244.1.5"}});
            let pp = PatchParams::default();
            let own = pods
                .patch_status("kube-rs-pod", &pp, &Patch::Merge(&status))
                .await;
            check(api_code(own)? == 200, || {
                "node-1 patches its pod's status".into()
            })?;
            let other = pods
                .patch_status("kube-rs-other", &pp, &Patch::Merge(&status))
                .await;
            check(api_code(other)? == 403, || {
                "node-1 patches node-2's pod".into()
            })?;
            let nodes: Api<Node> = Api::all(client.clone());
            let ready = serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]}});
            let patched = nodes
                .patch_status("node-1", &pp, &Patch::Merge(&ready))
                .await
                .map_err(|e| format!("patch own node status: {e}"))?;
            let cond = patched
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default();
            check(
                cond.iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True"),
                || format!("{cond:?}"),
            )?;
            let other = nodes
                .patch_status("node-2", &pp, &Patch::Merge(&ready))
                .await;
            check(api_code(other)? == 403, || {
                "node-1 patches node-2's status".into()
            })?;
            Ok(())
        })
    })?;
    let phase = get_path(s, "pod", "kube-rs-pod", NS, "{.status.phase}")?;
    check(phase == "Running", || phase.clone())?;
    Ok(())
}

/// Kubernetes' Node authorizer reads: a node gets the secrets and
/// configmaps its pods reference (and watches them one by one, as the
/// kubelet does), nothing else, and never a whole namespace of them.
pub fn nodes_read_only_secrets_their_pods_use(s: &Suite) -> Result<(), Failed> {
    ensure_nodes(s)?;
    for n in ["na-vol", "na-pull", "na-free", "na-other"] {
        kubectl_in(s, &["apply", "-f", "-"], Some(&secret_yaml(n)))?;
    }
    kubectl_in(
        s,
        &["apply", "-f", "-"],
        Some(&configmap_yaml("na-env", "x")),
    )?;
    kubectl_in(
        s,
        &["apply", "-f", "-"],
        Some(&configmap_yaml("na-free-cm", "x")),
    )?;
    let mine = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: na-mine\n  namespace: {NS}\nspec:\n  nodeName: node-1\n  imagePullSecrets:\n  - name: na-pull\n  - name: na-missing\n  containers:\n  - name: main\n    image: capstan.test/testsrv:latest\n    envFrom:\n    - configMapRef:\n        name: na-env\n  volumes:\n  - name: v\n    projected:\n      sources:\n      - secret:\n          name: na-vol\n"
    );
    let other = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: na-theirs\n  namespace: {NS}\nspec:\n  nodeName: node-2\n  containers:\n  - name: main\n    image: capstan.test/testsrv:latest\n  volumes:\n  - name: v\n    secret:\n      secretName: na-other\n"
    );
    kubectl_in(s, &["apply", "-f", "-"], Some(&mine))?;
    kubectl_in(s, &["apply", "-f", "-"], Some(&other))?;
    let kc = s.node_kubeconfig("node-1");
    with_kube(s, kc, |client| {
        Box::pin(async move {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
            let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
            for n in ["na-vol", "na-pull"] {
                check(api_code(secrets.get(n).await)? == 200, || {
                    format!("get {n}")
                })?;
            }
            check(api_code(cms.get("na-env").await)? == 200, || {
                "get na-env".into()
            })?;
            // Referenced but never made: the node may learn it is missing.
            check(api_code(secrets.get("na-missing").await)? == 404, || {
                "get na-missing".into()
            })?;
            for n in ["na-free", "na-other"] {
                match secrets.get(n).await {
                    Err(kube::Error::Api(e)) => check(
                        e.code == 403
                            && e.reason == "Forbidden"
                            && e.message
                                == format!(
                                    "secrets \"{n}\" is forbidden: User \"system:node:node-1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"{NS}\": no relationship found between node 'node-1' and this object"
                                ),
                        || format!("{n}: {e:?}"),
                    )?,
                    other => return Err(format!("{n}: {other:?}").into()),
                }
            }
            check(api_code(cms.get("na-free-cm").await)? == 403, || {
                "get na-free-cm".into()
            })?;
            check(
                api_code(secrets.list(&ListParams::default()).await)? == 403,
                || "list secrets".into(),
            )?;
            check(
                api_code(cms.list(&ListParams::default()).await)? == 403,
                || "list configmaps".into(),
            )?;
            // One object by name, the kubelet's way: allowed when used.
            let one = |n: &str| ListParams::default().fields(&format!("metadata.name={n}"));
            let got = secrets
                .list(&one("na-vol"))
                .await
                .map_err(|e| format!("list by name: {e}"))?;
            check(got.items.len() == 1, || format!("{:?}", got.items.len()))?;
            check(
                api_code(secrets.list(&one("na-free")).await)? == 403,
                || "list na-free by name".into(),
            )?;
            let wp = |n: &str| {
                WatchParams::default()
                    .fields(&format!("metadata.name={n}"))
                    .timeout(1)
            };
            check(watch_code(&secrets, &wp("na-vol")).await? == 200, || {
                "watch na-vol by name".into()
            })?;
            check(watch_code(&secrets, &wp("na-free")).await? == 403, || {
                "watch na-free by name".into()
            })?;
            Ok(())
        })
    })?;
    // Once the pod is gone, so is the node's access.
    kubectl_ok(
        s,
        &[
            "delete",
            "pod",
            "na-mine",
            "-n",
            NS,
            "--force",
            "--grace-period=0",
        ],
    )?;
    let kc = s.node_kubeconfig("node-1");
    with_kube(s, kc, |client| {
        Box::pin(async move {
            let secrets: Api<Secret> = Api::namespaced(client, NS);
            check(api_code(secrets.get("na-vol").await)? == 403, || {
                "get na-vol after its pod went".into()
            })
        })
    })?;
    // The admin is unchanged.
    let out = kubectl_ok(s, &["get", "secrets", "-n", NS, "-o", "name"])?;
    check(out.contains("secret/na-free"), || out.clone())?;
    Ok(())
}

/// The code a watch answers with: its own, or its first event's.
pub async fn watch_code(secrets: &Api<Secret>, wp: &WatchParams) -> Result<u16, Failed> {
    use futures::StreamExt;
    let stream = match secrets.watch(wp, "0").await {
        Ok(st) => st,
        Err(e) => return api_code(Err::<(), _>(e)),
    };
    let mut stream = Box::pin(stream);
    Ok(match stream.next().await {
        Some(Ok(WatchEvent::Error(e))) => e.code,
        Some(Err(kube::Error::Api(e))) => e.code,
        Some(Err(e)) => return Err(format!("watch: {e}").into()),
        _ => 200,
    })
}
