//! The RBAC objects every cluster starts with, after kube-apiserver's
//! bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy):
//! cluster-admin for `system:masters`; discovery, basic-user (the self
//! reviews) and public-info-viewer for every authenticated user; admin,
//! edit and view built by aggregation; `capstan:readers` (read
//! everything). `reconcile` adds what is missing at start-up and never
//! takes away: objects annotated `rbac.authorization.kubernetes.io/
//! autoupdate: "false"` are left exactly as users edited them.

use serde_json::{json, Value};

use super::covers;
use super::escalation::GROUP;
use super::names::UNAUTHENTICATED_GROUP;
use crate::auth::{AUTHENTICATED_GROUP, MASTERS_GROUP, READERS_GROUP};
use crate::resources::{self, Resource};
use crate::rest::{self, Change, DeleteOptions};
use crate::status::ApiError;
use crate::ApiServer;

pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
const BOOTSTRAPPING: &str = "kubernetes.io/bootstrapping";
const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

fn metadata(name: &str, labels: Value) -> Value {
    let mut l = json!({BOOTSTRAPPING: "rbac-defaults"});
    if let (Some(l), Some(extra)) = (l.as_object_mut(), labels.as_object()) {
        l.extend(extra.clone());
    }
    json!({"name": name, "labels": l, "annotations": {AUTOUPDATE: "true"}})
}

fn cluster_role(name: &str, labels: Value, rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": metadata(name, labels), "rules": rules})
}

/// A ClusterRole whose rules are the union of those labelled for it.
fn aggregated(name: &str, labels: Value) -> Value {
    let mut r = cluster_role(name, labels, Vec::new());
    r["aggregationRule"] = json!({"clusterRoleSelectors": [
        {"matchLabels": {format!("{AGGREGATE_TO}{name}"): "true"}}]});
    r
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"kind": "Group", "apiGroup": GROUP, "name": g}))
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": metadata(name, json!({})),
           "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
           "subjects": subjects})
}

fn view_rules() -> Vec<Value> {
    vec![
        rule(
            READ,
            &[""],
            &[
                "pods",
                "pods/log",
                "pods/status",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "replicationcontrollers/status",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
                "serviceaccounts",
                "bindings",
                "events",
                "limitranges",
                "resourcequotas",
                "resourcequotas/status",
                "namespaces",
                "namespaces/status",
            ],
        ),
        rule(
            READ,
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
        ),
        rule(
            READ,
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        rule(
            READ,
            &["batch"],
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
        ),
        rule(
            READ,
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        rule(
            READ,
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
        ),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
    ]
}

fn edit_rules() -> Vec<Value> {
    vec![
        rule(
            WRITE,
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
            ],
        ),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(
            WRITE,
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
                "endpoints",
            ],
        ),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(&["impersonate"], &[""], &["serviceaccounts"]),
        rule(
            WRITE,
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
        ),
        rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
        rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
        rule(
            WRITE,
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
        ),
        rule(WRITE, &["discovery.k8s.io"], &["endpointslices"]),
        rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
        rule(
            READ,
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
        ),
    ]
}

fn admin_rules() -> Vec<Value> {
    vec![
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
        ),
        rule(READ_WRITE, &[GROUP], &["rolebindings", "roles"]),
    ]
}

/// Every ClusterRole, then every ClusterRoleBinding, in creation order.
pub fn objects() -> Vec<Value> {
    let to = |role: &str| json!({format!("{AGGREGATE_TO}{role}"): "true"});
    vec![
        cluster_role(
            "cluster-admin",
            json!({}),
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        cluster_role(
            "system:discovery",
            json!({}),
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:basic-user",
            json!({}),
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            json!({}),
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role(
            "system:monitoring",
            json!({}),
            vec![urls(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
        ),
        aggregated("admin", json!({})),
        aggregated("edit", to("admin")),
        aggregated("view", to("edit")),
        cluster_role("system:aggregate-to-admin", to("admin"), admin_rules()),
        cluster_role("system:aggregate-to-edit", to("edit"), edit_rules()),
        cluster_role("system:aggregate-to-view", to("view"), view_rules()),
        cluster_role(READERS_GROUP, json!({}), vec![rule(READ, &["*"], &["*"])]),
        binding("cluster-admin", "cluster-admin", &[MASTERS_GROUP]),
        binding(
            "system:discovery",
            "system:discovery",
            &[AUTHENTICATED_GROUP],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            &[AUTHENTICATED_GROUP],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &[AUTHENTICATED_GROUP, UNAUTHENTICATED_GROUP],
        ),
        binding(
            "system:monitoring",
            "system:monitoring",
            &["system:monitoring"],
        ),
        binding(READERS_GROUP, READERS_GROUP, &[READERS_GROUP]),
    ]
}

/// What an existing object becomes with the bootstrap one reconciled in:
/// missing labels, annotations, rules, aggregation selectors and subjects
/// added, nothing removed. `None`: already as it should be.
pub fn reconciled(existing: &Value, wanted: &Value) -> Option<Value> {
    let mut out = existing.clone();
    for field in ["labels", "annotations"] {
        let want = wanted
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object);
        for (k, v) in want.into_iter().flatten() {
            let m = crate::registry::meta::meta_mut(&mut out);
            let map = m.entry(field).or_insert_with(|| json!({}));
            if let Some(map) = map.as_object_mut() {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if wanted.get("roleRef").is_some() {
        let have = out
            .get("subjects")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut subjects = have.clone();
        for s in wanted["subjects"].as_array().into_iter().flatten() {
            if !subjects.contains(s) {
                subjects.push(s.clone());
            }
        }
        if subjects != have {
            out["subjects"] = json!(subjects);
        }
    } else {
        let parse = |v: Option<&Value>| -> Vec<k8s_openapi::api::rbac::v1::PolicyRule> {
            v.cloned()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default()
        };
        let have = parse(out.get("rules"));
        if let Err(missing) = covers::covers(&have, &parse(wanted.get("rules"))) {
            let mut rules = out
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            rules.extend(missing.iter().filter_map(|r| serde_json::to_value(r).ok()));
            out["rules"] = json!(rules);
        }
        if let Some(agg) = wanted.get("aggregationRule") {
            if out.get("aggregationRule").is_none_or(Value::is_null) {
                out["aggregationRule"] = agg.clone();
            }
        }
    }
    (out != *existing).then_some(out)
}

fn resource_of(v: &Value) -> Result<&'static Resource, ApiError> {
    let kind = v["kind"].as_str().unwrap_or_default();
    let plural = match kind {
        "ClusterRole" => "clusterroles",
        _ => "clusterrolebindings",
    };
    resources::find(GROUP, "v1", plural)
        .ok_or_else(|| ApiError::Internal(format!("{plural} missing from the resource table")))
}

/// Creates the bootstrap objects that are missing and reconciles the ones
/// that allow it. Safe to repeat and to race with another server.
pub async fn reconcile(api: &ApiServer) -> Result<(), ApiError> {
    for wanted in objects() {
        let res = resource_of(&wanted)?;
        let name = wanted["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let existing = match rest::get(api, res, None, &name).await {
            Ok(s) => s.value,
            Err(ApiError::NotFound(_)) => {
                match rest::create(api, res, None, wanted.clone()).await {
                    Ok(_) | Err(ApiError::AlreadyExists(_)) => {
                        tracing::debug!(kind = res.kind, %name, "bootstrap RBAC object created");
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        if existing.pointer(&format!(
            "/metadata/annotations/{}",
            AUTOUPDATE.replace('/', "~1")
        )) == Some(&json!("false"))
        {
            continue;
        }
        // A binding to another role is made again, as Kubernetes does.
        if wanted.get("roleRef").is_some() && existing.get("roleRef") != wanted.get("roleRef") {
            rest::delete(api, res, None, &name, &DeleteOptions::default()).await?;
            match rest::create(api, res, None, wanted.clone()).await {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        if reconciled(&existing, &wanted).is_some() {
            let w = wanted.clone();
            let f = move |cur: &Value| Ok(reconciled(cur, &w).unwrap_or_else(|| cur.clone()));
            rest::update(
                api,
                res,
                None,
                &name,
                None,
                Change::Compute {
                    f: Box::new(f),
                    precondition: None,
                },
            )
            .await?;
            tracing::info!(kind = res.kind, %name, "bootstrap RBAC object reconciled");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_objects_are_valid() {
        use crate::registry::prepare_create;
        for o in objects() {
            let res = resource_of(&o).unwrap();
            let mut v = (res.normalize)(o.clone()).unwrap();
            prepare_create(res, &mut v).unwrap_or_else(|e| panic!("{o}: {e:?}"));
        }
    }

    #[test]
    fn reconcile_adds_and_never_removes() {
        let wanted = cluster_role(
            "r",
            json!({"a": "1"}),
            vec![rule(&["get"], &[""], &["pods"])],
        );
        assert_eq!(reconciled(&wanted, &wanted), None);
        // A user's extra rule and label stay; the missing rule comes back.
        let edited = json!({"metadata": {"name": "r", "labels": {"a": "2", "mine": "x"}},
            "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]});
        let r = reconciled(&edited, &wanted).unwrap();
        assert_eq!(r["metadata"]["labels"]["a"], "2");
        assert_eq!(r["metadata"]["labels"]["mine"], "x");
        assert_eq!(r["metadata"]["annotations"][AUTOUPDATE], "true");
        assert_eq!(r["rules"].as_array().unwrap().len(), 2);
        let b = binding("b", "r", &["g1"]);
        let mut more = b.clone();
        more["subjects"] = json!([{"kind": "User", "name": "u", "apiGroup": GROUP}]);
        let r = reconciled(&more, &b).unwrap();
        assert_eq!(r["subjects"].as_array().unwrap().len(), 2);
    }
}
