//! The HTTPS edge without etcd: `init` output, TLS with client certificates
//! and bearer tokens, 401 for anonymous requests, node authorization, health
//! and metrics, and graceful shutdown. A stand-in API router asks the real
//! `ClusterAuthorizer` the way the API server does, so these tests exercise
//! the same seam. No root needed (the server listens on 127.0.0.1 only).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, patch};
use axum::{Extension, Router};
use capstan_apiserver::auth::token_file::TokenFile;
use capstan_apiserver::auth::{Attributes, Authorizer, ClusterAuthorizer, Decision, User, Verb};
use capstan_apiserver::pki::{self, InitOptions, Layout};
use capstan_apiserver::server::{self, Authenticator, Health, Metrics};
use kube::config::{KubeConfigOptions, Kubeconfig};

fn stand_in_api() -> Router {
    async fn whoami(Extension(u): Extension<User>) -> String {
        format!("{} {}", u.name, u.groups.join(","))
    }
    async fn protocol(version: axum::http::Version) -> String {
        format!("{version:?}")
    }
    async fn patch_node(
        Extension(u): Extension<User>,
        UrlPath(name): UrlPath<String>,
    ) -> impl IntoResponse {
        let attrs = Attributes {
            verb: Some(Verb::Patch),
            resource: "nodes",
            name: Some(&name),
            ..Default::default()
        };
        match ClusterAuthorizer::fixed().authorize(&u, &attrs) {
            Decision::Allow => (StatusCode::OK, "{}".to_string()),
            Decision::Deny(why) => (StatusCode::FORBIDDEN, why),
        }
    }
    async fn endless() -> axum::body::Body {
        // One event, then nothing: a watch with no further changes.
        use futures::StreamExt;
        let first = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
            b"{\"type\":\"ADDED\"}\n",
        ))]);
        axum::body::Body::from_stream(first.chain(futures::stream::pending()))
    }
    Router::new()
        .route("/whoami", get(whoami))
        .route("/endless", get(endless))
        .route("/protocol", get(protocol))
        .route("/api/v1/nodes/{name}", patch(patch_node))
}

struct Edge {
    dir: tempfile::TempDir,
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Edge {
    async fn start() -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        pki::init(&opts(dir.path(), port, &["n1", "n2"])).unwrap();
        let l = Layout::new(dir.path());
        let tls = capstan_serve::tls::server_config(
            &l.serving_cert(),
            &l.serving_key(),
            Some(&l.ca_cert()),
        )
        .unwrap();
        let authn = Authenticator::new(TokenFile::load(&l.tokens()).unwrap());
        let app = server::app(
            stand_in_api(),
            Arc::new(authn),
            Health::new(None),
            Arc::new(Metrics::new()),
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done = tokio::spawn(server::serve(
            listener,
            tls,
            app,
            async {
                let _ = rx.await;
            },
            Duration::from_secs(2),
        ));
        Edge {
            dir,
            port,
            stop: Some(tx),
            done,
        }
    }

    fn layout(&self) -> Layout {
        Layout::new(self.dir.path())
    }

    async fn client(&self, who: &str) -> kube::Client {
        let kc = Kubeconfig::read_from(self.layout().kubeconfig(who)).unwrap();
        client_from(kc).await
    }

    /// A client that trusts the CA but presents `auth` (or nothing).
    async fn client_with(&self, token: Option<&str>) -> kube::Client {
        let mut kc = Kubeconfig::read_from(self.layout().kubeconfig("admin")).unwrap();
        let auth = kc.auth_infos[0].auth_info.as_mut().unwrap();
        auth.client_certificate_data = None;
        auth.client_key_data = None;
        auth.token = token.map(|t| t.to_string().into());
        client_from(kc).await
    }

    fn token_of(&self, user: &str) -> String {
        let text = std::fs::read_to_string(self.layout().tokens()).unwrap();
        text.lines()
            .find(|l| l.split(',').nth(1) == Some(user))
            .and_then(|l| l.split(',').next())
            .unwrap()
            .to_string()
    }
}

fn opts(dir: &Path, port: u16, nodes: &[&str]) -> InitOptions {
    InitOptions {
        dir: dir.to_path_buf(),
        server: format!("https://127.0.0.1:{port}"),
        sans: vec!["capstan.test".into()],
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
    }
}

async fn client_from(kc: Kubeconfig) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn call(c: &kube::Client, method: &str, path: &str) -> Result<String, kube::Error> {
    let mut req = axum::http::Request::builder().method(method).uri(path);
    let body = if method == "PATCH" {
        req = req.header("content-type", "application/merge-patch+json");
        b"{}".to_vec()
    } else {
        Vec::new()
    };
    c.request_text(req.body(body).unwrap()).await
}

fn code(r: Result<String, kube::Error>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("transport error: {e}"),
    }
}

#[test]
fn init_is_idempotent_and_keys_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let first = pki::init(&opts(dir.path(), 6443, &["a"])).unwrap();
    assert!(first.kept.is_empty(), "{:?}", first.kept);
    let l = Layout::new(dir.path());
    let snapshot = |p: PathBuf| std::fs::read(p).unwrap();
    let ca = snapshot(l.ca_cert());
    let node_a = snapshot(l.client_cert("node-a"));
    let sa_key = snapshot(l.service_account_key());
    assert!(first.created.contains(&l.service_account_pub()));
    for key in [
        l.service_account_key(),
        l.ca_key(),
        l.serving_key(),
        l.client_key("admin"),
        l.client_key("node-a"),
        l.tokens(),
        l.kubeconfig("admin"),
    ] {
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    let again = pki::init(&opts(dir.path(), 6443, &["a", "b"])).unwrap();
    assert_eq!(snapshot(l.ca_cert()), ca, "CA rotated");
    assert_eq!(snapshot(l.client_cert("node-a")), node_a);
    assert!(again.created.contains(&l.client_cert("node-b")));
    assert!(again.created.contains(&l.kubeconfig("b")));
    assert!(again.kept.contains(&l.ca_cert()));
    assert!(!again.created.contains(&l.serving_cert()));
    // The service-account key signs every token issued: never replaced.
    assert_eq!(snapshot(l.service_account_key()), sa_key, "sa.key rotated");
    assert!(again.kept.contains(&l.service_account_pub()));
    // A lost public key is rewritten from the private one, the same key.
    let sa_pub = snapshot(l.service_account_pub());
    std::fs::remove_file(l.service_account_pub()).unwrap();
    let third = pki::init(&opts(dir.path(), 6443, &["a", "b"])).unwrap();
    assert!(third.created.contains(&l.service_account_pub()));
    assert_eq!(snapshot(l.service_account_pub()), sa_pub);
    assert_eq!(snapshot(l.service_account_key()), sa_key);
    // Every node has exactly one token.
    let tokens = std::fs::read_to_string(l.tokens()).unwrap();
    assert_eq!(
        tokens
            .lines()
            .filter(|t| t.contains(",system:node:a,"))
            .count(),
        1
    );
    assert_eq!(
        tokens
            .lines()
            .filter(|t| t.contains(",system:node:b,"))
            .count(),
        1
    );
    // Bad input is refused before anything is written.
    let bad = tempfile::tempdir().unwrap();
    assert!(pki::init(&opts(bad.path(), 6443, &["Not_A_Name"])).is_err());
    let mut o = opts(bad.path(), 6443, &[]);
    o.server = "http://127.0.0.1:6443".into();
    assert!(pki::init(&o).is_err());
    assert!(std::fs::read_dir(bad.path()).unwrap().next().is_none());
}

#[tokio::test]
async fn credentials_decide_the_user() {
    let edge = Edge::start().await;
    let admin = edge.client("admin").await;
    assert_eq!(
        call(&admin, "GET", "/whoami").await.unwrap(),
        "admin system:masters,system:authenticated"
    );
    let n1 = edge.client("n1").await;
    assert_eq!(
        call(&n1, "GET", "/whoami").await.unwrap(),
        "system:node:n1 system:nodes,system:authenticated"
    );
    let by_token = edge
        .client_with(Some(&edge.token_of("system:node:n2")))
        .await;
    assert_eq!(
        call(&by_token, "GET", "/whoami").await.unwrap(),
        "system:node:n2 system:nodes,system:authenticated"
    );
    let anonymous = edge.client_with(None).await;
    match call(&anonymous, "GET", "/whoami").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 401);
            assert_eq!(s.reason, "Unauthorized");
        }
        other => panic!("anonymous got {other:?}"),
    }
    let bad_token = edge.client_with(Some("not-a-token")).await;
    assert_eq!(code(call(&bad_token, "GET", "/whoami").await), 401);
    // Health is public; a bad token is refused even there.
    assert_eq!(call(&anonymous, "GET", "/healthz").await.unwrap(), "ok");
    assert_eq!(call(&anonymous, "GET", "/livez").await.unwrap(), "ok");
    assert_eq!(call(&anonymous, "GET", "/readyz").await.unwrap(), "ok");
    assert!(call(&anonymous, "GET", "/readyz?verbose")
        .await
        .unwrap()
        .contains("[+]shutdown ok"));
    assert_eq!(code(call(&bad_token, "GET", "/healthz").await), 401);
}

#[tokio::test]
async fn nodes_write_only_their_own_node() {
    let edge = Edge::start().await;
    let n1 = edge.client("n1").await;
    assert_eq!(code(call(&n1, "PATCH", "/api/v1/nodes/n1").await), 200);
    assert_eq!(code(call(&n1, "PATCH", "/api/v1/nodes/n2").await), 403);
    let n2_token = edge
        .client_with(Some(&edge.token_of("system:node:n2")))
        .await;
    assert_eq!(
        code(call(&n2_token, "PATCH", "/api/v1/nodes/n2").await),
        200
    );
    assert_eq!(
        code(call(&n2_token, "PATCH", "/api/v1/nodes/n1").await),
        403
    );
    let admin = edge.client("admin").await;
    assert_eq!(code(call(&admin, "PATCH", "/api/v1/nodes/n1").await), 200);
}

#[tokio::test]
async fn metrics_count_requests_for_admins_only() {
    let edge = Edge::start().await;
    let anonymous = edge.client_with(None).await;
    assert_eq!(code(call(&anonymous, "GET", "/api/v1/pods").await), 401);
    let n1 = edge.client("n1").await;
    assert_eq!(code(call(&n1, "GET", "/metrics").await), 403);
    let admin = edge.client("admin").await;
    let text = call(&admin, "GET", "/metrics").await.unwrap();
    assert!(
        text.contains(
            r#"capstan_apiserver_requests_total{verb="list",resource="pods",code="401"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("capstan_apiserver_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn foreign_client_certificates_fail_the_handshake() {
    let edge = Edge::start().await;
    let other = tempfile::tempdir().unwrap();
    pki::init(&opts(other.path(), edge.port, &[])).unwrap();
    // Trust the right server CA, but present a certificate from another CA.
    let mut kc = Kubeconfig::read_from(Layout::new(other.path()).kubeconfig("admin")).unwrap();
    let ours = Kubeconfig::read_from(edge.layout().kubeconfig("admin")).unwrap();
    kc.clusters = ours.clusters;
    let foreign = client_from(kc).await;
    match call(&foreign, "GET", "/whoami").await {
        Ok(body) => panic!("foreign certificate accepted as {body}"),
        Err(kube::Error::Api(s)) => panic!("foreign certificate got an HTTP answer: {s:?}"),
        Err(_) => {}
    }
}

#[tokio::test]
async fn kubectl_speaks_http2_and_shutdown_drains() {
    let mut edge = Edge::start().await;
    let kubeconfig = edge.layout().kubeconfig("admin");
    if std::path::Path::new("/usr/bin/kubectl").exists() {
        let out = tokio::process::Command::new("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "--raw", "/protocol"])
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(stdout.trim(), "HTTP/2.0", "kubectl negotiates h2 by ALPN");
    } else {
        eprintln!("kubectl_speaks_http2: /usr/bin/kubectl missing, checking shutdown only");
    }
    // An open stream (a watch) ends at shutdown rather than holding the
    // server for the whole grace period (2 s here).
    let admin = edge.client("admin").await;
    let req = axum::http::Request::get("/endless")
        .body(Vec::new())
        .unwrap();
    let mut stream = admin.request_stream(req).await.unwrap();
    let mut line = String::new();
    use futures::AsyncBufReadExt;
    stream.read_line(&mut line).await.unwrap();
    assert_eq!(line, "{\"type\":\"ADDED\"}\n");
    let started = std::time::Instant::now();
    let _ = edge.stop.take().unwrap().send(());
    line.clear();
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read_line(&mut line))
        .await
        .expect("stream ends at shutdown")
        .unwrap_or(0);
    assert_eq!(n, 0, "clean end of stream, got {line:?}");
    tokio::time::timeout(Duration::from_secs(5), &mut edge.done)
        .await
        .expect("serve returns after shutdown")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shutdown took {:?}",
        started.elapsed()
    );
    let admin = edge.client("admin").await;
    assert!(
        call(&admin, "GET", "/whoami").await.is_err(),
        "still serving after shutdown"
    );
}
