//! The suite's fixture: etcd in the lab's underlay, an in-process
//! ApiServer on it (every request as the admin), the same router served
//! over plain HTTP for kube-rs, and the runtime the tests' futures run on;
//! plus the small checks every test uses. No test logic here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router};
use capstan_apiserver::auth::{AllowAll, User};
use capstan_apiserver::{router, ApiConfig, ApiServer};
use capstan_lab::suite::{Fixture, TestFn};
use capstan_lab::Lab;
use libtest_mimic::Failed;

pub struct Suite {
    pub rt: tokio::runtime::Runtime,
    pub etcd: etcd_client::Client,
    pub api: Arc<ApiServer>,
    pub app: Router,
    /// Plain-HTTP address of the same router (for kube-rs).
    pub addr: std::net::SocketAddr,
    /// Compaction erases every test's history: the compaction test holds
    /// this exclusively, all others shared.
    history: std::sync::RwLock<()>,
    /// Fields drop in order: the runtime and server go, the thread returns
    /// to the host namespace, then the lab is torn down.
    _home: Home,
    _lab: Lab,
}

pub fn admin() -> User {
    User {
        name: "admin".into(),
        groups: vec!["system:masters".into()],
        uid: None,
    }
}

pub fn config() -> ApiConfig {
    ApiConfig {
        service_cidr: "10.96.0.0/24".parse().expect("cidr"),
        bookmark_interval: Duration::from_millis(300),
        max_body_bytes: 256 * 1024,
        ..ApiConfig::default()
    }
}

impl Suite {
    /// Enters the lab's underlay namespace, where etcd listens, for the
    /// whole suite (threads made from here on inherit it) and serves the
    /// router there.
    pub fn start(lab: Lab) -> Result<Suite, String> {
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
    pub fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, Failed>> + Send + 'static,
    ) -> Result<T, Failed> {
        self.rt
            .block_on(self.rt.spawn(fut))
            .map_err(|e| Failed::from(format!("test task: {e}")))?
    }
}

pub fn check(cond: bool, msg: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(msg.into().into())
    }
}

/// A fresh, unique namespace name.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}
