//! Cases from Kubernetes' own nodeaffinity tests
//! (component-helpers/scheduling/corev1/nodeaffinity/nodeaffinity_test.go:
//! TestNodeSelectorMatch, TestNodeSelectorRequirementsAsSelector,
//! TestPodMatchesNodeSelectorAndAffinityTerms), plus the matchFields case on
//! which the scheduler and kubelet admission used to disagree.

use super::*;
use serde_json::{json, Value};

fn pod(spec: Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
}

fn required(terms: Value) -> Pod {
    pod(json!({"containers": [], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}))
}

fn matches(p: &Pod, name: &str, labels: &[(&str, &str)]) -> bool {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    required_node_affinity_matches(
        p,
        NodeFields {
            name,
            labels: &labels,
        },
    )
}

fn expr(key: &str, op: &str, values: &[&str]) -> Value {
    json!({"key": key, "operator": op, "values": values})
}

/// (case, pod, node labels, matches).
type Case = (&'static str, Pod, Vec<(&'static str, &'static str)>, bool);

#[test]
fn pod_matches_node_selector_and_affinity_terms() {
    let table: Vec<Case> = vec![
        ("no selector", pod(json!({"containers": []})), vec![], true),
        (
            "missing labels",
            pod(json!({"containers": [], "nodeSelector": {"foo": "bar"}})),
            vec![],
            false,
        ),
        (
            "same labels",
            pod(json!({"containers": [], "nodeSelector": {"foo": "bar"}})),
            vec![("foo", "bar")],
            true,
        ),
        (
            "node labels are superset",
            pod(json!({"containers": [], "nodeSelector": {"foo": "bar"}})),
            vec![("foo", "bar"), ("baz", "blah")],
            true,
        ),
        (
            "node labels are subset",
            pod(json!({"containers": [], "nodeSelector": {"foo": "bar", "baz": "blah"}})),
            vec![("foo", "bar")],
            false,
        ),
        (
            "In that matches",
            required(json!([{"matchExpressions": [expr("foo", "In", &["bar", "value2"])]}])),
            vec![("foo", "bar")],
            true,
        ),
        (
            "Gt that matches (leading zeros are integers)",
            required(json!([{"matchExpressions": [expr("kernel-version", "Gt", &["0204"])]}])),
            vec![("kernel-version", "0206")],
            true,
        ),
        (
            "NotIn that matches",
            required(json!([{"matchExpressions": [expr("mem-type", "NotIn", &["DDR", "DDR2"])]}])),
            vec![("mem-type", "DDR3")],
            true,
        ),
        (
            "Exists that matches",
            required(json!([{"matchExpressions": [{"key": "GPU", "operator": "Exists"}]}])),
            vec![("GPU", "NVIDIA-GRID-K1")],
            true,
        ),
        (
            "affinity that does not match the labels",
            required(json!([{"matchExpressions": [expr("foo", "In", &["value1", "value2"])]}])),
            vec![("foo", "bar")],
            false,
        ),
        (
            "no terms at all",
            required(json!([])),
            vec![("foo", "bar")],
            false,
        ),
        (
            "an empty term",
            required(json!([{}])),
            vec![("foo", "bar")],
            false,
        ),
        (
            "second term matches",
            required(json!([
                {"matchExpressions": [expr("label_1", "In", &["label_1_val"])]},
                {"matchFields": [expr("metadata.name", "In", &["host_1"])]},
            ])),
            vec![],
            true,
        ),
        (
            "field selector matches but not the labels",
            required(json!([{
                "matchExpressions": [expr("label_1", "In", &["label_1_val"])],
                "matchFields": [expr("metadata.name", "In", &["host_1"])],
            }])),
            vec![],
            false,
        ),
        (
            "field selector and labels match",
            required(json!([{
                "matchExpressions": [expr("label_1", "In", &["label_1_val"])],
                "matchFields": [expr("metadata.name", "In", &["host_1"])],
            }])),
            vec![("label_1", "label_1_val")],
            true,
        ),
        (
            "matchFields In needs exactly one value",
            required(
                json!([{"matchFields": [expr("metadata.name", "In", &["host_1", "host_2"])]}]),
            ),
            vec![],
            false,
        ),
        (
            "an invalid label key fails its term",
            required(json!([{"matchExpressions": [expr("invalid key", "In", &["label_value"])]}])),
            vec![("invalid key", "label_value")],
            false,
        ),
        (
            "Exists with values is invalid",
            required(json!([{"matchExpressions": [expr("foo", "Exists", &["bar", "baz"])]}])),
            vec![("foo", "bar")],
            false,
        ),
        (
            "Lt that matches",
            required(json!([{"matchExpressions": [expr("bar", "Lt", &["7"])]}])),
            vec![("bar", "3")],
            true,
        ),
        (
            "Gt against a non-integer label",
            required(json!([{"matchExpressions": [expr("bar", "Gt", &["1"])]}])),
            vec![("bar", "x")],
            false,
        ),
        (
            "an unknown operator",
            required(json!([{"matchExpressions": [expr("foo", "Near", &["bar"])]}])),
            vec![("foo", "bar")],
            false,
        ),
    ];
    for (name, p, labels, want) in table {
        assert_eq!(matches(&p, "host_1", &labels), want, "{name}");
    }
}

/// The case that drifted: for a matchFields key other than metadata.name
/// the scheduler rejected and kubelet admission admitted. Kubernetes reads
/// an unknown field as "", so `In` fails and `NotIn` holds.
#[test]
fn match_fields_with_an_unknown_key() {
    let in_uid = required(json!([{"matchFields": [expr("metadata.uid", "In", &["host_1"])]}]));
    assert!(!matches(&in_uid, "host_1", &[]));
    let not_in_uid = required(json!([{"matchFields": [expr("metadata.uid", "NotIn", &["x"])]}]));
    assert!(matches(&not_in_uid, "host_1", &[]));
    let exists =
        required(json!([{"matchFields": [{"key": "metadata.name", "operator": "Exists"}]}]));
    assert!(
        !matches(&exists, "host_1", &[]),
        "matchFields knows only In/NotIn"
    );
    let name_not_in =
        required(json!([{"matchFields": [expr("metadata.name", "NotIn", &["host_1"])]}]));
    assert!(!matches(&name_not_in, "host_1", &[]));
    assert!(matches(&name_not_in, "host_2", &[]));
}

#[test]
fn label_keys_and_values() {
    assert!(is_qualified_name("kubernetes.io/hostname"));
    assert!(is_qualified_name("foo"));
    assert!(!is_qualified_name("invalid key"));
    assert!(!is_qualified_name("/foo"));
    assert!(!is_qualified_name("Example.com/foo"));
    assert!(is_label_value(""));
    assert!(!is_label_value("-bad"));
}
