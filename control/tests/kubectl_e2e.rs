//! capstan-control end to end, driven by the real kubectl (and kube-rs):
//! one lab (2 nodes for their credentials, real etcd, no containerd) with
//! capstan-control in the underlay namespace, shared by every test of the
//! suite (harness = false). Tests run one at a time: some restart the
//! server, and each uses object names of its own. This file only lists
//! them; `kubectl_e2e/` holds them by feature.

use capstan_lab::suite::{self, ControlSuite, Spec, TestFn};
use capstan_lab::Lab;

#[path = "kubectl_e2e/apply.rs"]
mod apply;
#[path = "kubectl_e2e/auth.rs"]
mod auth;
#[path = "kubectl_e2e/clients.rs"]
mod clients;
#[path = "kubectl_e2e/delete.rs"]
mod delete;
#[path = "kubectl_e2e/deploy.rs"]
mod deploy;
#[path = "kubectl_e2e/discovery.rs"]
mod discovery;
#[path = "kubectl_e2e/kubectl_1_20.rs"]
mod kubectl_1_20;
#[path = "kubectl_e2e/malformed.rs"]
mod malformed;
#[path = "kubectl_e2e/manifests.rs"]
mod manifests;
#[path = "kubectl_e2e/node_authorizer.rs"]
mod node_authorizer;
#[path = "kubectl_e2e/protobuf.rs"]
mod protobuf;
#[path = "kubectl_e2e/selectors.rs"]
mod selectors;
#[path = "kubectl_e2e/support.rs"]
mod support;
#[path = "kubectl_e2e/tokens.rs"]
mod tokens;
#[path = "kubectl_e2e/watch.rs"]
mod watch;

use kubectl_1_20::KUBECTL_1_20;
use manifests::NS;

const SPEC: Spec = Spec {
    name: "kubectl_e2e",
    tools: &["ip", "etcd", "kubectl", "curl", KUBECTL_1_20],
    serial: true,
};

const TESTS: &[(&str, TestFn<ControlSuite>)] = &[
    (
        "health_is_public_and_api_needs_credentials",
        auth::health_is_public_and_api_needs_credentials,
    ),
    (
        "api_resources_and_version",
        discovery::api_resources_and_version,
    ),
    ("explain", discovery::explain),
    (
        "create_get_describe_delete",
        apply::create_get_describe_delete,
    ),
    (
        "apply_twice_second_is_a_noop",
        apply::apply_twice_second_is_a_noop,
    ),
    ("edit_via_patch", apply::edit_via_patch),
    ("scale_a_deployment", apply::scale_a_deployment),
    (
        "label_and_field_selectors",
        selectors::label_and_field_selectors,
    ),
    (
        "get_watch_receives_an_event",
        watch::get_watch_receives_an_event,
    ),
    (
        "stale_update_is_a_conflict",
        apply::stale_update_is_a_conflict,
    ),
    (
        "nodes_write_only_their_own_objects",
        node_authorizer::nodes_write_only_their_own_objects,
    ),
    (
        "nodes_register_themselves",
        node_authorizer::nodes_register_themselves,
    ),
    (
        "kube_rs_client_with_node_credentials",
        node_authorizer::kube_rs_client_with_node_credentials,
    ),
    (
        "nodes_read_only_secrets_their_pods_use",
        node_authorizer::nodes_read_only_secrets_their_pods_use,
    ),
    ("malformed_inputs", malformed::malformed_inputs),
    ("auth_can_i_and_whoami", auth::auth_can_i_and_whoami),
    (
        "service_account_tokens_authenticate",
        tokens::service_account_tokens_authenticate,
    ),
    (
        "bound_token_dies_with_its_pod",
        tokens::bound_token_dies_with_its_pod,
    ),
    (
        "expired_tokens_are_refused",
        tokens::expired_tokens_are_refused,
    ),
    (
        "nodes_get_tokens_only_for_their_pods",
        tokens::nodes_get_tokens_only_for_their_pods,
    ),
    (
        "bad_token_requests_are_status",
        tokens::bad_token_requests_are_status,
    ),
    (
        "kubectl_1_20_auth_can_i",
        kubectl_1_20::kubectl_1_20_auth_can_i,
    ),
    (
        "protobuf_generators_match_create_f",
        protobuf::protobuf_generators_match_create_f,
    ),
    (
        "malformed_protobuf_is_400",
        malformed::malformed_protobuf_is_400,
    ),
    (
        "delete_answers_200_unless_cascading_was_asked",
        delete::delete_answers_200_unless_cascading_was_asked,
    ),
    ("openapi_v2_protobuf", discovery::openapi_v2_protobuf),
    (
        "kubectl_1_20_validates_explains_gets_deletes",
        kubectl_1_20::kubectl_1_20_validates_explains_gets_deletes,
    ),
    (
        "kubectl_1_20_apply_twice",
        kubectl_1_20::kubectl_1_20_apply_twice,
    ),
    (
        "kubectl_1_20_generators",
        kubectl_1_20::kubectl_1_20_generators,
    ),
    (
        "deploy_manifests_pass_strict_client_validation",
        deploy::rendered_yaml_passes_strict_client_validation,
    ),
    ("metrics_count_requests", auth::metrics_count_requests),
    (
        "objects_survive_a_restart",
        watch::objects_survive_a_restart,
    ),
    (
        "watch_resumes_after_a_restart",
        watch::watch_resumes_after_a_restart,
    ),
];

fn main() {
    let lab = Lab::builder().nodes(2).etcd(true).containerd(false);
    suite::run(&SPEC, lab, setup, TESTS);
}

fn setup(lab: Lab) -> Result<ControlSuite, String> {
    // The API and its edge alone: no scheduler binding the test's pods, no
    // controllers making pods for its Deployments.
    let quiet = [
        "--controllers=".to_string(),
        "--scheduler=false".to_string(),
    ];
    // A server that stops answering fails the test instead of hanging it.
    let s = ControlSuite::start(lab, &quiet)?.with_kubectl_flags(&["--request-timeout=30s"]);
    s.kubectl(
        &["create", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n"
        )),
    )
    .map_err(|e| format!("create test namespace: {e}"))?;
    Ok(s)
}
