//! Escalation arithmetic, after Kubernetes' `Covers`, `BreakdownRule`,
//! `CompactRules` and `CompactString` (pkg/registry/rbac/validation): a set
//! of owner rules covers a rule when every one-verb, one-resource,
//! one-name piece of it is allowed by a single owner rule. Pure functions.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::rule::ALL;

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or_default()
}

fn one(s: &str) -> Option<Vec<String>> {
    Some(vec![s.to_string()])
}

/// Every (group, resource, verb[, name]) and (url, verb) piece of `rule`.
pub fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for group in list(&rule.api_groups) {
        for resource in list(&rule.resources) {
            for verb in &rule.verbs {
                let piece = |name: Option<&String>| PolicyRule {
                    api_groups: one(group),
                    resources: one(resource),
                    verbs: vec![verb.clone()],
                    resource_names: name.map(|n| vec![n.clone()]),
                    non_resource_urls: None,
                };
                let names = list(&rule.resource_names);
                if names.is_empty() {
                    out.push(piece(None));
                } else {
                    out.extend(names.iter().map(|n| piece(Some(n))));
                }
            }
        }
    }
    for url in list(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: one(url),
                ..Default::default()
            });
        }
    }
    out
}

fn has(set: &[String], s: &str) -> bool {
    set.iter().any(|x| x == s)
}

fn has_all(set: &[String], want: &[String]) -> bool {
    want.iter().all(|w| has(set, w))
}

fn resources_cover(owner: &[String], want: &[String]) -> bool {
    if has(owner, ALL) || has_all(owner, want) {
        return true;
    }
    want.iter().all(|path| {
        has(owner, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
    })
}

fn url_covers(owner: &str, path: &str) -> bool {
    owner == path
        || owner
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

fn urls_cover(owner: &[String], want: &[String]) -> bool {
    want.iter().all(|p| owner.iter().any(|o| url_covers(o, p)))
}

/// Whether `owner` (any rule) covers `sub` (one piece from `breakdown`).
pub fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(list(&owner.api_groups), ALL)
        || has_all(list(&owner.api_groups), list(&sub.api_groups));
    let resources = resources_cover(list(&owner.resources), list(&sub.resources));
    let urls = urls_cover(list(&owner.non_resource_urls), list(&sub.non_resource_urls));
    let owner_names = list(&owner.resource_names);
    let sub_names = list(&sub.resource_names);
    let names =
        owner_names.is_empty() || (!sub_names.is_empty() && has_all(owner_names, sub_names));
    verbs && groups && resources && names && urls
}

/// Whether `owner` covers every rule of `servant`; else the pieces it
/// does not cover.
pub fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> Result<(), Vec<PolicyRule>> {
    let missing: Vec<PolicyRule> = servant
        .iter()
        .flat_map(breakdown)
        .filter(|piece| !owner.iter().any(|o| rule_covers(o, piece)))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// Merges one-group, one-resource, at most one-name rules that differ
/// only in verbs, as Kubernetes does before printing what is missing.
pub fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    let mut simple: Vec<PolicyRule> = Vec::new();
    let mut index: HashMap<(String, String, Option<String>), usize> = HashMap::new();
    for r in rules {
        let names = list(&r.resource_names);
        let is_simple = names.len() <= 1
            && list(&r.non_resource_urls).is_empty()
            && list(&r.api_groups).len() == 1
            && list(&r.resources).len() == 1;
        if !is_simple {
            out.push(r);
            continue;
        }
        let key = (
            list(&r.api_groups)[0].clone(),
            list(&r.resources)[0].clone(),
            names.first().cloned(),
        );
        match index.get(&key) {
            Some(&i) => {
                for v in &r.verbs {
                    if !simple[i].verbs.contains(v) {
                        simple[i].verbs.push(v.clone());
                    }
                }
            }
            None => {
                index.insert(key, simple.len());
                simple.push(r);
            }
        }
    }
    out.extend(simple);
    out
}

fn quoted(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get" "list"]}`:
/// Kubernetes' `CompactString`, Go's `%q` of each list.
pub fn compact_string(r: &PolicyRule) -> String {
    let mut parts = Vec::new();
    for (label, v) in [
        ("APIGroups", list(&r.api_groups)),
        ("Resources", list(&r.resources)),
        ("NonResourceURLs", list(&r.non_resource_urls)),
        ("ResourceNames", list(&r.resource_names)),
        ("Verbs", r.verbs.as_slice()),
    ] {
        if !v.is_empty() {
            parts.push(format!("{label}:{}", quoted(v)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// The missing rules, compacted, one per line in sorted order.
pub fn describe_missing(missing: Vec<PolicyRule>) -> String {
    let lines: BTreeSet<String> = compact(missing).iter().map(compact_string).collect();
    lines.into_iter().collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| (!s.is_empty()).then(|| s.iter().map(|x| x.to_string()).collect());
        PolicyRule {
            verbs: verbs.iter().map(|x| x.to_string()).collect(),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
            non_resource_urls: None,
        }
    }

    fn url(verbs: &[&str], urls: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|x| x.to_string()).collect(),
            non_resource_urls: Some(urls.iter().map(|x| x.to_string()).collect()),
            ..Default::default()
        }
    }

    // Cases after Kubernetes' policy_comparator_test.go.
    #[test]
    fn exact_and_star_cover() {
        let owner = [r(&["*"], &["*"], &["*"], &[])];
        assert!(covers(&owner, &[r(&["get"], &[""], &["pods"], &["x"])]).is_ok());
        let owner = [r(&["get", "list"], &[""], &["pods", "services"], &[])];
        assert!(covers(&owner, &[r(&["list"], &[""], &["services"], &[])]).is_ok());
        assert!(covers(&owner, &[r(&["get"], &[""], &["pods"], &["a", "b"])]).is_ok());
    }

    #[test]
    fn split_across_owner_rules() {
        let owner = [
            r(&["get"], &[""], &["pods"], &[]),
            r(&["list"], &[""], &["pods"], &[]),
        ];
        assert!(covers(&owner, &[r(&["get", "list"], &[""], &["pods"], &[])]).is_ok());
    }

    #[test]
    fn missing_pieces_are_reported() {
        let owner = [r(&["get"], &[""], &["pods"], &[])];
        let want = [r(&["get", "delete"], &["", "apps"], &["pods"], &[])];
        let missing = covers(&owner, &want).unwrap_err();
        assert_eq!(missing.len(), 3);
        assert_eq!(
            describe_missing(missing),
            "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}\n\
             {APIGroups:[\"apps\"], Resources:[\"pods\"], Verbs:[\"get\" \"delete\"]}"
        );
    }

    #[test]
    fn resource_names_narrow() {
        let owner = [r(&["get"], &[""], &["secrets"], &["a"])];
        assert!(covers(&owner, &[r(&["get"], &[""], &["secrets"], &["a"])]).is_ok());
        assert!(covers(&owner, &[r(&["get"], &[""], &["secrets"], &["b"])]).is_err());
        // A named owner rule does not cover the unnamed (all names) rule.
        assert!(covers(&owner, &[r(&["get"], &[""], &["secrets"], &[])]).is_err());
    }

    #[test]
    fn subresource_stars() {
        let owner = [r(&["update"], &["*"], &["*/status"], &[])];
        assert!(covers(
            &owner,
            &[r(&["update"], &["apps"], &["deployments/status"], &[])]
        )
        .is_ok());
        assert!(covers(&owner, &[r(&["update"], &["apps"], &["deployments"], &[])]).is_err());
    }

    #[test]
    fn star_is_not_covered_by_a_list() {
        // Holding every named verb is not holding `*`.
        let owner = [r(&["get", "list", "watch"], &[""], &["pods"], &[])];
        assert!(covers(&owner, &[r(&["*"], &[""], &["pods"], &[])]).is_err());
        assert!(covers(&owner, &[r(&["get"], &["*"], &["pods"], &[])]).is_err());
    }

    #[test]
    fn non_resource_urls() {
        let owner = [url(&["get"], &["/apis/*", "/healthz"])];
        assert!(covers(&owner, &[url(&["get"], &["/apis/apps", "/healthz"])]).is_ok());
        assert!(covers(&owner, &[url(&["get"], &["/api"])]).is_err());
        assert!(covers(&owner, &[url(&["post"], &["/healthz"])]).is_err());
        // A resource rule covers no URL.
        assert!(covers(&[r(&["*"], &["*"], &["*"], &[])], &[url(&["get"], &["/x"])]).is_err());
        assert_eq!(
            compact_string(&url(&["get"], &["/x"])),
            "{NonResourceURLs:[\"/x\"], Verbs:[\"get\"]}"
        );
    }

    #[test]
    fn compacting_keeps_names_apart() {
        let rules = vec![
            r(&["get"], &[""], &["pods"], &["a"]),
            r(&["list"], &[""], &["pods"], &["a"]),
            r(&["get"], &[""], &["pods"], &["b"]),
        ];
        let c = compact(rules);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].verbs, vec!["get", "list"]);
    }
}
