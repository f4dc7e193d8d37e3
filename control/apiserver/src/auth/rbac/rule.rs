//! Whether one RBAC `PolicyRule` allows a request, and whether a binding's
//! subject is the caller: Kubernetes' `RuleAllows` and `appliesTo`
//! (plugin/pkg/auth/authorizer/rbac), to the letter. Pure functions.

use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};

use super::names;
use crate::auth::{Attributes, User};

/// `*` in verbs, apiGroups, resources and nonResourceURLs.
pub const ALL: &str = "*";

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or_default()
}

/// A verb the server does not know (a review may ask one) is `None`; it
/// matches only a rule that allows every verb.
pub fn verb_matches(rule: &PolicyRule, verb: Option<&str>) -> bool {
    rule.verbs
        .iter()
        .any(|v| v == ALL || Some(v.as_str()) == verb)
}

pub fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    list(&rule.api_groups)
        .iter()
        .any(|g| g == ALL || g == group)
}

/// `resource` or `resource/subresource`; a rule's `*/subresource` matches
/// that subresource of every resource.
pub fn resource_matches(rule: &PolicyRule, combined: &str, subresource: Option<&str>) -> bool {
    list(&rule.resources).iter().any(|r| {
        if r == ALL || r == combined {
            return true;
        }
        match (subresource, r.strip_prefix("*/")) {
            (Some(sub), Some(rule_sub)) => sub == rule_sub,
            _ => false,
        }
    })
}

/// A rule without resourceNames covers every name (and requests with none:
/// list, create); one with names covers only those.
pub fn resource_name_matches(rule: &PolicyRule, name: Option<&str>) -> bool {
    let names = list(&rule.resource_names);
    names.is_empty() || names.iter().any(|n| Some(n.as_str()) == name)
}

/// Exact, `*`, or a trailing `*` as a prefix (`/apis/*`).
pub fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    list(&rule.non_resource_urls).iter().any(|u| {
        u == ALL
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// Whether `rule` allows the request `a` (Kubernetes' `RuleAllows`).
pub fn allows(a: &Attributes<'_>, verb: Option<&str>, rule: &PolicyRule) -> bool {
    if !verb_matches(rule, verb) {
        return false;
    }
    match a.path {
        Some(path) => non_resource_url_matches(rule, path),
        None => {
            let combined = match a.subresource {
                Some(sub) => format!("{}/{sub}", a.resource),
                None => a.resource.to_string(),
            };
            api_group_matches(rule, a.group)
                && resource_matches(rule, &combined, a.subresource)
                && resource_name_matches(rule, a.name)
        }
    }
}

/// Whether a binding's subject names `user`. A ServiceAccount subject
/// without a namespace takes the binding's (`namespace`, empty for a
/// ClusterRoleBinding, where it then matches nobody).
pub fn applies_to(user: &User, subject: &Subject, namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            !ns.is_empty() && names::is_service_account(&user.name, ns, &subject.name)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Verb;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| Some(s.iter().map(|x| x.to_string()).collect());
        PolicyRule {
            verbs: verbs.iter().map(|x| x.to_string()).collect(),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: if names.is_empty() { None } else { v(names) },
            non_resource_urls: None,
        }
    }

    fn req<'a>(verb: Verb, group: &'a str, res: &'a str, sub: Option<&'a str>) -> Attributes<'a> {
        Attributes {
            verb: Some(verb),
            group,
            resource: res,
            subresource: sub,
            ..Default::default()
        }
    }

    fn ok(a: &Attributes<'_>, r: &PolicyRule) -> bool {
        allows(a, a.verb.map(Verb::as_str), r)
    }

    #[test]
    fn verbs_groups_resources() {
        let r = rule(&["get", "list"], &[""], &["pods"], &[]);
        assert!(ok(&req(Verb::Get, "", "pods", None), &r));
        assert!(ok(&req(Verb::List, "", "pods", None), &r));
        assert!(!ok(&req(Verb::Delete, "", "pods", None), &r));
        assert!(!ok(&req(Verb::Get, "apps", "pods", None), &r));
        assert!(!ok(&req(Verb::Get, "", "secrets", None), &r));
        // A subresource is its own resource.
        assert!(!ok(&req(Verb::Get, "", "pods", Some("log")), &r));
        let star = rule(&["*"], &["*"], &["*"], &[]);
        assert!(ok(
            &req(Verb::Escalate, "rbac.authorization.k8s.io", "roles", None),
            &star
        ));
        assert!(ok(&req(Verb::Get, "", "pods", Some("log")), &star));
        // An unknown verb matches only `*`.
        assert!(allows(&req(Verb::Get, "", "pods", None), None, &star));
        assert!(!allows(&req(Verb::Get, "", "pods", None), None, &r));
    }

    #[test]
    fn subresources() {
        let log = rule(&["get"], &[""], &["pods/log"], &[]);
        assert!(ok(&req(Verb::Get, "", "pods", Some("log")), &log));
        assert!(!ok(&req(Verb::Get, "", "pods", None), &log));
        let any_status = rule(&["update"], &["*"], &["*/status"], &[]);
        assert!(ok(
            &req(Verb::Update, "apps", "deployments", Some("status")),
            &any_status
        ));
        assert!(!ok(
            &req(Verb::Update, "apps", "deployments", Some("scale")),
            &any_status
        ));
        assert!(!ok(
            &req(Verb::Update, "apps", "deployments", None),
            &any_status
        ));
    }

    #[test]
    fn resource_names() {
        let r = rule(&["get", "list"], &[""], &["configmaps"], &["a"]);
        let mut a = req(Verb::Get, "", "configmaps", None);
        a.name = Some("a");
        assert!(ok(&a, &r));
        a.name = Some("b");
        assert!(!ok(&a, &r));
        // A list names nothing: a named rule does not cover it.
        assert!(!ok(&req(Verb::List, "", "configmaps", None), &r));
    }

    #[test]
    fn non_resource_urls() {
        let r = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/apis/*".into(), "/version".into()]),
            ..Default::default()
        };
        let at = |p: &'static str| Attributes {
            verb: Some(Verb::Get),
            path: Some(p),
            ..Default::default()
        };
        assert!(ok(&at("/version"), &r));
        assert!(ok(&at("/apis/apps/v1"), &r));
        assert!(ok(&at("/apis/"), &r));
        assert!(!ok(&at("/apis"), &r));
        assert!(!ok(&at("/version/x"), &r));
        assert!(!ok(&at("/api"), &r));
        // A resource rule never allows a URL, nor a URL rule a resource.
        assert!(!ok(&at("/api"), &rule(&["*"], &["*"], &["*"], &[])));
        assert!(!ok(&req(Verb::Get, "", "pods", None), &r));
    }

    #[test]
    fn subjects() {
        let u = User {
            name: "system:serviceaccount:ns1:sa".into(),
            groups: vec!["system:serviceaccounts".into(), "dev".into()],
            uid: None,
        };
        let s = |kind: &str, name: &str, ns: Option<&str>| Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(String::from),
            api_group: None,
        };
        assert!(applies_to(&u, &s("Group", "dev", None), ""));
        assert!(!applies_to(&u, &s("Group", "ops", None), ""));
        assert!(applies_to(
            &u,
            &s("User", "system:serviceaccount:ns1:sa", None),
            ""
        ));
        assert!(applies_to(&u, &s("ServiceAccount", "sa", Some("ns1")), ""));
        assert!(!applies_to(&u, &s("ServiceAccount", "sa", Some("ns2")), ""));
        // The binding's namespace stands in for a missing one.
        assert!(applies_to(&u, &s("ServiceAccount", "sa", None), "ns1"));
        assert!(!applies_to(&u, &s("ServiceAccount", "sa", None), ""));
        assert!(!applies_to(&u, &s("Robot", "sa", None), "ns1"));
    }
}
