//! The strategies of rbac.authorization.k8s.io/v1 Role, ClusterRole,
//! RoleBinding and ClusterRoleBinding, after Kubernetes'
//! pkg/apis/rbac/validation and v1 defaults: names are path segments
//! (`system:masters` is a valid name), rules need verbs and either
//! apiGroups+resources or nonResourceURLs (never in a Role), a binding's
//! roleRef names a Role or ClusterRole of this group and never changes,
//! subjects are Users, Groups or ServiceAccounts. Escalation checks are
//! not here: they need the caller (`auth::rbac::escalation`).

use serde_json::{json, Value};

use super::strategy::Strategy;
use super::validation;
use crate::auth::rbac::escalation::GROUP;
use crate::status::Cause;

/// Which RBAC kind a strategy is for.
#[derive(Clone, Copy)]
pub struct RbacStrategy {
    /// Role and RoleBinding are namespaced.
    namespaced: bool,
    binding: bool,
}

impl RbacStrategy {
    pub const ROLE: RbacStrategy = RbacStrategy {
        namespaced: true,
        binding: false,
    };
    pub const CLUSTER_ROLE: RbacStrategy = RbacStrategy {
        namespaced: false,
        binding: false,
    };
    pub const ROLE_BINDING: RbacStrategy = RbacStrategy {
        namespaced: true,
        binding: true,
    };
    pub const CLUSTER_ROLE_BINDING: RbacStrategy = RbacStrategy {
        namespaced: false,
        binding: true,
    };
}

/// The plurals of the RBAC kinds (their names are validated as path
/// segments, not DNS subdomains).
pub fn is_rbac_plural(plural: &str) -> bool {
    matches!(
        plural,
        "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings"
    )
}

/// Kubernetes' `ValidateRBACName` (`path.IsValidPathSegmentName`).
pub fn path_segment_name(field: &str, name: &str, out: &mut Vec<Cause>) {
    if name.is_empty() {
        out.push(Cause::required(field));
    } else if name == "." || name == ".." {
        out.push(Cause::invalid(field, name, &format!("may not be '{name}'")));
    } else if let Some(c) = ["/", "%"].iter().find(|c| name.contains(*c)) {
        out.push(Cause::invalid(
            field,
            name,
            &format!("may not contain '{c}'"),
        ));
    }
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn show(v: &[&str]) -> String {
    format!("[{}]", v.join(" "))
}

fn validate_rule(rule: &Value, namespaced: bool, at: &str, out: &mut Vec<Cause>) {
    if strings(rule.get("verbs")).is_empty() {
        out.push(Cause {
            reason: "FieldValueRequired",
            field: format!("{at}.verbs"),
            message: "Required value: verbs must contain at least one value".into(),
        });
    }
    let urls = strings(rule.get("nonResourceURLs"));
    let groups = strings(rule.get("apiGroups"));
    let resources = strings(rule.get("resources"));
    if !urls.is_empty() {
        if namespaced {
            out.push(Cause::invalid(
                format!("{at}.nonResourceURLs"),
                show(&urls),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        let names = strings(rule.get("resourceNames"));
        if !groups.is_empty() || !resources.is_empty() || !names.is_empty() {
            out.push(Cause::invalid(
                format!("{at}.nonResourceURLs"),
                show(&urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if groups.is_empty() {
        out.push(Cause {
            reason: "FieldValueRequired",
            field: format!("{at}.apiGroups"),
            message: "Required value: resource rules must supply at least one api group".into(),
        });
    }
    if resources.is_empty() {
        out.push(Cause {
            reason: "FieldValueRequired",
            field: format!("{at}.resources"),
            message: "Required value: resource rules must supply at least one resource".into(),
        });
    }
}

fn validate_role(obj: &Value, namespaced: bool, out: &mut Vec<Cause>) {
    if let Some(rules) = obj.get("rules").and_then(Value::as_array) {
        for (i, r) in rules.iter().enumerate() {
            validate_rule(r, namespaced, &format!("rules[{i}]"), out);
        }
    }
    if let Some(agg) = obj.get("aggregationRule").filter(|a| !a.is_null()) {
        let sels = agg
            .get("clusterRoleSelectors")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if sels.is_empty() {
            out.push(Cause {
                reason: "FieldValueRequired",
                field: "aggregationRule.clusterRoleSelectors".into(),
                message: "Required value: at least one clusterRoleSelector required if aggregationRule is non-nil".into(),
            });
        }
        for (i, s) in sels.iter().enumerate() {
            if crate::selectors::LabelSelector::from_object(s).is_err() {
                out.push(Cause::invalid(
                    format!("aggregationRule.clusterRoleSelectors[{i}]"),
                    s,
                    "invalid label selector.",
                ));
            }
        }
    }
}

/// Kubernetes' `ValidateServiceAccountName`: a DNS-1123 subdomain.
fn validate_subject(s: &Value, namespaced: bool, at: &str, out: &mut Vec<Cause>) {
    let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
    let kind = s.get("kind").and_then(Value::as_str).unwrap_or_default();
    let group = s
        .get("apiGroup")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ns = s
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        out.push(Cause::required(format!("{at}.name")));
    }
    match kind {
        "ServiceAccount" => {
            if !name.is_empty() {
                validation::dns1123_subdomain(&format!("{at}.name"), name, out);
            }
            if !group.is_empty() {
                out.push(Cause::not_supported(format!("{at}.apiGroup"), group, &[""]));
            }
            if !namespaced && ns.is_empty() {
                out.push(Cause::required(format!("{at}.namespace")));
            }
        }
        "User" | "Group" => {
            if group != GROUP {
                out.push(Cause::not_supported(
                    format!("{at}.apiGroup"),
                    group,
                    &[GROUP],
                ));
            }
        }
        other => out.push(Cause::not_supported(
            format!("{at}.kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

fn validate_binding(obj: &Value, namespaced: bool, out: &mut Vec<Cause>) {
    let rr = obj.get("roleRef").cloned().unwrap_or_else(|| json!({}));
    let group = rr
        .get("apiGroup")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if group != GROUP {
        out.push(Cause::not_supported("roleRef.apiGroup", group, &[GROUP]));
    }
    let kind = rr.get("kind").and_then(Value::as_str).unwrap_or_default();
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        out.push(Cause::not_supported("roleRef.kind", kind, kinds));
    }
    let name = rr.get("name").and_then(Value::as_str).unwrap_or_default();
    path_segment_name("roleRef.name", name, out);
    if let Some(subjects) = obj.get("subjects").and_then(Value::as_array) {
        for (i, s) in subjects.iter().enumerate() {
            validate_subject(s, namespaced, &format!("subjects[{i}]"), out);
        }
    }
}

impl Strategy for RbacStrategy {
    /// The v1 defaults: a roleRef's and a User or Group subject's apiGroup.
    fn canonicalize(&self, obj: &mut Value) {
        if !self.binding {
            return;
        }
        if let Some(rr) = obj.get_mut("roleRef").and_then(Value::as_object_mut) {
            if rr
                .get("apiGroup")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .is_empty()
            {
                rr.insert("apiGroup".into(), json!(GROUP));
            }
        }
        if let Some(subjects) = obj.get_mut("subjects").and_then(Value::as_array_mut) {
            for s in subjects.iter_mut().filter_map(Value::as_object_mut) {
                let kind = s.get("kind").and_then(Value::as_str).unwrap_or_default();
                let group = s
                    .get("apiGroup")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if matches!(kind, "User" | "Group") && group.is_empty() {
                    s.insert("apiGroup".into(), json!(GROUP));
                }
            }
        }
    }

    fn validate(&self, obj: &Value, out: &mut Vec<Cause>) {
        if self.binding {
            validate_binding(obj, self.namespaced, out);
        } else {
            validate_role(obj, self.namespaced, out);
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, out: &mut Vec<Cause>) {
        if self.binding && old.get("roleRef") != new.get("roleRef") {
            let rr = new.get("roleRef").cloned().unwrap_or(Value::Null);
            let shown = format!(
                "{{APIGroup:{} Kind:{} Name:{}}}",
                rr.get("apiGroup")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                rr.get("kind").and_then(Value::as_str).unwrap_or_default(),
                rr.get("name").and_then(Value::as_str).unwrap_or_default()
            );
            out.push(Cause::invalid("roleRef", shown, "cannot change roleRef"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn causes(s: RbacStrategy, mut obj: Value) -> Vec<String> {
        s.canonicalize(&mut obj);
        let mut out = Vec::new();
        s.validate(&obj, &mut out);
        out.into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn rules() {
        let ok = json!({"rules": [
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
        assert!(causes(RbacStrategy::CLUSTER_ROLE, ok.clone()).is_empty());
        // A Role may not name URLs.
        let c = causes(RbacStrategy::ROLE, ok);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].contains("namespaced rules cannot apply to non-resource URLs"));
        let bad = json!({"rules": [
            {"apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"], "resources": ["pods"]},
            {"verbs": ["get"], "apiGroups": [""]},
            {"verbs": ["get"], "nonResourceURLs": ["/x"], "resources": ["pods"]}]});
        let c = causes(RbacStrategy::CLUSTER_ROLE, bad);
        assert_eq!(c.len(), 4, "{c:?}");
        assert!(c[0].starts_with("rules[0].verbs: Required value"));
        assert!(c[1].starts_with("rules[1].apiGroups"));
        assert!(c[2].starts_with("rules[2].resources"));
        assert!(c[3].contains("both regular resources and non-resource URLs"));
        let agg = json!({"aggregationRule": {"clusterRoleSelectors": []}});
        assert_eq!(causes(RbacStrategy::CLUSTER_ROLE, agg).len(), 1);
    }

    #[test]
    fn bindings() {
        let ok = json!({"roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "bob"}, {"kind": "Group", "name": "dev"},
                         {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]});
        assert!(causes(RbacStrategy::CLUSTER_ROLE_BINDING, ok.clone()).is_empty());
        let mut defaulted = ok;
        RbacStrategy::ROLE_BINDING.canonicalize(&mut defaulted);
        assert_eq!(defaulted["roleRef"]["apiGroup"], GROUP);
        assert_eq!(defaulted["subjects"][0]["apiGroup"], GROUP);
        assert!(defaulted["subjects"][2].get("apiGroup").is_none());
        let role_in_crb = json!({"roleRef": {"kind": "Role", "name": "r"}});
        let c = causes(RbacStrategy::CLUSTER_ROLE_BINDING, role_in_crb.clone());
        assert_eq!(
            c,
            vec!["roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\""]
        );
        assert!(causes(RbacStrategy::ROLE_BINDING, role_in_crb).is_empty());
        let bad = json!({"roleRef": {"apiGroup": "x", "kind": "Pod", "name": ""},
            "subjects": [{"kind": "Robot", "name": "r"}, {"kind": "ServiceAccount", "name": "Bad_Name"},
                         {"kind": "User", "name": "u", "apiGroup": "wrong"}]});
        let c = causes(RbacStrategy::CLUSTER_ROLE_BINDING, bad);
        assert_eq!(c.len(), 7, "{c:?}");
        // A namespaced binding's ServiceAccount may leave its namespace out.
        let sa = json!({"roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}]});
        assert!(causes(RbacStrategy::ROLE_BINDING, sa.clone()).is_empty());
        assert_eq!(causes(RbacStrategy::CLUSTER_ROLE_BINDING, sa).len(), 2);
    }

    #[test]
    fn role_ref_is_immutable() {
        let old = json!({"roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"}});
        let new = json!({"roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "admin"}});
        let mut out = Vec::new();
        RbacStrategy::ROLE_BINDING.validate_update(&old, &new, &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].message.contains("cannot change roleRef"));
        out.clear();
        RbacStrategy::ROLE_BINDING.validate_update(&old, &old, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn names_are_path_segments() {
        let mut out = Vec::new();
        for ok in ["system:masters", "capstan", "a.b"] {
            path_segment_name("metadata.name", ok, &mut out);
        }
        assert!(out.is_empty());
        for bad in ["", ".", "..", "a/b", "a%b"] {
            path_segment_name("metadata.name", bad, &mut out);
        }
        assert_eq!(out.len(), 5);
    }
}
