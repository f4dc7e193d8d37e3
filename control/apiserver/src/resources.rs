//! The resource table: every kind the server serves, with its group,
//! version, names, scope, subresources and verbs. Discovery, OpenAPI and
//! the router all read this one table; nothing else lists resources.

use k8s_openapi::api::{apps, coordination, core, discovery, rbac};
use k8s_openapi::schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// How a body is checked against the Kubernetes type: decoded into the
/// `k8s-openapi` struct and encoded back, which rejects wrong shapes and
/// drops unknown fields the way the real server's decoder does.
pub type Normalize = fn(Value) -> Result<Value, serde_json::Error>;

/// Adds the kind's JSON schema (and everything it refers to) to a
/// generator's definitions; OpenAPI documents are built from these.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

fn roundtrip<T: DeserializeOwned + Serialize>(v: Value) -> Result<Value, serde_json::Error> {
    let typed: T = serde_json::from_value(v)?;
    serde_json::to_value(typed)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sub {
    Status,
    Scale,
    Binding,
    Log,
    /// `serviceaccounts/token`: TokenRequest (create only, nothing stored).
    Token,
}

impl Sub {
    pub fn name(self) -> &'static str {
        match self {
            Sub::Status => "status",
            Sub::Scale => "scale",
            Sub::Binding => "binding",
            Sub::Log => "log",
            Sub::Token => "token",
        }
    }
}

pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    pub subresources: &'static [Sub],
    /// Whether a create resets `.status` (Kubernetes does for objects whose
    /// status is written by controllers only, not for nodes).
    pub reset_status_on_create: bool,
    pub normalize: Normalize,
    pub schema: SchemaFn,
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} {}", self.group, self.version, self.plural)
    }
}

pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn has(&self, sub: Sub) -> bool {
        self.subresources.contains(&sub)
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

macro_rules! res {
    ($group:expr, $kind:literal, $plural:literal, $singular:literal, [$($short:literal),*], $ns:expr, [$($sub:ident),*], $reset:expr, $ty:ty) => {
        Resource {
            group: $group,
            version: "v1",
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: &[$($short),*],
            namespaced: $ns,
            subresources: &[$(Sub::$sub),*],
            reset_status_on_create: $reset,
            normalize: roundtrip::<$ty>,
            schema: schema_of::<$ty>,
        }
    };
}

pub static RESOURCES: &[Resource] = &[
    res!(
        "",
        "Namespace",
        "namespaces",
        "namespace",
        ["ns"],
        false,
        [Status],
        true,
        core::v1::Namespace
    ),
    res!(
        "",
        "Node",
        "nodes",
        "node",
        ["no"],
        false,
        [Status],
        false,
        core::v1::Node
    ),
    res!(
        "",
        "Pod",
        "pods",
        "pod",
        ["po"],
        true,
        [Status, Binding, Log],
        true,
        core::v1::Pod
    ),
    res!(
        "",
        "Service",
        "services",
        "service",
        ["svc"],
        true,
        [Status],
        true,
        core::v1::Service
    ),
    res!(
        "",
        "Endpoints",
        "endpoints",
        "endpoints",
        ["ep"],
        true,
        [],
        false,
        core::v1::Endpoints
    ),
    res!(
        "",
        "ConfigMap",
        "configmaps",
        "configmap",
        ["cm"],
        true,
        [],
        false,
        core::v1::ConfigMap
    ),
    res!(
        "",
        "Secret",
        "secrets",
        "secret",
        [],
        true,
        [],
        false,
        core::v1::Secret
    ),
    res!(
        "",
        "Event",
        "events",
        "event",
        ["ev"],
        true,
        [],
        false,
        core::v1::Event
    ),
    res!(
        "",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        ["sa"],
        true,
        [Token],
        false,
        core::v1::ServiceAccount
    ),
    res!(
        "",
        "ReplicationController",
        "replicationcontrollers",
        "replicationcontroller",
        ["rc"],
        true,
        [Status, Scale],
        true,
        core::v1::ReplicationController
    ),
    res!(
        "apps",
        "Deployment",
        "deployments",
        "deployment",
        ["deploy"],
        true,
        [Status, Scale],
        true,
        apps::v1::Deployment
    ),
    res!(
        "apps",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        ["rs"],
        true,
        [Status, Scale],
        true,
        apps::v1::ReplicaSet
    ),
    res!(
        "apps",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        ["ds"],
        true,
        [Status],
        true,
        apps::v1::DaemonSet
    ),
    res!(
        "discovery.k8s.io",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        [],
        true,
        [],
        false,
        discovery::v1::EndpointSlice
    ),
    res!(
        "coordination.k8s.io",
        "Lease",
        "leases",
        "lease",
        [],
        true,
        [],
        false,
        coordination::v1::Lease
    ),
    res!(
        "rbac.authorization.k8s.io",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        [],
        false,
        [],
        false,
        rbac::v1::ClusterRole
    ),
    res!(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        [],
        false,
        [],
        false,
        rbac::v1::ClusterRoleBinding
    ),
    res!(
        "rbac.authorization.k8s.io",
        "Role",
        "roles",
        "role",
        [],
        true,
        [],
        false,
        rbac::v1::Role
    ),
    res!(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        [],
        true,
        [],
        false,
        rbac::v1::RoleBinding
    ),
];

/// The groups in discovery order (core first, as Kubernetes lists them).
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

/// The resource served at `<group>/<version>/<plural>`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn in_group_version(group: &str, version: &str) -> Vec<&'static Resource> {
    RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_names_are_unique_per_group() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(!(a.group == b.group && a.plural == b.plural), "{a:?}");
            }
        }
    }

    #[test]
    fn normalize_rejects_wrong_shape_and_drops_unknown_fields() {
        let pods = find("", "v1", "pods").unwrap();
        let bad = serde_json::json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":"x"}});
        assert!((pods.normalize)(bad).is_err());
        let ok =
            serde_json::json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"bogus":1});
        let v = (pods.normalize)(ok).unwrap();
        assert!(v.get("bogus").is_none());
        assert_eq!(v["metadata"]["name"], "a");
    }
}
