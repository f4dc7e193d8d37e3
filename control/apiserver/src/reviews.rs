//! The create-only, never-stored review resources `kubectl auth can-i` and
//! `kubectl auth whoami` post: SelfSubjectAccessReview, SelfSubjectRulesReview
//! (authorization.k8s.io/v1) and SelfSubjectReview (authentication.k8s.io/v1);
//! the reviews about someone else, SubjectAccessReview and
//! LocalSubjectAccessReview (`subject_review`), and TokenReview
//! (`token_review.rs`), which the authorizer must allow first.
//! An access review is answered by the server's own `Authorizer`, the same
//! call every request goes through, so the answer cannot drift from what
//! the request itself would get.

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, SelfSubjectReviewStatus, UserInfo};
use k8s_openapi::api::authorization::v1::{
    NonResourceRule, ResourceAttributes, ResourceRule, SelfSubjectAccessReview,
    SelfSubjectAccessReviewSpec, SelfSubjectRulesReview, SubjectAccessReviewStatus,
    SubjectRulesReviewStatus,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::handlers::{node_refs, pod_node};
use super::status::{ApiError, Cause, Subject};
use super::ApiServer;
use crate::auth::{
    Attributes, Authorizer, Decision, User, Verb, AUTHENTICATED_GROUP, MASTERS_GROUP,
};

/// One review resource, for routing and discovery.
pub struct Review {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
}

pub const REVIEWS: &[Review] = &[
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        kind: "SelfSubjectAccessReview",
    },
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectrulesreviews",
        singular: "selfsubjectrulesreview",
        kind: "SelfSubjectRulesReview",
    },
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "subjectaccessreviews",
        singular: "subjectaccessreview",
        kind: "SubjectAccessReview",
    },
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "localsubjectaccessreviews",
        singular: "localsubjectaccessreview",
        kind: "LocalSubjectAccessReview",
    },
    Review {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        kind: "SelfSubjectReview",
    },
    Review {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "tokenreviews",
        singular: "tokenreview",
        kind: "TokenReview",
    },
];

impl Review {
    /// LocalSubjectAccessReview is posted into a namespace; the rest are
    /// cluster-scoped.
    pub fn namespaced(&self) -> bool {
        self.kind == "LocalSubjectAccessReview"
    }
}

/// The review a path names, when it is one (`/apis/<g>/<v>/<plural>`, or
/// `.../namespaces/<ns>/<plural>` for a namespaced one; reviews have no
/// names).
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Review> {
    REVIEWS
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The groups only reviews live in, for `/apis`.
pub fn groups() -> Vec<&'static str> {
    let mut g: Vec<&str> = REVIEWS.iter().map(|r| r.group).collect();
    g.dedup();
    g
}

pub fn in_group_version(group: &str, version: &str) -> Vec<&'static Review> {
    REVIEWS
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

pub(crate) fn decode<T: DeserializeOwned>(r: &Review, body: Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "error decoding the request body as {}: {e}",
            r.kind
        ))
    })
}

pub(crate) fn invalid(r: &Review, cause: Cause) -> ApiError {
    ApiError::Invalid {
        subject: Subject {
            group: r.group.into(),
            kind: r.kind.into(),
            name: String::new(),
        },
        causes: vec![cause],
    }
}

fn verb_named(v: &str) -> Option<Verb> {
    Verb::parse(v)
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// What a review's resource attributes ask, as the authorizer sees a request.
pub(crate) fn attributes(ra: &ResourceAttributes) -> Attributes<'_> {
    Attributes {
        // A verb the server does not have (`use`, `*`) is asked as no
        // verb: only rules that allow everything let it through.
        verb: verb_named(ra.verb.as_deref().unwrap_or_default()),
        group: ra.group.as_deref().unwrap_or_default(),
        resource: ra.resource.as_deref().unwrap_or_default(),
        subresource: nonempty(&ra.subresource),
        namespace: nonempty(&ra.namespace),
        name: nonempty(&ra.name),
        pod_node_name: None,
        node_related: false,
        path: None,
    }
}

/// The decision for a review's spec: the authorizer's own, given the pod's
/// node when the question is about an existing pod. `Err` when the spec
/// names neither resource nor non-resource attributes (or both).
pub(crate) fn decide(
    z: &dyn Authorizer,
    user: &User,
    spec: &SelfSubjectAccessReviewSpec,
    pod_node: Option<&str>,
    node_related: bool,
) -> Result<Decision, Cause> {
    match (&spec.resource_attributes, &spec.non_resource_attributes) {
        (Some(ra), None) => {
            let mut attrs = attributes(ra);
            attrs.pod_node_name = pod_node;
            attrs.node_related = node_related;
            Ok(z.authorize(user, &attrs))
        }
        (None, Some(nra)) => {
            let path = nra.path.as_deref().unwrap_or_default();
            let attrs = Attributes {
                verb: verb_named(nra.verb.as_deref().unwrap_or_default()),
                path: Some(path),
                ..Default::default()
            };
            Ok(z.authorize(user, &attrs))
        }
        _ => Err(Cause::invalid(
            "spec.resourceAttributes",
            "",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

/// As for a real request, a node's answer about an existing pod depends on
/// the pod's node.
async fn pod_node(
    api: &ApiServer,
    user: &User,
    spec: &SelfSubjectAccessReviewSpec,
) -> Option<String> {
    let ra = spec.resource_attributes.as_ref()?;
    pod_node::for_attributes(api, user, &attributes(ra)).await
}

/// As for a real request, a node may read a secret or configmap only when
/// one of its pods references it.
async fn node_related(
    api: &ApiServer,
    user: &User,
    spec: &SelfSubjectAccessReviewSpec,
) -> Result<bool, ApiError> {
    match spec.resource_attributes.as_ref() {
        Some(ra) => node_refs::for_attributes(api, user, &attributes(ra)).await,
        None => Ok(false),
    }
}

fn with_decision(mut rev: SelfSubjectAccessReview, d: Decision) -> SelfSubjectAccessReview {
    rev.status = Some(status_of(d));
    rev
}

/// The status every access review answers with.
pub(crate) fn status_of(d: Decision) -> SubjectAccessReviewStatus {
    match d {
        Decision::Allow => SubjectAccessReviewStatus {
            allowed: true,
            ..Default::default()
        },
        Decision::Deny(reason) => SubjectAccessReviewStatus {
            allowed: false,
            reason: Some(reason).filter(|r| !r.is_empty()),
            ..Default::default()
        },
    }
}

pub(crate) async fn access(
    api: &ApiServer,
    r: &Review,
    user: &User,
    rev: SelfSubjectAccessReview,
) -> Result<SelfSubjectAccessReview, ApiError> {
    let node = pod_node(api, user, &rev.spec).await;
    let related = node_related(api, user, &rev.spec).await?;
    let d = decide(&*api.authorizer, user, &rev.spec, node.as_deref(), related)
        .map_err(|c| invalid(r, c))?;
    Ok(with_decision(rev, d))
}

/// The rules a user has, as far as they can be listed: the superuser's are
/// everything; anyone else's are their RBAC rules in the asked namespace.
/// A node's own rules depend on the object (its own Node, pods bound to
/// it), which a rule list cannot say, so a node's list is marked
/// incomplete, as Kubernetes answers for its node authorizer.
pub(crate) fn rules(
    policy: &crate::auth::rbac::Policy,
    user: &User,
    mut rev: SelfSubjectRulesReview,
) -> SelfSubjectRulesReview {
    let all = || vec!["*".to_string()];
    let status = if user.groups.iter().any(|g| g == MASTERS_GROUP) {
        SubjectRulesReviewStatus {
            resource_rules: vec![ResourceRule {
                verbs: all(),
                api_groups: Some(all()),
                resources: Some(all()),
                resource_names: None,
            }],
            non_resource_rules: vec![NonResourceRule {
                verbs: all(),
                non_resource_urls: Some(all()),
            }],
            incomplete: false,
            evaluation_error: None,
        }
    } else {
        let ns = rev.spec.namespace.as_deref().filter(|n| !n.is_empty());
        let (resource_rules, non_resource_rules, mut errors) =
            crate::auth::rbac::rules_review(policy, user, ns);
        if user.node_name().is_some() {
            errors.insert(
                0,
                "node rules are decided per object; ask with a SelfSubjectAccessReview".into(),
            );
        }
        SubjectRulesReviewStatus {
            resource_rules,
            non_resource_rules,
            incomplete: !errors.is_empty(),
            evaluation_error: (!errors.is_empty()).then(|| errors.join(", ")),
        }
    };
    rev.status = Some(status);
    rev
}

pub(crate) fn whoami(user: &User, mut rev: SelfSubjectReview) -> SelfSubjectReview {
    let mut groups = user.groups.clone();
    if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        groups.push(AUTHENTICATED_GROUP.into());
    }
    rev.status = Some(SelfSubjectReviewStatus {
        user_info: Some(UserInfo {
            username: Some(user.name.clone()),
            groups: Some(groups),
            uid: user.uid.clone(),
            extra: None,
        }),
    });
    rev
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ClusterAuthorizer, NODES_GROUP};
    use serde_json::json;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            uid: None,
        }
    }

    fn spec(v: Value) -> SelfSubjectAccessReviewSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn access_uses_the_authorizer() {
        let z = ClusterAuthorizer::fixed();
        let admin = user("admin", &[MASTERS_GROUP]);
        let n1 = user("system:node:n1", &[NODES_GROUP]);
        let create_pods = spec(
            json!({"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}}),
        );
        assert_eq!(
            decide(&z, &admin, &create_pods, None, false),
            Ok(Decision::Allow)
        );
        assert!(matches!(
            decide(&z, &n1, &create_pods, None, false),
            Ok(Decision::Deny(_))
        ));
        let node = |name: &str| {
            spec(
                json!({"resourceAttributes": {"verb": "update", "resource": "nodes", "name": name}}),
            )
        };
        assert_eq!(
            decide(&z, &n1, &node("n1"), None, false),
            Ok(Decision::Allow)
        );
        match decide(&z, &n1, &node("n2"), None, false) {
            Ok(Decision::Deny(m)) => assert!(m.contains("cannot modify node 'n2'"), "{m}"),
            other => panic!("{other:?}"),
        }
        // The pod's node decides a node's pod status write, as on a request.
        let status = spec(
            json!({"resourceAttributes": {"verb": "patch", "resource": "pods", "subresource": "status", "name": "p", "namespace": "default"}}),
        );
        assert_eq!(
            decide(&z, &n1, &status, Some("n1"), false),
            Ok(Decision::Allow)
        );
        assert!(matches!(
            decide(&z, &n1, &status, Some("n2"), false),
            Ok(Decision::Deny(_))
        ));
        // A verb the server lacks: only the superuser gets a yes.
        let star =
            spec(json!({"resourceAttributes": {"verb": "*", "resource": "*", "group": "*"}}));
        assert_eq!(decide(&z, &admin, &star, None, false), Ok(Decision::Allow));
        assert!(matches!(
            decide(&z, &n1, &star, None, false),
            Ok(Decision::Deny(_))
        ));
    }

    #[test]
    fn access_spec_needs_exactly_one_kind() {
        let z = ClusterAuthorizer::fixed();
        let admin = user("admin", &[MASTERS_GROUP]);
        assert!(decide(&z, &admin, &spec(json!({})), None, false).is_err());
        let both = spec(
            json!({"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"verb": "get", "path": "/x"}}),
        );
        assert!(decide(&z, &admin, &both, None, false).is_err());
        let url = spec(json!({"nonResourceAttributes": {"verb": "get", "path": "/metrics"}}));
        assert_eq!(decide(&z, &admin, &url, None, false), Ok(Decision::Allow));
    }

    #[test]
    fn status_carries_allowed_and_reason() {
        let rev = SelfSubjectAccessReview::default();
        let yes = with_decision(rev.clone(), Decision::Allow).status.unwrap();
        assert!(yes.allowed && yes.reason.is_none());
        let no = with_decision(rev, Decision::Deny("why".into()))
            .status
            .unwrap();
        assert!(!no.allowed);
        assert_eq!(no.reason.as_deref(), Some("why"));
    }

    #[test]
    fn whoami_adds_authenticated() {
        let u = user("system:node:n1", &[NODES_GROUP]);
        let info = whoami(&u, SelfSubjectReview::default())
            .status
            .and_then(|s| s.user_info)
            .unwrap();
        assert_eq!(info.username.as_deref(), Some("system:node:n1"));
        assert_eq!(
            info.groups.unwrap(),
            vec![NODES_GROUP.to_string(), AUTHENTICATED_GROUP.to_string()]
        );
    }

    #[test]
    fn whoami_reports_a_uid_when_the_credential_has_one() {
        let mut u = user("alice", &[]);
        u.uid = Some("42".into());
        let info = whoami(&u, SelfSubjectReview::default())
            .status
            .and_then(|s| s.user_info)
            .unwrap();
        assert_eq!(info.uid.as_deref(), Some("42"));
    }

    #[test]
    fn rules_everything_for_admin_incomplete_otherwise() {
        let p = crate::auth::rbac::Policy::new();
        let admin = rules(&p, &user("admin", &[MASTERS_GROUP]), Default::default())
            .status
            .unwrap();
        assert!(!admin.incomplete);
        assert_eq!(admin.resource_rules[0].verbs, vec!["*".to_string()]);
        let n = rules(
            &p,
            &user("system:node:n1", &[NODES_GROUP]),
            Default::default(),
        )
        .status
        .unwrap();
        assert!(n.incomplete && n.resource_rules.is_empty());
    }

    #[test]
    fn malformed_body_is_bad_request() {
        let r = find("authorization.k8s.io", "v1", "selfsubjectaccessreviews").unwrap();
        let e = decode::<SelfSubjectAccessReview>(r, json!({"spec": "nope"}));
        assert!(matches!(e, Err(ApiError::BadRequest(_))));
        assert!(find("authorization.k8s.io", "v1", "pods").is_none());
    }
}
