//! Reading and writing the suite's objects: lists through kube-rs, one
//! field through `kubectl -o jsonpath`, readiness and images of pods, and
//! the manifests the tests create. No assertions here.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ListParams};
use libtest_mimic::Failed;

use crate::fixture::{kubectl, Suite};

/// The objects of kind `K` in `ns` matching `selector`; none on any error
/// (the callers poll).
fn list<K>(s: &Suite, ns: &str, selector: &str) -> Vec<K>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    K: Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let api: Api<K> = Api::namespaced(s.client.clone(), ns);
    let lp = ListParams::default().labels(selector);
    s.block_on(async move { api.list(&lp).await })
        .ok()
        .and_then(|r| r.ok())
        .map(|l| l.items)
        .unwrap_or_default()
}

pub fn pods(s: &Suite, ns: &str, selector: &str) -> Vec<Pod> {
    list(s, ns, selector)
}

pub fn replica_sets(s: &Suite, ns: &str, selector: &str) -> Vec<ReplicaSet> {
    list(s, ns, selector)
}

/// One `-o jsonpath=` answer of `kubectl args`; empty on any error.
pub fn jsonpath(s: &Suite, args: &[&str], path: &str) -> String {
    let mut a: Vec<&str> = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    kubectl(s, &a, None).unwrap_or_default()
}

/// `kubectl get -o name --ignore-not-found`: empty once the object is gone.
pub fn exists(s: &Suite, ns: &str, what: &str) -> Result<bool, Failed> {
    let out = kubectl(
        s,
        &["-n", ns, "get", what, "-o", "name", "--ignore-not-found"],
        None,
    )?;
    Ok(!out.trim().is_empty())
}

pub fn ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn image(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|x| x.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

pub fn namespace(s: &Suite, ns: &str) -> Result<(), Failed> {
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
        )),
    )
    .map(|_| ())
}

/// Lets a held object go: its finalizers removed.
pub fn remove_finalizers(s: &Suite, ns: &str, kind: &str, name: &str) -> Result<String, Failed> {
    kubectl(
        s,
        &[
            "-n",
            ns,
            "patch",
            kind,
            name,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
        None,
    )
}

pub fn deployment(ns: &str, name: &str, replicas: u32, image: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n{extra_spec}  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: c\n        image: {image}\n        resources:\n          requests:\n            cpu: 10m\n"
    )
}
