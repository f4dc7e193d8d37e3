//! etcd over TLS: capstan-control given `--etcd-cafile/--etcd-certfile/
//! --etcd-keyfile` talks to an etcd that requires client certificates (its
//! readiness check goes through etcd), and refuses to start with TLS flags
//! against a plain endpoint. The etcd certificates come from `pki::init`
//! into a directory of their own (a second CA, as etcd has in Kubernetes).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use capstan_apiserver::pki::{self, InitOptions, Layout};
use capstan_lab::control::ControlPlane;
use capstan_lab::daemon::{Daemon, DaemonSpec};
use capstan_lab::{privileged, Lab};

fn etcd_spec(lab: &Lab, etcd_pki: &Layout, url: &str) -> DaemonSpec {
    let peer = "http://127.0.0.1:2380";
    let p = |f: &Path| f.display().to_string();
    DaemonSpec {
        name: "etcd-tls".into(),
        program: privileged::which("etcd").expect("etcd on PATH"),
        args: vec![
            "--name=tls".into(),
            format!("--data-dir={}", lab.dir().join("etcd-tls").display()),
            format!("--listen-client-urls={url}"),
            format!("--advertise-client-urls={url}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=tls={peer}"),
            format!("--cert-file={}", p(&etcd_pki.serving_cert())),
            format!("--key-file={}", p(&etcd_pki.serving_key())),
            "--client-cert-auth".into(),
            format!("--trusted-ca-file={}", p(&etcd_pki.ca_cert())),
            "--log-level=warn".into(),
            "--logger=zap".into(),
        ],
        env: vec![],
        netns: Some(lab.underlay().name().to_string()),
        mntns: None,
        log: lab.dir().join("logs/etcd-tls.log"),
    }
}

#[test]
fn control_talks_to_etcd_over_tls() {
    if !privileged::require("auth_etcd_tls", &["ip", "etcd", "curl"]) {
        return;
    }
    let lab = Lab::builder()
        .nodes(1)
        .etcd(false)
        .build()
        .expect("build lab");
    let ip = lab.underlay_ip();
    let url = format!("https://{ip}:2379");
    let etcd_pki = Layout::new(lab.dir().join("etcd-pki"));
    pki::init(&InitOptions {
        dir: etcd_pki.dir().to_path_buf(),
        server: url.clone(),
        sans: vec![],
        nodes: vec![],
        service_cidr: "10.96.0.0/12".parse().unwrap(),
    })
    .expect("etcd certificates");
    let mut etcd = Daemon::start(etcd_spec(&lab, &etcd_pki, &url)).expect("start etcd");
    let mut health = lab.underlay().command("curl").unwrap();
    health
        .args(["-sf", "--max-time", "2", "--cacert"])
        .arg(etcd_pki.ca_cert())
        .arg("--cert")
        .arg(etcd_pki.client_cert("admin"))
        .arg("--key")
        .arg(etcd_pki.client_key("admin"))
        .arg(format!("{url}/health"));
    etcd.wait_ready(Duration::from_secs(30), || {
        health.output().is_ok_and(|o| o.status.success())
    })
    .expect("etcd over TLS healthy");

    let tls_flags = |with_identity: bool| {
        let mut f = vec![format!("--etcd-cafile={}", etcd_pki.ca_cert().display())];
        if with_identity {
            f.push(format!(
                "--etcd-certfile={}",
                etcd_pki.client_cert("admin").display()
            ));
            f.push(format!(
                "--etcd-keyfile={}",
                etcd_pki.client_key("admin").display()
            ));
        }
        f
    };
    // Ready means an etcd status call over TLS with our client certificate worked.
    let cp = ControlPlane::start_with(&lab, &url, &tls_flags(true))
        .unwrap_or_else(|e| panic!("capstan-control with etcd over TLS: {e}"));
    drop(cp);

    // Without a client certificate etcd refuses us: the server runs, but
    // /readyz names etcd as failing.
    let pki_dir = capstan_lab::control::pki_dir(&lab.dir());
    let program = capstan_lab::bins::path("capstan-control").unwrap();
    let mut args = capstan_lab::control::serve_args(&pki_dir, ip, &url);
    args.extend(tls_flags(false));
    let mut server = Daemon::start(DaemonSpec {
        name: "control-no-identity".into(),
        program: program.clone(),
        args,
        env: vec![],
        netns: Some(lab.underlay().name().to_string()),
        mntns: None,
        log: lab.dir().join("logs/control-no-identity.log"),
    })
    .unwrap();
    let mut readyz = lab.underlay().command("curl").unwrap();
    readyz
        .args(["-s", "--max-time", "5", "--cacert"])
        .arg(pki_dir.join("ca.crt"))
        .arg(format!(
            "https://{ip}:{}/readyz?verbose",
            capstan_lab::control::PORT
        ));
    let mut answer = String::new();
    server
        .wait_ready(Duration::from_secs(30), || match readyz.output() {
            Ok(o) if !o.stdout.is_empty() => {
                answer = String::from_utf8_lossy(&o.stdout).into_owned();
                true
            }
            _ => false,
        })
        .unwrap_or_else(|e| panic!("no answer on /readyz: {e}"));
    assert!(answer.contains("[-]etcd failed"), "{answer}");
    server.stop(Duration::from_secs(5));

    // TLS flags with a plain endpoint: a one-line error at start.
    let out = Command::new(program)
        .arg(format!("--pki-dir={}", pki_dir.display()))
        .arg("--etcd-endpoints=http://127.0.0.1:1")
        .args(tls_flags(true))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is not https://"), "{stderr}");
    etcd.stop(Duration::from_secs(5));
}
