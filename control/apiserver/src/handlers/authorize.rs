//! Authorization of a resource request: the verb a method and target
//! mean, the attributes the authorizer sees, and Kubernetes' wording of a
//! denial. It asks `Authorizer`; it never decides itself.

use axum::http::Method;

use super::target::ResourceTarget;
use crate::auth::{Attributes, Decision, User, Verb};
use crate::resources::Sub;
use crate::status::ApiError;
use crate::ApiServer;

pub fn verb_of(method: &Method, t: &ResourceTarget, watch: bool) -> Result<Verb, ApiError> {
    Ok(match (method.as_str(), t.name.is_some()) {
        ("GET", false) if watch || t.watch_path => Verb::Watch,
        ("GET", true) if watch || t.watch_path => Verb::Watch,
        ("GET", false) => Verb::List,
        ("GET", true) => Verb::Get,
        ("POST", false) => Verb::Create,
        ("POST", true) if matches!(t.sub, Some(Sub::Binding | Sub::Token)) => Verb::Create,
        ("PUT", true) => Verb::Update,
        ("PATCH", true) => Verb::Patch,
        ("DELETE", false) => Verb::DeleteCollection,
        ("DELETE", true) => Verb::Delete,
        _ => return Err(ApiError::MethodNotAllowed),
    })
}

pub fn attributes<'a>(
    verb: Verb,
    t: &'a ResourceTarget,
    name: Option<&'a str>,
    pod_node: Option<&'a str>,
    node_related: bool,
) -> Attributes<'a> {
    Attributes {
        verb: Some(verb),
        group: t.res.group,
        resource: t.res.plural,
        subresource: t.sub.map(Sub::name),
        namespace: t.namespace.as_deref(),
        name,
        pod_node_name: pod_node,
        node_related,
        path: None,
    }
}

pub fn authorize(
    api: &ApiServer,
    user: Option<&User>,
    verb: Verb,
    t: &ResourceTarget,
    name: Option<&str>,
    pod_node: Option<&str>,
    node_related: bool,
) -> Result<(), ApiError> {
    let Some(user) = user else {
        return Err(ApiError::Unauthorized);
    };
    let attrs = attributes(verb, t, name, pod_node, node_related);
    match api.authorizer.authorize(user, &attrs) {
        Decision::Allow => Ok(()),
        Decision::Deny(reason) => {
            let what = match &t.sub {
                Some(s) => format!("{}/{}", t.res.plural, s.name()),
                None => t.res.plural.to_string(),
            };
            let group = if t.res.group.is_empty() {
                "\"\"".to_string()
            } else {
                format!("\"{}\"", t.res.group)
            };
            let scope = match &t.namespace {
                Some(ns) => format!(" in the namespace \"{ns}\""),
                None => " at the cluster scope".into(),
            };
            // Kubernetes names the object when the request does (a create's
            // body name is not part of the request, so it is not shown).
            let shown = match (verb, &t.name) {
                (Verb::Create, None) => String::new(),
                _ => name.map(|n| format!(" \"{n}\"")).unwrap_or_default(),
            };
            let verb = verb.as_str();
            // RBAC's own denial says nothing more (no rule matched);
            // Kubernetes then ends the message at the scope.
            let reason = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            Err(ApiError::Forbidden(format!(
                "{what}{shown} is forbidden: User \"{}\" cannot {verb} resource \"{}\" in API group {group}{scope}{reason}",
                user.name, what
            )))
        }
    }
}
