//! RBAC in capstan-control end to end, with the real kubectl 1.32: one lab
//! (real etcd) with capstan-control in the underlay namespace and a few
//! token users of the suite's own (added to the token file before the
//! server restarts). Grants and denials for users and service accounts
//! (through impersonation, as `kubectl auth can-i --as` asks), escalation
//! prevention, SubjectAccessReview, impersonation and the bootstrap roles.
//! This file only lists the tests; `rbac_e2e/` holds them by feature.

use capstan_lab::suite::{self, Spec, TestFn};
use capstan_lab::Lab;

#[path = "rbac_e2e/agent.rs"]
mod agent;
#[path = "rbac_e2e/bootstrap.rs"]
mod bootstrap;
#[path = "rbac_e2e/escalation.rs"]
mod escalation;
#[path = "rbac_e2e/grants.rs"]
mod grants;
#[path = "rbac_e2e/impersonation.rs"]
mod impersonation;
#[path = "rbac_e2e/reviews.rs"]
mod reviews;
#[path = "rbac_e2e/support.rs"]
mod support;

use support::Rbac;

const SPEC: Spec = Spec {
    name: "rbac_e2e",
    tools: &["ip", "etcd", "kubectl", "curl"],
    serial: true,
};

const TESTS: &[(&str, TestFn<Rbac>)] = &[
    (
        "agent_service_account_can_i_matrix",
        agent::agent_service_account_can_i_matrix,
    ),
    (
        "role_binding_grants_only_in_its_namespace",
        grants::role_binding_grants_only_in_its_namespace,
    ),
    (
        "discovery_and_self_reviews_for_every_user",
        grants::discovery_and_self_reviews_for_every_user,
    ),
    (
        "generators_explain_and_strict_validation",
        grants::generators_explain_and_strict_validation,
    ),
    (
        "binding_more_than_held_is_forbidden_unless_bind",
        escalation::binding_more_than_held_is_forbidden_unless_bind,
    ),
    (
        "role_with_more_than_held_is_forbidden_unless_escalate",
        escalation::role_with_more_than_held_is_forbidden_unless_escalate,
    ),
    (
        "subject_access_reviews_answer_as_requests",
        reviews::subject_access_reviews_answer_as_requests,
    ),
    (
        "can_i_list_shows_the_rbac_rules",
        reviews::can_i_list_shows_the_rbac_rules,
    ),
    (
        "impersonation_needs_the_impersonate_verb",
        impersonation::impersonation_needs_the_impersonate_verb,
    ),
    (
        "bootstrap_roles_are_reconciled_not_overwritten",
        bootstrap::bootstrap_roles_are_reconciled_not_overwritten,
    ),
];

fn main() {
    let lab = Lab::builder().nodes(1).etcd(true).containerd(false);
    suite::run(&SPEC, lab, support::setup, TESTS);
}
