//! Required node affinity and nodeSelector, as component-helpers'
//! `nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)` decides them:
//! nodeSelector labels must all be present; the required terms are ORed, a
//! term's requirements ANDed; an empty term matches nothing; a term that
//! does not parse (an unknown operator, wrong value counts, a non-integer
//! for Gt/Lt, an invalid label key or value) matches nothing. matchFields
//! knows only `metadata.name`: any other key reads as the empty string,
//! so `In` never matches it and `NotIn` always does. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, Pod};

/// What node affinity reads of a node: its name and labels.
#[derive(Clone, Copy, Debug)]
pub struct NodeFields<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

impl<'a> NodeFields<'a> {
    pub fn of(node: &'a Node, empty: &'a BTreeMap<String, String>) -> Self {
        NodeFields {
            name: node.metadata.name.as_deref().unwrap_or(""),
            labels: node.metadata.labels.as_ref().unwrap_or(empty),
        }
    }
}

/// Does the pod's nodeSelector and required node affinity admit `node`?
pub fn required_node_affinity_matches(pod: &Pod, node: NodeFields<'_>) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    if spec
        .node_selector
        .iter()
        .flatten()
        .any(|(k, v)| node.labels.get(k) != Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        Some(r) => r.node_selector_terms.iter().any(|t| term_matches(t, node)),
        None => true,
    }
}

/// One term: every label expression and every field requirement holds.
pub fn term_matches(term: &NodeSelectorTerm, node: NodeFields<'_>) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let mut labels_ok = true;
    for e in exprs {
        match label_requirement(e, node.labels.get(&e.key).map(String::as_str)) {
            Some(m) => labels_ok &= m,
            None => return false, // a parse error fails the whole term
        }
    }
    let mut fields_ok = true;
    for f in fields {
        let value = match f.key.as_str() {
            "metadata.name" => node.name,
            _ => "",
        };
        match field_requirement(f, value) {
            Some(m) => fields_ok &= m,
            None => return false,
        }
    }
    // A node without a name has no fields, and field requirements are then
    // not consulted (extractNodeFields is empty).
    labels_ok && (fields_ok || node.name.is_empty())
}

/// A label requirement against the node's value of its key; `None` when the
/// requirement itself is invalid (labels.NewRequirement's checks).
pub fn label_requirement(r: &NodeSelectorRequirement, value: Option<&str>) -> Option<bool> {
    if !is_qualified_name(&r.key) {
        return None;
    }
    let values = r.values.as_deref().unwrap_or_default();
    let int = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" | "NotIn" => {
            if values.is_empty() || !values.iter().all(|v| is_label_value(v)) {
                return None;
            }
            let found = value.is_some_and(|v| values.iter().any(|x| x == v));
            Some(if r.operator == "In" { found } else { !found })
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                return None;
            }
            Some(value.is_some() == (r.operator == "Exists"))
        }
        "Gt" | "Lt" => {
            let [bound] = values else { return None };
            let bound = int(bound)?;
            Some(match value.and_then(int) {
                Some(v) if r.operator == "Gt" => v > bound,
                Some(v) => v < bound,
                None => false,
            })
        }
        _ => None,
    }
}

/// A field requirement (only In and NotIn, with exactly one value).
pub fn field_requirement(r: &NodeSelectorRequirement, value: &str) -> Option<bool> {
    let [want] = r.values.as_deref().unwrap_or_default() else {
        return None;
    };
    match r.operator.as_str() {
        "In" => Some(value == want),
        "NotIn" => Some(value != want),
        _ => None,
    }
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of
/// at most 63 alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// A label value: empty, or like a key's name part.
fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    v.len() <= 63
        && (b.is_empty()
            || (b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))))
}

#[cfg(test)]
mod tests;
