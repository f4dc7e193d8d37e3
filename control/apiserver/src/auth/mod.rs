//! Who is calling (`User`, set by authentication into request extensions)
//! and whether they may (`Authorizer`). The API server asks the authorizer
//! before every verb; it never looks at certificates or tokens itself.

pub mod authorizer;
pub mod bearer;
pub mod impersonate;
pub mod node;
pub mod pod_refs;
pub mod rbac;
pub mod service_account;
pub mod token_file;
pub mod x509;

pub use authorizer::ClusterAuthorizer;

/// Members may do everything (Kubernetes' superuser group).
pub const MASTERS_GROUP: &str = "system:masters";
/// Every authenticated user is in this group as well, as in Kubernetes.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// Members may read (get, list, watch) everything: for dashboards and
/// monitoring without write access. A Capstan group, not a Kubernetes one.
pub const READERS_GROUP: &str = "capstan:readers";
/// The group every node's credentials carry, as in Kubernetes.
pub const NODES_GROUP: &str = "system:nodes";
/// Node user names are `system:node:<nodeName>`.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    /// A stable id where the credential carries one (the token file's uid
    /// column); certificates have none, as in Kubernetes.
    pub uid: Option<String>,
}

impl User {
    /// The node this user acts for, when it is a node's identity.
    pub fn node_name(&self) -> Option<&str> {
        if self.groups.iter().any(|g| g == NODES_GROUP) {
            self.name.strip_prefix(NODE_USER_PREFIX)
        } else {
            None
        }
    }
}

/// The API verbs, named as Kubernetes' authorizers name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
    /// RBAC: create a binding to a role without holding its rules.
    Bind,
    /// RBAC: create or update a role with rules one does not hold.
    Escalate,
    /// Act as another user, group or service account (`kubectl --as`).
    Impersonate,
    /// Use a named object (PodSecurityPolicy-era; kept for rules that say it).
    Use,
    /// Approve a CertificateSigningRequest.
    Approve,
    /// Sign a CertificateSigningRequest.
    Sign,
    /// Proxy to a node, pod or service.
    Proxy,
}

/// Every verb, for parsing the names reviews and rules carry.
pub const ALL_VERBS: &[Verb] = &[
    Verb::Get,
    Verb::List,
    Verb::Watch,
    Verb::Create,
    Verb::Update,
    Verb::Patch,
    Verb::Delete,
    Verb::DeleteCollection,
    Verb::Bind,
    Verb::Escalate,
    Verb::Impersonate,
    Verb::Use,
    Verb::Approve,
    Verb::Sign,
    Verb::Proxy,
];

impl Verb {
    /// get, list and watch: the verbs that change nothing.
    pub fn is_read(self) -> bool {
        matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }

    /// The lower-case name Kubernetes uses in messages and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Bind => "bind",
            Verb::Escalate => "escalate",
            Verb::Impersonate => "impersonate",
            Verb::Use => "use",
            Verb::Approve => "approve",
            Verb::Sign => "sign",
            Verb::Proxy => "proxy",
        }
    }

    /// The verb Kubernetes names `name`, if the server knows it.
    pub fn parse(name: &str) -> Option<Verb> {
        ALL_VERBS.iter().copied().find(|v| v.as_str() == name)
    }
}

/// What a request wants to do, as the authorizer sees it.
#[derive(Clone, Debug, Default)]
pub struct Attributes<'a> {
    pub verb: Option<Verb>,
    /// API group ("" for the core group).
    pub group: &'a str,
    /// Plural resource name, e.g. "pods".
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    /// The object's name: from the path, or for a create from the body's
    /// `metadata.name` (the node authorizer needs it to let a node create
    /// its own Node and Lease but no other).
    pub name: Option<&'a str>,
    /// For a request on an existing pod (or a pod being created), the node
    /// it is bound to: the API server fills it from storage (or the body) so
    /// the node authorizer can say whether this pod is the caller's.
    pub pod_node_name: Option<&'a str>,
    /// For a node's read of a secret or configmap: whether a pod bound to
    /// that node references the named object. The API server looks it up
    /// (only when `uses_node_relation` says the decision depends on it).
    pub node_related: bool,
    /// For a non-resource request (`/api`, `/version`, `/openapi/v3`): the
    /// URL path. `None` for a resource request.
    pub path: Option<&'a str>,
}

impl Attributes<'_> {
    /// A request on a resource (not a plain URL such as `/api`).
    pub fn is_resource_request(&self) -> bool {
        self.path.is_none()
    }
}

/// The answer of an authorizer; the reason goes into the 403 `Status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
}

pub trait Authorizer: Send + Sync {
    fn authorize(&self, user: &User, attrs: &Attributes<'_>) -> Decision;

    /// Whether a decision for `user` on an existing pod may depend on
    /// `pod_node_name`: the API server reads the pod from storage for it
    /// only then (one etcd read per request otherwise wasted).
    fn uses_pod_node(&self, _user: &User, _attrs: &Attributes<'_>) -> bool {
        true
    }

    /// Whether the decision depends on `node_related`: the API server then
    /// reads the node's pods (one etcd range read) to fill it.
    fn uses_node_relation(&self, _user: &User, _attrs: &Attributes<'_>) -> bool {
        false
    }
}

/// Lets everything through: for in-process tests of the REST layer only.
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _user: &User, _attrs: &Attributes<'_>) -> Decision {
        Decision::Allow
    }

    fn uses_pod_node(&self, _user: &User, _attrs: &Attributes<'_>) -> bool {
        false
    }
}
