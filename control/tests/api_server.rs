//! The REST API against real etcd in a lab: CRUD, Status errors,
//! selectors and paging, watch (bookmarks, 410 after compaction), patches,
//! pod deletion and binding, service allocations, subresources, restarts,
//! and kube-rs as a client. One etcd and one server for the whole suite
//! (harness = false); every test works in namespaces of its own.

use capstan_lab::suite::{self, Spec, TestFn};
use capstan_lab::Lab;

#[path = "api_server/clients.rs"]
mod clients;
#[path = "api_server/extras.rs"]
mod extras;
#[path = "api_server/fixture.rs"]
mod fixture;
#[path = "api_server/http.rs"]
mod http;
#[path = "api_server/rest.rs"]
mod rest;
#[path = "api_server/selectors.rs"]
mod selectors;
#[path = "api_server/services.rs"]
mod services;
#[path = "api_server/watch.rs"]
mod watch;

use clients::*;
use extras::*;
use fixture::Suite;
use rest::*;
use selectors::*;
use services::*;
use watch::*;

const SPEC: Spec = Spec {
    name: "api_server",
    tools: &["ip", "etcd", "kubectl"],
    serial: false,
};

const TESTS: &[(&str, TestFn<Suite>)] = &[
    ("discovery_documents", discovery),
    ("crud_configmap_and_404_after_delete", crud_configmap),
    ("already_exists_and_stale_update_conflict", conflicts),
    ("malformed_inputs_answer_status", malformed),
    ("unauthenticated_401_denied_403", auth_errors),
    ("label_field_selectors_and_paging", selectors_and_paging),
    ("watch_from_rv_with_bookmarks_and_selectors", watch_from_rv),
    ("watch_and_continue_after_compaction_410", compaction_410),
    ("merge_json_strategic_patches", patches),
    ("graceful_pod_delete_and_binding", pod_lifecycle),
    (
        "service_allocation_release_and_conflicts",
        service_allocation,
    ),
    (
        "concurrent_service_creates_get_distinct_ips",
        concurrent_services,
    ),
    ("status_and_scale_subresources", subresources),
    ("objects_survive_a_new_api_server", survive_restart),
    ("namespace_missing_and_namespace_delete", namespaces),
    ("kube_rs_client_crud_watch_patch", kube_client),
    ("kubectl_apply_get_scale_explain", kubectl),
    ("pod_log_proxied_to_the_nodes_agent", pod_log),
    ("measure_create_get_list_watch_latency", measure),
];

fn main() {
    suite::run(
        &SPEC,
        Lab::builder().nodes(0).etcd(true),
        Suite::start,
        TESTS,
    );
}
