//! The authorizer capstan-control runs with, in Kubernetes' order:
//! `system:masters` may do everything; a node's identity gets the node
//! rules (`node.rs`); then RBAC (`rbac/`) from the in-memory policy; else
//! no. A node request the node rules refuse may still be allowed by RBAC,
//! as kube-apiserver's union of authorizers does; the node reason is kept
//! when neither allows. (`capstan:readers` is an RBAC binding now, made at
//! start-up: see `rbac::bootstrap`.)

use std::sync::Arc;

use super::rbac::{self, Policy};
use super::{node, Attributes, Authorizer, Decision, User, MASTERS_GROUP};

#[derive(Clone, Default)]
pub struct ClusterAuthorizer {
    /// `None`: the fixed rules alone (masters and nodes), for tests of the
    /// edge that have no storage.
    rbac: Option<Arc<Policy>>,
}

impl ClusterAuthorizer {
    /// Masters, nodes, then RBAC from `policy`.
    pub fn new(policy: Arc<Policy>) -> Self {
        ClusterAuthorizer { rbac: Some(policy) }
    }

    /// Masters and nodes only: everyone else is refused.
    pub fn fixed() -> Self {
        ClusterAuthorizer { rbac: None }
    }
}

impl Authorizer for ClusterAuthorizer {
    fn authorize(&self, user: &User, a: &Attributes<'_>) -> Decision {
        if user.groups.iter().any(|g| g == MASTERS_GROUP) {
            return Decision::Allow;
        }
        let node_reason = match user.node_name() {
            Some(n) => match node::authorize(n, a) {
                Decision::Allow => return Decision::Allow,
                Decision::Deny(why) => Some(why),
            },
            None => None,
        };
        let rbac_reason = match &self.rbac {
            Some(p) => match rbac::authorize(p, user, a) {
                Decision::Allow => return Decision::Allow,
                Decision::Deny(why) => why,
            },
            None => String::new(),
        };
        Decision::Deny(match node_reason {
            Some(n) if !a.is_resource_request() || rbac_reason.is_empty() => n,
            Some(n) => format!("{n}; {rbac_reason}"),
            None => rbac_reason,
        })
    }

    /// Only the node rules look at a pod's node, and only for writes.
    fn uses_pod_node(&self, user: &User, a: &Attributes<'_>) -> bool {
        !user.groups.iter().any(|g| g == MASTERS_GROUP)
            && user.node_name().is_some()
            && !a.verb.is_some_and(|v| v.is_read())
    }

    /// Only a node's reads of secrets, configmaps and serviceaccounts, and
    /// its token requests, need its pods.
    fn uses_node_relation(&self, user: &User, a: &Attributes<'_>) -> bool {
        !user.groups.iter().any(|g| g == MASTERS_GROUP)
            && user.node_name().is_some()
            && node::uses_relation(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::rbac::policy::Kind;
    use crate::auth::{Verb, NODES_GROUP};
    use serde_json::json;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            uid: None,
        }
    }

    fn synced(objects: &[(Kind, serde_json::Value)]) -> Arc<Policy> {
        let p = Policy::new();
        for k in Kind::ALL {
            let items: Vec<_> = objects
                .iter()
                .filter(|(kind, _)| *kind == k)
                .map(|(_, v)| v.clone())
                .collect();
            p.replace(k, &items);
        }
        p
    }

    #[test]
    fn masters_nodes_then_rbac() {
        let write = Attributes {
            verb: Some(Verb::Create),
            resource: "pods",
            namespace: Some("a"),
            ..Default::default()
        };
        let read = Attributes {
            verb: Some(Verb::List),
            resource: "pods",
            namespace: Some("a"),
            ..Default::default()
        };
        let policy = synced(&[
            (
                Kind::ClusterRole,
                json!({"metadata": {"name": "reader"}, "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": ["*"], "resources": ["*"]}]}),
            ),
            (
                Kind::ClusterRoleBinding,
                json!({"metadata": {"name": "readers"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
                       "subjects": [{"kind": "Group", "name": "ro", "apiGroup": "rbac.authorization.k8s.io"}]}),
            ),
        ]);
        let z = ClusterAuthorizer::new(policy);
        assert_eq!(
            z.authorize(&user("admin", &[MASTERS_GROUP]), &write),
            Decision::Allow
        );
        assert_eq!(z.authorize(&user("r", &["ro"]), &read), Decision::Allow);
        assert_eq!(
            z.authorize(&user("r", &["ro"]), &write),
            Decision::Deny(String::new())
        );
        assert!(matches!(
            z.authorize(&user("bob", &[]), &read),
            Decision::Deny(_)
        ));
        // A node name without the nodes group is just a user.
        assert!(matches!(
            z.authorize(&user("system:node:a", &[]), &read),
            Decision::Deny(_)
        ));
        assert_eq!(
            z.authorize(&user("system:node:a", &[NODES_GROUP]), &read),
            Decision::Allow
        );
        // The node rules refuse a node's pod create; the node's reason stays.
        let d = z.authorize(&user("system:node:a", &[NODES_GROUP]), &write);
        assert!(
            matches!(&d, Decision::Deny(m) if m.contains("nodes may only")),
            "{d:?}"
        );
        // Without RBAC only masters and nodes get anything.
        let fixed = ClusterAuthorizer::fixed();
        assert!(matches!(
            fixed.authorize(&user("r", &["ro"]), &read),
            Decision::Deny(_)
        ));
        assert_eq!(
            fixed.authorize(&user("system:node:a", &[NODES_GROUP]), &read),
            Decision::Allow
        );
    }
}
