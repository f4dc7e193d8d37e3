//! Discovery documents built from the resource table: `/version`, `/api`,
//! `/apis`, `/apis/<group>`, the per-version resource lists, and the
//! aggregated (apidiscovery.k8s.io/v2) form kubectl 1.26+ asks for first.

use serde_json::{json, Value};

use super::resources::{self, Resource, Sub, RESOURCES, VERBS};
use super::reviews;

/// The media type of aggregated discovery, as kubectl asks for it.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an Accept header asks for aggregated discovery (v2).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let p: Vec<&str> = part.split(';').map(str::trim).collect();
        p.contains(&"g=apidiscovery.k8s.io")
            && p.contains(&"v=v2")
            && p.contains(&"as=APIGroupDiscoveryList")
    })
}

pub fn version(git_version: &str) -> Value {
    let minor = git_version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .unwrap_or("33")
        .to_string();
    json!({
        "major": "1",
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

fn group_doc(group: &str) -> Value {
    let gv = format!("{group}/v1");
    json!({
        "name": group,
        "versions": [{"groupVersion": gv, "version": "v1"}],
        "preferredVersion": {"groupVersion": gv, "version": "v1"},
    })
}

/// Groups with stored resources, then the groups only reviews live in.
fn all_groups() -> Vec<&'static str> {
    let mut gs = resources::groups();
    for g in reviews::groups() {
        if !gs.contains(&g) {
            gs.push(g);
        }
    }
    gs
}

pub fn api_groups() -> Value {
    let groups: Vec<Value> = all_groups()
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(group_doc)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(group: &str) -> Option<Value> {
    if group.is_empty() || !all_groups().contains(&group) {
        return None;
    }
    let mut g = group_doc(group);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

fn categories(r: &Resource) -> Vec<&'static str> {
    match r.plural {
        "pods"
        | "services"
        | "deployments"
        | "replicasets"
        | "daemonsets"
        | "replicationcontrollers" => vec!["all"],
        _ => vec![],
    }
}

type SubInfo = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// (name, kind, group, verbs) of a subresource.
fn subresource_info(r: &Resource, s: Sub) -> SubInfo {
    match s {
        Sub::Status => ("status", r.kind, r.group, &["get", "patch", "update"]),
        Sub::Scale => ("scale", "Scale", "autoscaling", &["get", "patch", "update"]),
        Sub::Binding => ("binding", "Binding", "", &["create"]),
        Sub::Log => ("log", "Pod", "", &["get"]),
        Sub::Token => (
            "token",
            "TokenRequest",
            "authentication.k8s.io",
            &["create"],
        ),
    }
}

pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let rs = resources::in_group_version(group, version);
    let revs = reviews::in_group_version(group, version);
    if rs.is_empty() && revs.is_empty() {
        return None;
    }
    let mut out: Vec<Value> = revs
        .iter()
        .map(|r| {
            json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced(),
                   "kind": r.kind, "verbs": ["create"]})
        })
        .collect();
    for r in rs {
        let mut doc = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            doc["shortNames"] = json!(r.short_names);
        }
        let cats = categories(r);
        if !cats.is_empty() {
            doc["categories"] = json!(cats);
        }
        out.push(doc);
        for s in r.subresources {
            let (name, kind, g, verbs) = subresource_info(r, *s);
            let mut sub = json!({
                "name": format!("{}/{}", r.plural, name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if g != r.group {
                sub["group"] = json!(g);
                sub["version"] = json!("v1");
            }
            out.push(sub);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    )
}

/// Aggregated discovery for `/api` (`core` = true) or `/apis`.
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = all_groups()
        .into_iter()
        .filter(|g| g.is_empty() == core)
        .map(|group| {
            let review_docs = reviews::in_group_version(group, "v1").into_iter().map(|r| {
                json!({
                    "resource": r.plural,
                    "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                    "scope": if r.namespaced() { "Namespaced" } else { "Cluster" },
                    "singularResource": r.singular,
                    "verbs": ["create"],
                })
            });
            let resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.group == group)
                .map(|r| {
                    let subs: Vec<Value> = r
                        .subresources
                        .iter()
                        .map(|s| {
                            let (name, kind, g, verbs) = subresource_info(r, *s);
                            json!({"subresource": name, "responseKind": {"group": g, "version": "v1", "kind": kind}, "verbs": verbs})
                        })
                        .collect();
                    let mut doc = json!({
                        "resource": r.plural,
                        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": VERBS,
                        "subresources": subs,
                    });
                    if !r.short_names.is_empty() {
                        doc["shortNames"] = json!(r.short_names);
                    }
                    let cats = categories(r);
                    if !cats.is_empty() {
                        doc["categories"] = json!(cats);
                    }
                    doc
                })
                .chain(review_docs)
                .collect();
            let mut meta = json!({"creationTimestamp": null});
            if !group.is_empty() {
                meta["name"] = json!(group);
            }
            json!({"metadata": meta, "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_pods_and_subresources() {
        let l = resource_list("", "v1").unwrap();
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for n in [
            "pods",
            "pods/status",
            "pods/binding",
            "services",
            "replicationcontrollers/scale",
            "serviceaccounts/token",
        ] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
        assert!(resource_list("apps", "v2").is_none());
        let authz = resource_list("authorization.k8s.io", "v1").unwrap();
        assert_eq!(authz["resources"][0]["name"], "selfsubjectaccessreviews");
        assert_eq!(authz["resources"][0]["verbs"], json!(["create"]));
        assert!(api_group("authentication.k8s.io").is_some());
        assert!(api_groups()["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "authorization.k8s.io"));
    }

    #[test]
    fn aggregated_accept_header() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json"));
        let a = aggregated(false);
        assert!(a["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["metadata"]["name"] == "apps"));
        let authn = a["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "authentication.k8s.io")
            .unwrap();
        assert_eq!(
            authn["versions"][0]["resources"][0]["resource"],
            "selfsubjectreviews"
        );
    }
}
