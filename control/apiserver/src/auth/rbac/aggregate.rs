//! ClusterRole aggregation, as Kubernetes' clusterrole-aggregation
//! controller: a ClusterRole with an `aggregationRule` holds the rules of
//! every other ClusterRole its selectors match (in name order, each rule
//! once). Runs in the API server on the policy index; writes only when the
//! stored rules differ, so its own write settles it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{json, Value};

use super::escalation::GROUP;
use super::policy::ClusterRoleEntry;
use crate::resources;
use crate::rest::{self, Change};
use crate::selectors::LabelSelector;
use crate::ApiServer;

/// The rules `name` (with aggregation rule `agg`) should hold.
pub fn aggregated_rules(
    roles: &HashMap<String, ClusterRoleEntry>,
    name: &str,
    agg: &Value,
) -> Vec<PolicyRule> {
    let selectors: Vec<LabelSelector> = agg
        .get("clusterRoleSelectors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| LabelSelector::from_object(s).ok())
        .collect();
    let matching: BTreeMap<&String, &ClusterRoleEntry> = roles
        .iter()
        .filter(|(n, c)| {
            n.as_str() != name && selectors.iter().any(|s| s.matches(c.labels.as_ref()))
        })
        .collect();
    let mut out: Vec<PolicyRule> = Vec::new();
    for c in matching.values() {
        for r in c.rules.iter() {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
    }
    out
}

/// What needs writing now: (name, rules) of every aggregating ClusterRole
/// whose stored rules differ from the aggregate.
fn pending(roles: &HashMap<String, ClusterRoleEntry>) -> Vec<(String, Vec<PolicyRule>)> {
    roles
        .iter()
        .filter_map(|(name, c)| {
            let agg = c.aggregation.as_ref().filter(|a| !a.is_null())?;
            let want = aggregated_rules(roles, name, agg);
            (*c.rules != want).then(|| (name.clone(), want))
        })
        .collect()
}

/// For the life of the process: after every policy change, write the
/// aggregates that moved.
pub async fn run(api: Arc<ApiServer>) {
    let Some(res) = resources::find(GROUP, "v1", "clusterroles") else {
        return;
    };
    loop {
        api.rbac.changed().await;
        if !api.rbac.is_synced() {
            continue;
        }
        let todo = pending(api.rbac.read().cluster_roles());
        for (name, rules) in todo {
            let rules_json = json!(rules);
            let f = move |cur: &Value| {
                let mut v = cur.clone();
                v["rules"] = rules_json.clone();
                Ok(v)
            };
            let change = Change::Compute {
                f: Box::new(f),
                precondition: None,
            };
            match rest::update(&api, res, None, &name, None, change).await {
                Ok(_) => tracing::debug!(clusterrole = %name, "aggregated rules updated"),
                Err(e) => {
                    tracing::warn!(clusterrole = %name, error = %e, "aggregating rules failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::rbac::policy::{Index, Kind};

    #[test]
    fn aggregates_labelled_roles_once_in_name_order() {
        let mut ix = Index::default();
        ix.put(
            Kind::ClusterRole,
            &json!({"metadata": {"name": "agg"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"to-agg": "true"}}]}}),
        );
        ix.put(
            Kind::ClusterRole,
            &json!({"metadata": {"name": "b", "labels": {"to-agg": "true"}},
            "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]},
                      {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}),
        );
        ix.put(
            Kind::ClusterRole,
            &json!({"metadata": {"name": "a", "labels": {"to-agg": "true"}},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}),
        );
        ix.put(
            Kind::ClusterRole,
            &json!({"metadata": {"name": "c", "labels": {"other": "true"}},
            "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}),
        );
        let p = pending(ix.cluster_roles());
        assert_eq!(p.len(), 1);
        let (name, rules) = &p[0];
        assert_eq!(name, "agg");
        let verbs: Vec<&str> = rules.iter().map(|r| r.verbs[0].as_str()).collect();
        assert_eq!(verbs, ["get", "list"]);
        // Once written, nothing is pending.
        let mut stored = json!({"metadata": {"name": "agg"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"to-agg": "true"}}]}});
        stored["rules"] = json!(rules);
        ix.put(Kind::ClusterRole, &stored);
        assert!(pending(ix.cluster_roles()).is_empty());
    }
}
