//! The RBAC objects in memory: roles, cluster roles and both kinds of
//! bindings, kept current by `feed` from the API server's own etcd watch,
//! so an authorization reads memory only. Kubernetes' rule resolver
//! (`VisitRulesFor`, `GetRoleReferenceRules`) over this index.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use serde_json::Value;

use super::rule;
use crate::auth::User;

/// The four kinds the index holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Role,
        Kind::ClusterRole,
        Kind::RoleBinding,
        Kind::ClusterRoleBinding,
    ];

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Role => "roles",
            Kind::ClusterRole => "clusterroles",
            Kind::RoleBinding => "rolebindings",
            Kind::ClusterRoleBinding => "clusterrolebindings",
        }
    }

    pub fn namespaced(self) -> bool {
        matches!(self, Kind::Role | Kind::RoleBinding)
    }
}

/// A cluster role as the index keeps it: its rules, labels (what an
/// aggregation rule selects) and aggregation rule (kept as JSON).
#[derive(Clone, Debug, Default)]
pub struct ClusterRoleEntry {
    pub rules: Arc<Vec<PolicyRule>>,
    pub labels: Option<Value>,
    pub aggregation: Option<Value>,
}

#[derive(Clone, Debug)]
pub struct Binding {
    pub role_ref: RoleRef,
    pub subjects: Vec<Subject>,
}

/// Where a rule came from, for messages and `can-i --list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub binding_kind: Kind,
    pub binding: String,
    pub namespace: Option<String>,
    pub role_ref: String,
}

#[derive(Default)]
pub struct Index {
    roles: HashMap<String, HashMap<String, Arc<Vec<PolicyRule>>>>,
    cluster_roles: HashMap<String, ClusterRoleEntry>,
    role_bindings: HashMap<String, HashMap<String, Binding>>,
    cluster_role_bindings: HashMap<String, Binding>,
}

/// Why a role reference gave no rules (Kubernetes' resolution errors).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("role.rbac.authorization.k8s.io \"{0}\" not found")]
    RoleNotFound(String),
    #[error("clusterrole.rbac.authorization.k8s.io \"{0}\" not found")]
    ClusterRoleNotFound(String),
    #[error("unsupported role reference kind: \"{0}\"")]
    UnsupportedKind(String),
}

impl Index {
    pub fn cluster_roles(&self) -> &HashMap<String, ClusterRoleEntry> {
        &self.cluster_roles
    }

    /// The rules `role_ref` names, seen from `namespace` (a Role is looked
    /// up there; "" for a ClusterRoleBinding, which may only name
    /// ClusterRoles).
    pub fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        namespace: &str,
    ) -> Result<Arc<Vec<PolicyRule>>, ResolveError> {
        match role_ref.kind.as_str() {
            "Role" => self
                .roles
                .get(namespace)
                .and_then(|m| m.get(&role_ref.name))
                .cloned()
                .ok_or_else(|| ResolveError::RoleNotFound(role_ref.name.clone())),
            "ClusterRole" => self
                .cluster_roles
                .get(&role_ref.name)
                .map(|c| c.rules.clone())
                .ok_or_else(|| ResolveError::ClusterRoleNotFound(role_ref.name.clone())),
            other => Err(ResolveError::UnsupportedKind(other.to_string())),
        }
    }

    /// Calls `visit` with every rule `user` holds in `namespace` (cluster
    /// bindings first, then the namespace's role bindings; `None` for
    /// cluster scope only) until it returns false. Resolution errors are
    /// handed over too, as Kubernetes' visitor gets them.
    pub fn visit_rules_for(
        &self,
        user: &User,
        namespace: Option<&str>,
        visit: &mut dyn FnMut(&Source, Result<&PolicyRule, &ResolveError>) -> bool,
    ) {
        let mut bindings: Vec<(Kind, &str, &Binding, &str)> = self
            .cluster_role_bindings
            .iter()
            .map(|(n, b)| (Kind::ClusterRoleBinding, n.as_str(), b, ""))
            .collect();
        if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
            if let Some(m) = self.role_bindings.get(ns) {
                bindings.extend(
                    m.iter()
                        .map(|(n, b)| (Kind::RoleBinding, n.as_str(), b, ns)),
                );
            }
        }
        for (kind, name, b, ns) in bindings {
            if !b.subjects.iter().any(|s| rule::applies_to(user, s, ns)) {
                continue;
            }
            let source = Source {
                binding_kind: kind,
                binding: name.to_string(),
                namespace: (!ns.is_empty()).then(|| ns.to_string()),
                role_ref: format!("{}/{}", b.role_ref.kind, b.role_ref.name),
            };
            match self.role_ref_rules(&b.role_ref, ns) {
                Ok(rules) => {
                    for r in rules.iter() {
                        if !visit(&source, Ok(r)) {
                            return;
                        }
                    }
                }
                Err(e) => {
                    if !visit(&source, Err(&e)) {
                        return;
                    }
                }
            }
        }
    }

    /// Every rule `user` holds in `namespace`, and the resolution errors.
    pub fn rules_for(
        &self,
        user: &User,
        namespace: Option<&str>,
    ) -> (Vec<PolicyRule>, Vec<ResolveError>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.visit_rules_for(user, namespace, &mut |_, r| {
            match r {
                Ok(r) => rules.push(r.clone()),
                Err(e) => errors.push(e.clone()),
            }
            true
        });
        (rules, errors)
    }

    /// Stores the object `value` of `kind` (a put seen in etcd). A value
    /// that does not decode is dropped: the API server validated what it
    /// wrote, so only a foreign writer could have put it there.
    pub fn put(&mut self, kind: Kind, value: &Value) {
        let ns = value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let decoded = match kind {
            Kind::Role => serde_json::from_value::<Role>(value.clone()).map(|r| {
                self.roles
                    .entry(ns.clone())
                    .or_default()
                    .insert(name.clone(), Arc::new(r.rules.unwrap_or_default()));
            }),
            Kind::ClusterRole => serde_json::from_value::<ClusterRole>(value.clone()).map(|r| {
                let entry = ClusterRoleEntry {
                    rules: Arc::new(r.rules.unwrap_or_default()),
                    labels: value.pointer("/metadata/labels").cloned(),
                    aggregation: value.get("aggregationRule").cloned(),
                };
                self.cluster_roles.insert(name.clone(), entry);
            }),
            Kind::RoleBinding => serde_json::from_value::<RoleBinding>(value.clone()).map(|b| {
                let binding = Binding {
                    role_ref: b.role_ref,
                    subjects: b.subjects.unwrap_or_default(),
                };
                self.role_bindings
                    .entry(ns.clone())
                    .or_default()
                    .insert(name.clone(), binding);
            }),
            Kind::ClusterRoleBinding => serde_json::from_value::<ClusterRoleBinding>(value.clone())
                .map(|b| {
                    let binding = Binding {
                        role_ref: b.role_ref,
                        subjects: b.subjects.unwrap_or_default(),
                    };
                    self.cluster_role_bindings.insert(name.clone(), binding);
                }),
        };
        if let Err(e) = decoded {
            tracing::warn!(kind = kind.plural(), %ns, %name, error = %e, "RBAC object does not decode; ignored");
            self.delete(kind, &ns, &name);
        }
    }

    pub fn delete(&mut self, kind: Kind, ns: &str, name: &str) {
        match kind {
            Kind::Role => {
                if let Some(m) = self.roles.get_mut(ns) {
                    m.remove(name);
                }
            }
            Kind::ClusterRole => {
                self.cluster_roles.remove(name);
            }
            Kind::RoleBinding => {
                if let Some(m) = self.role_bindings.get_mut(ns) {
                    m.remove(name);
                }
            }
            Kind::ClusterRoleBinding => {
                self.cluster_role_bindings.remove(name);
            }
        }
    }

    /// Forgets every object of `kind` (before a re-list).
    pub fn clear(&mut self, kind: Kind) {
        match kind {
            Kind::Role => self.roles.clear(),
            Kind::ClusterRole => self.cluster_roles.clear(),
            Kind::RoleBinding => self.role_bindings.clear(),
            Kind::ClusterRoleBinding => self.cluster_role_bindings.clear(),
        }
    }
}

/// The index behind a lock, and whether each kind's first list arrived.
#[derive(Default)]
pub struct Policy {
    index: RwLock<Index>,
    synced: RwLock<Vec<Kind>>,
    changed: tokio::sync::Notify,
}

impl Policy {
    pub fn new() -> Arc<Self> {
        Arc::new(Policy::default())
    }

    /// A read view; hold it only for the length of one decision.
    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the index (the feed, and tests).
    pub fn update<T>(&self, f: impl FnOnce(&mut Index) -> T) -> T {
        let out = {
            let mut g = self.index.write().unwrap_or_else(|e| e.into_inner());
            f(&mut g)
        };
        self.changed.notify_one();
        out
    }

    /// Replaces every object of `kind` with `items` (a list's answer).
    pub fn replace(&self, kind: Kind, items: &[Value]) {
        self.update(|ix| {
            ix.clear(kind);
            for v in items {
                ix.put(kind, v);
            }
        });
        let mut s = self.synced.write().unwrap_or_else(|e| e.into_inner());
        if !s.contains(&kind) {
            s.push(kind);
        }
    }

    /// Whether all four kinds have been listed once.
    pub fn is_synced(&self) -> bool {
        let s = self.synced.read().unwrap_or_else(|e| e.into_inner());
        Kind::ALL.iter().all(|k| s.contains(k))
    }

    /// Resolves when the index changed since the last call (aggregation).
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            uid: None,
        }
    }

    #[test]
    fn bindings_grant_in_their_scope() {
        let p = Policy::new();
        p.update(|ix| {
            ix.put(Kind::ClusterRole, &json!({"metadata": {"name": "view"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}));
            ix.put(Kind::Role, &json!({"metadata": {"name": "r", "namespace": "a"}, "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]}));
            ix.put(Kind::RoleBinding, &json!({"metadata": {"name": "b1", "namespace": "a"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                "subjects": [{"kind": "User", "name": "bob"}]}));
            ix.put(Kind::RoleBinding, &json!({"metadata": {"name": "b2", "namespace": "a"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "Group", "name": "dev"}]}));
            ix.put(Kind::RoleBinding, &json!({"metadata": {"name": "b3", "namespace": "a"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "missing"},
                "subjects": [{"kind": "User", "name": "bob"}]}));
        });
        let ix = p.read();
        let (rules, errors) = ix.rules_for(&user("bob", &["dev"]), Some("a"));
        assert_eq!(rules.len(), 2);
        assert_eq!(errors, vec![ResolveError::RoleNotFound("missing".into())]);
        // Outside the namespace, and at cluster scope, nothing.
        assert!(ix.rules_for(&user("bob", &["dev"]), Some("b")).0.is_empty());
        assert!(ix.rules_for(&user("bob", &["dev"]), None).0.is_empty());
        drop(ix);
        p.update(|ix| ix.delete(Kind::RoleBinding, "a", "b1"));
        assert_eq!(
            p.read()
                .rules_for(&user("bob", &["dev"]), Some("a"))
                .0
                .len(),
            1
        );
    }

    #[test]
    fn replace_marks_synced_and_drops_what_is_gone() {
        let p = Policy::new();
        p.update(|ix| ix.put(Kind::ClusterRole, &json!({"metadata": {"name": "old"}})));
        for k in Kind::ALL {
            assert!(!p.is_synced());
            p.replace(k, &[]);
        }
        assert!(p.is_synced());
        assert!(p.read().cluster_roles().is_empty());
    }
}
