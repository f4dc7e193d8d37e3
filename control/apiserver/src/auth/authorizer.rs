//! The authorizer capstan-control runs with. `system:masters` may do
//! everything; a node's identity gets the node rules (`node.rs`);
//! `capstan:readers` may read everything; anyone else is refused. There is
//! no RBAC: these fixed rules are the whole policy.

use super::{node, Attributes, Authorizer, Decision, User, MASTERS_GROUP, READERS_GROUP};

#[derive(Clone, Copy, Debug, Default)]
pub struct ClusterAuthorizer;

impl Authorizer for ClusterAuthorizer {
    fn authorize(&self, user: &User, a: &Attributes<'_>) -> Decision {
        let in_group = |g: &str| user.groups.iter().any(|x| x == g);
        if in_group(MASTERS_GROUP) {
            return Decision::Allow;
        }
        if let Some(n) = user.node_name() {
            return node::authorize(n, a);
        }
        if in_group(READERS_GROUP) && a.verb.is_some_and(|v| v.is_read()) {
            return Decision::Allow;
        }
        Decision::Deny(format!(
            "no rule allows {}; {MASTERS_GROUP} may do everything, {READERS_GROUP} may read",
            user.name
        ))
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
    use crate::auth::{Verb, NODES_GROUP};

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            uid: None,
        }
    }

    #[test]
    fn groups_decide() {
        let write = Attributes {
            verb: Some(Verb::Create),
            resource: "pods",
            ..Default::default()
        };
        let read = Attributes {
            verb: Some(Verb::List),
            resource: "pods",
            ..Default::default()
        };
        let z = ClusterAuthorizer;
        assert_eq!(
            z.authorize(&user("admin", &[MASTERS_GROUP]), &write),
            Decision::Allow
        );
        assert_eq!(
            z.authorize(&user("ro", &[READERS_GROUP]), &read),
            Decision::Allow
        );
        assert!(matches!(
            z.authorize(&user("ro", &[READERS_GROUP]), &write),
            Decision::Deny(_)
        ));
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
    }
}
