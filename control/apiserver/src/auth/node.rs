//! What a node's credentials may do, after Kubernetes' Node authorizer and
//! NodeRestriction admission: write its own Node (and status), the status of
//! pods bound to it, delete those pods, its own Lease in `kube-node-lease`,
//! and events. It may read secrets, configmaps and serviceaccounts only
//! when a pod bound to it references them (`pod_refs.rs`), one named
//! object at a time (get, or list/watch with a `metadata.name` field
//! selector): a node's credentials must not open every secret in the
//! cluster. Other reads are allowed. It may create tokens
//! (`serviceaccounts/token`) for the service accounts its pods run as; that
//! the token is bound to such a pod is checked where the request's body is
//! read (`token_request.rs`, Kubernetes' NodeRestriction).

use super::{Attributes, Decision, Verb};

/// Namespace of node heartbeat Leases, as in Kubernetes.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

pub fn authorize(node: &str, a: &Attributes<'_>) -> Decision {
    let Some(verb) = a.verb else {
        return Decision::Deny("no verb".into());
    };
    // Plain URLs (discovery, OpenAPI) are RBAC's to answer, as in Kubernetes.
    if !a.is_resource_request() {
        return deny("no node rule covers non-resource URLs");
    }
    if verb.is_read() {
        if is_pod_referenced(a) {
            return referenced_object(node, a);
        }
        return Decision::Allow;
    }
    match (a.group, a.resource) {
        ("", "nodes") => own_node(node, verb, a),
        ("", "pods") => bound_pod(node, verb, a),
        ("coordination.k8s.io", "leases") => own_lease(node, verb, a),
        ("", "serviceaccounts") if is_token_request(a) => referenced_object(node, a),
        ("", "events") | ("events.k8s.io", "events") => match verb {
            Verb::Create | Verb::Update | Verb::Patch => Decision::Allow,
            _ => deny("nodes may only create and update events"),
        },
        _ => deny("no node rule allows this"),
    }
}

/// Resources a node may read only when its pods reference them.
pub fn is_pod_referenced(a: &Attributes<'_>) -> bool {
    a.group.is_empty()
        && matches!(a.resource, "secrets" | "configmaps" | "serviceaccounts")
        && a.subresource.is_none()
}

/// `create serviceaccounts/token`: how a kubelet gets its pods' tokens.
pub fn is_token_request(a: &Attributes<'_>) -> bool {
    a.group.is_empty()
        && a.resource == "serviceaccounts"
        && a.subresource == Some("token")
        && a.verb == Some(Verb::Create)
}

/// Whether the node rule for `a` depends on `a.node_related` (so the API
/// server must look up the node's pods).
pub fn uses_relation(a: &Attributes<'_>) -> bool {
    (a.verb.is_some_and(|v| v.is_read()) && is_pod_referenced(a)) || is_token_request(a)
}

/// Kubernetes' node authorizer answers with these exact reasons.
fn referenced_object(node: &str, a: &Attributes<'_>) -> Decision {
    if a.name.is_none() || a.namespace.is_none() {
        return deny("No Object name found");
    }
    if a.node_related {
        Decision::Allow
    } else {
        deny(&format!(
            "no relationship found between node '{node}' and this object"
        ))
    }
}

fn own_node(node: &str, verb: Verb, a: &Attributes<'_>) -> Decision {
    if !matches!(a.subresource, None | Some("status")) {
        return deny("nodes may only write a Node and its status");
    }
    if verb == Verb::DeleteCollection {
        return deny("nodes may not delete Nodes in bulk");
    }
    match a.name {
        Some(name) if name == node => Decision::Allow,
        Some(name) => deny(&format!("node '{node}' cannot modify node '{name}'")),
        None => deny("the Node's name is unknown"),
    }
}

fn bound_pod(node: &str, verb: Verb, a: &Attributes<'_>) -> Decision {
    let writes_status =
        matches!(verb, Verb::Update | Verb::Patch) && a.subresource == Some("status");
    let deletes = verb == Verb::Delete && a.subresource.is_none();
    if !(writes_status || deletes) {
        return deny("nodes may only update pod status and delete pods bound to them");
    }
    match a.pod_node_name {
        Some(bound) if bound == node => Decision::Allow,
        Some(bound) => deny(&format!("pod is bound to node '{bound}', not '{node}'")),
        None => deny("pod is not bound to this node"),
    }
}

fn own_lease(node: &str, verb: Verb, a: &Attributes<'_>) -> Decision {
    if a.namespace != Some(NODE_LEASE_NAMESPACE) {
        return deny("nodes may only write Leases in the kube-node-lease namespace");
    }
    if verb == Verb::DeleteCollection || a.subresource.is_some() {
        return deny("nodes may only write their own Lease");
    }
    match a.name {
        Some(name) if name == node => Decision::Allow,
        _ => deny("nodes may only write the Lease named after them"),
    }
}

/// The API server's 403 already says who may not do what to which
/// resource; the reason adds only why, as Kubernetes' node authorizer does.
fn deny(why: &str) -> Decision {
    Decision::Deny(why.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(verb: Verb, group: &'a str, resource: &'a str) -> Attributes<'a> {
        Attributes {
            verb: Some(verb),
            group,
            resource,
            ..Default::default()
        }
    }

    fn allowed(d: Decision) -> bool {
        d == Decision::Allow
    }

    #[test]
    fn reads_are_allowed() {
        for r in ["pods", "nodes", "services"] {
            assert!(allowed(authorize("n1", &attrs(Verb::List, "", r))));
            assert!(allowed(authorize("n1", &attrs(Verb::Watch, "", r))));
        }
    }

    #[test]
    fn secrets_and_configmaps_only_when_referenced() {
        for r in ["secrets", "configmaps"] {
            for verb in [Verb::Get, Verb::List, Verb::Watch] {
                // Unnamed (a list or watch of the namespace): refused.
                let mut a = attrs(verb, "", r);
                a.namespace = Some("ns");
                a.node_related = true;
                let d = authorize("n1", &a);
                assert_eq!(d, Decision::Deny("No Object name found".into()));
                a.name = Some("x");
                assert!(allowed(authorize("n1", &a)), "{r} {verb:?}");
                a.node_related = false;
                assert_eq!(
                    authorize("n1", &a),
                    Decision::Deny(
                        "no relationship found between node 'n1' and this object".into()
                    )
                );
            }
            // Writes stay refused even when referenced.
            let mut w = attrs(Verb::Update, "", r);
            w.namespace = Some("ns");
            w.name = Some("x");
            w.node_related = true;
            assert!(!allowed(authorize("n1", &w)));
        }
    }

    #[test]
    fn service_accounts_and_tokens_only_for_own_pods() {
        let mut get = attrs(Verb::Get, "", "serviceaccounts");
        get.namespace = Some("ns");
        get.name = Some("default");
        assert!(uses_relation(&get));
        assert!(!allowed(authorize("n1", &get)));
        get.node_related = true;
        assert!(allowed(authorize("n1", &get)));
        let mut token = attrs(Verb::Create, "", "serviceaccounts");
        token.subresource = Some("token");
        token.namespace = Some("ns");
        token.name = Some("default");
        assert!(uses_relation(&token));
        assert_eq!(
            authorize("n1", &token),
            Decision::Deny("no relationship found between node 'n1' and this object".into())
        );
        token.node_related = true;
        assert!(allowed(authorize("n1", &token)));
        // Only create, only the token subresource, never the account itself.
        let mut update = token.clone();
        update.verb = Some(Verb::Update);
        assert!(!allowed(authorize("n1", &update)));
        let mut create_sa = token.clone();
        create_sa.subresource = None;
        assert!(!allowed(authorize("n1", &create_sa)));
        let mut unnamed = token.clone();
        unnamed.name = None;
        assert_eq!(
            authorize("n1", &unnamed),
            Decision::Deny("No Object name found".into())
        );
    }

    #[test]
    fn own_node_only() {
        for verb in [Verb::Create, Verb::Update, Verb::Patch, Verb::Delete] {
            for sub in [None, Some("status")] {
                let mut a = attrs(verb, "", "nodes");
                a.subresource = sub;
                a.name = Some("n1");
                assert!(allowed(authorize("n1", &a)), "{verb:?} {sub:?}");
                a.name = Some("n2");
                let d = authorize("n1", &a);
                assert!(
                    matches!(&d, Decision::Deny(m) if m.contains("cannot modify node 'n2'")),
                    "{d:?}"
                );
            }
        }
        let mut a = attrs(Verb::Patch, "", "nodes");
        a.name = None;
        assert!(!allowed(authorize("n1", &a)));
        a.name = Some("n1");
        a.subresource = Some("proxy");
        assert!(!allowed(authorize("n1", &a)));
        assert!(!allowed(authorize(
            "n1",
            &attrs(Verb::DeleteCollection, "", "nodes")
        )));
    }

    #[test]
    fn pods_bound_to_self() {
        let mut a = attrs(Verb::Patch, "", "pods");
        a.subresource = Some("status");
        a.namespace = Some("default");
        a.name = Some("p");
        a.pod_node_name = Some("n1");
        assert!(allowed(authorize("n1", &a)));
        a.pod_node_name = Some("n2");
        assert!(!allowed(authorize("n1", &a)));
        a.pod_node_name = None;
        assert!(!allowed(authorize("n1", &a)));
        // Spec updates and creates are not a node's to make.
        let mut spec = attrs(Verb::Update, "", "pods");
        spec.pod_node_name = Some("n1");
        assert!(!allowed(authorize("n1", &spec)));
        let mut create = attrs(Verb::Create, "", "pods");
        create.pod_node_name = Some("n1");
        assert!(!allowed(authorize("n1", &create)));
        let mut del = attrs(Verb::Delete, "", "pods");
        del.pod_node_name = Some("n1");
        assert!(allowed(authorize("n1", &del)));
        del.pod_node_name = Some("n2");
        assert!(!allowed(authorize("n1", &del)));
    }

    #[test]
    fn own_lease_in_node_lease_namespace() {
        let mut a = attrs(Verb::Update, "coordination.k8s.io", "leases");
        a.namespace = Some(NODE_LEASE_NAMESPACE);
        a.name = Some("n1");
        assert!(allowed(authorize("n1", &a)));
        a.name = Some("n2");
        assert!(!allowed(authorize("n1", &a)));
        a.name = Some("n1");
        a.namespace = Some("default");
        assert!(!allowed(authorize("n1", &a)));
    }

    #[test]
    fn events_and_nothing_else() {
        assert!(allowed(authorize("n1", &attrs(Verb::Create, "", "events"))));
        assert!(allowed(authorize(
            "n1",
            &attrs(Verb::Create, "events.k8s.io", "events")
        )));
        assert!(!allowed(authorize(
            "n1",
            &attrs(Verb::Delete, "", "events")
        )));
        assert!(!allowed(authorize(
            "n1",
            &attrs(Verb::Create, "", "services")
        )));
        assert!(!allowed(authorize(
            "n1",
            &attrs(Verb::Create, "apps", "deployments")
        )));
        assert!(!allowed(authorize("n1", &Attributes::default())));
    }
}
