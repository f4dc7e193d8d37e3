//! The REST API against real etcd in a lab: CRUD, Status errors,
//! selectors and paging, watch (bookmarks, 410 after compaction), patches,
//! pod deletion and binding, service allocations, subresources, restarts,
//! and kube-rs as a client. One etcd and one server for the whole suite
//! (harness = false); every test works in namespaces of its own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::{Extension, Router};
use capstan_control::apiserver::{router, ApiConfig, ApiServer};
use capstan_control::auth::{AllowAll, Attributes, Authorizer, Decision, User};
use capstan_lab::suite::{self, Fixture, Spec, TestFn};
use capstan_lab::Lab;
use futures::StreamExt;
use libtest_mimic::Failed;
use serde_json::{json, Value};
use tower::ServiceExt;

#[path = "api_server/clients.rs"]
mod clients;
#[path = "api_server/extras.rs"]
mod extras;
#[path = "api_server/http.rs"]
mod http;
#[path = "api_server/rest.rs"]
mod rest;

use clients::*;
use extras::*;
use rest::*;

struct Suite {
    rt: tokio::runtime::Runtime,
    etcd: etcd_client::Client,
    api: Arc<ApiServer>,
    app: Router,
    /// Plain-HTTP address of the same router (for kube-rs).
    addr: std::net::SocketAddr,
    /// Compaction erases every test's history: the compaction test holds
    /// this exclusively, all others shared.
    history: std::sync::RwLock<()>,
    /// Fields drop in order: the runtime and server go, the thread returns
    /// to the host namespace, then the lab is torn down.
    _home: Home,
    _lab: Lab,
}

fn admin() -> User {
    User {
        name: "admin".into(),
        groups: vec!["system:masters".into()],
        uid: None,
    }
}

fn config() -> ApiConfig {
    ApiConfig {
        service_cidr: "10.96.0.0/24".parse().expect("cidr"),
        bookmark_interval: Duration::from_millis(300),
        max_body_bytes: 256 * 1024,
        ..ApiConfig::default()
    }
}

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

impl Suite {
    /// Enters the lab's underlay namespace, where etcd listens, for the
    /// whole suite (threads made from here on inherit it) and serves the
    /// router there.
    fn start(lab: Lab) -> Result<Suite, String> {
        let home = Home::enter(&lab.underlay().path())?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let endpoint = lab.etcd_endpoint();
        let etcd = rt
            .block_on(etcd_client::Client::connect([endpoint], None))
            .map_err(|e| format!("connect etcd: {e}"))?;
        let api = Arc::new(ApiServer::new(etcd.clone(), config(), Arc::new(AllowAll)));
        rt.block_on(api.bootstrap())
            .map_err(|e| format!("bootstrap: {e}"))?;
        let app = router(api.clone()).layer(Extension(admin()));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("addr: {e}"))?;
        let served = app.clone();
        rt.spawn(async move {
            let _ = axum::serve(listener, served).await;
        });
        Ok(Suite {
            rt,
            etcd,
            api,
            app,
            addr,
            history: std::sync::RwLock::new(()),
            _home: home,
            _lab: lab,
        })
    }
}

impl Fixture for Suite {
    fn trial(&self, name: &str, test: TestFn<Self>) -> Result<(), Failed> {
        let exclusive = name.contains("compaction");
        let _shared = (!exclusive).then(|| self.history.read().unwrap_or_else(|e| e.into_inner()));
        let _alone = exclusive.then(|| self.history.write().unwrap_or_else(|e| e.into_inner()));
        test(self)
    }
}

/// The host's network namespace, entered again on drop (before the lab
/// that owns the underlay goes).
struct Home(std::fs::File);

impl Home {
    fn enter(path: &std::path::Path) -> Result<Home, String> {
        let host = std::fs::File::open("/proc/self/ns/net")
            .map_err(|e| format!("open host netns: {e}"))?;
        let underlay =
            std::fs::File::open(path).map_err(|e| format!("open underlay netns: {e}"))?;
        enter_fd(&underlay).map_err(|e| format!("enter underlay netns: {e}"))?;
        Ok(Home(host))
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Err(e) = enter_fd(&self.0) {
            eprintln!("back to host netns: {e}");
        }
    }
}

fn enter_fd(f: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a descriptor we hold open.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Suite {
    /// Runs `fut` on the suite's runtime (inside the lab namespace).
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, Failed>> + Send + 'static,
    ) -> Result<T, Failed> {
        self.rt
            .block_on(self.rt.spawn(fut))
            .map_err(|e| Failed::from(format!("test task: {e}")))?
    }
}

fn check(cond: bool, msg: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(msg.into().into())
    }
}

/// A fresh, unique namespace name.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}
