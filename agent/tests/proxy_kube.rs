//! `capstan-agent --components proxy` against the real capstan-control API
//! server: Services and EndpointSlices created with kubectl reach the
//! node's nftables through the kube-rs watchers, with real traffic; the
//! rules outlive the agent. Ignored until the capstan-control binary serves
//! the REST API (its router is still empty; the in-process API server is
//! tested in control/tests/api_server.rs).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use capstan_lab::control::ControlPlane;
use capstan_lab::veth::Veth;
use capstan_lab::{privileged, Lab, Netns};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kubectl_apply(cp: &ControlPlane, yaml: &str) {
    cp.kubectl_run(&["apply", "--validate=false", "-f", "-"], Some(yaml))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `kubectl ARGS` that must succeed: its stdout.
fn kubectl(cp: &ControlPlane, args: &[&str]) -> String {
    cp.kubectl_run(args, None).unwrap_or_else(|e| panic!("{e}"))
}

/// Connects from `ns` and reads the one-line answer.
fn request(ns: &Netns, to: SocketAddr) -> std::io::Result<String> {
    ns.run_in(move || {
        let s = TcpStream::connect_timeout(&to, Duration::from_millis(500))?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line.trim().to_string())
    })
    .map_err(|e| std::io::Error::other(e.to_string()))?
}

/// `GET path` on `port` of the node's loopback: status line and body.
fn http_get(ns: &Netns, port: u16, path: &str) -> std::io::Result<(String, String)> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    ns.run_in(move || {
        let mut s = TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            Duration::from_millis(500),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(request.as_bytes())?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut s, &mut text)?;
        let status = text.lines().next().unwrap_or_default().to_string();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    })
    .map_err(|e| std::io::Error::other(e.to_string()))?
}

fn wait_until(what: &str, within: Duration, f: impl FnMut() -> bool) {
    capstan_lab::wait::wait_until(what, within, f).unwrap_or_else(|e| panic!("{e}"));
}

const METRICS_PORT: u16 = 9464;
/// The agent's default --healthz-addr port (0.0.0.0), as the DaemonSet's probes use it.
const HEALTHZ_PORT: u16 = 10256;

#[test]
fn proxy_component_follows_the_api_server() {
    if !privileged::require(
        "proxy_kube",
        &["ip", "nft", "conntrack", "etcd", "kubectl", "curl"],
    ) {
        return;
    }
    let agent_bin = capstan_lab::bins::path("capstan-agent").expect("capstan-agent built");
    let lab = Lab::builder()
        .nodes(1)
        .etcd(true)
        .containerd(false)
        .build()
        .expect("lab");
    let cp = ControlPlane::start(&lab).expect("control plane");
    let node = lab.node(0);
    let ns = node.netns_name().to_string();
    let ip = |args: &[&str]| run(Command::new("ip").args(["-n", &ns]).args(args));
    ip(&["link", "add", "cbr0", "type", "bridge"]);
    ip(&["addr", "add", "10.246.1.1/24", "dev", "cbr0"]);
    ip(&["link", "set", "cbr0", "up"]);
    run(node
        .command("sysctl")
        .expect("sysctl")
        .args(["-qw", "net.ipv4.ip_forward=1"]));
    let pod_name = format!("{}-p-web", lab.prefix());
    let pod = Netns::create(&pod_name).expect("pod netns");
    Veth::new(&ns, "vweb", &pod_name)
        .bridge("cbr0")
        .addr("10.246.1.5/24")
        .gateway(Ipv4Addr::new(10, 246, 1, 1))
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let listener = pod
        .run_in(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, 8080)))
        .expect("netns")
        .expect("bind");
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let _ = writeln!(c, "web");
        }
    });

    let mut agent = node
        .spawn(
            "capstan-agent",
            &agent_bin,
            &[
                "--components=proxy".into(),
                format!("--node-name={}", node.name()),
                format!("--kubeconfig={}", cp.admin_kubeconfig().display()),
                "--cluster-cidr=10.246.0.0/16".into(),
                format!("--metrics-addr=127.0.0.1:{METRICS_PORT}"),
            ],
        )
        .expect("agent");

    kubectl_apply(
        &cp,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: default\nspec:\n  ports:\n  - name: http\n    port: 80\n    protocol: TCP\n",
    );
    let cluster_ip: Ipv4Addr = kubectl(
        &cp,
        &["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"],
    )
    .trim()
    .parse()
    .expect("service has a ClusterIP");
    kubectl_apply(
        &cp,
        &format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n  namespace: default\n  labels:\n    kubernetes.io/service-name: web\naddressType: IPv4\nendpoints:\n- addresses: [\"10.246.1.5\"]\n  nodeName: {}\nports:\n- name: http\n  port: 8080\n  protocol: TCP\n",
            node.name()
        ),
    );
    let node_ns = Netns::existing(&ns).expect("node netns");
    let to = SocketAddr::from((cluster_ip, 80));
    wait_until("the ClusterIP to answer", Duration::from_secs(20), || {
        request(&node_ns, to).is_ok_and(|a| a == "web")
    });

    // The API server's own `default/kubernetes` Service (10.96.0.1:443 to
    // the secure port) is routed too: the answer comes from our server
    // (its certificate, signed by the lab's CA, names 10.96.0.1).
    wait_until(
        "https://10.96.0.1/readyz to answer from the API server",
        Duration::from_secs(30),
        || {
            node.command("curl")
                .map(|mut c| {
                    c.args(["-s", "--max-time", "2", "--cacert"])
                        .arg(cp.ca_cert())
                        .arg("https://10.96.0.1/readyz");
                    c.output()
                        .is_ok_and(|o| o.status.success() && o.stdout == b"ok")
                })
                .unwrap_or(false)
        },
    );

    // The proxy has synced: it says so on the health endpoint, and its
    // metrics are served on --metrics-addr beside the rest of the agent's.
    // (The rules are in before the runner marks the sync done: poll.)
    wait_until(
        "/readyz to say the proxy is ready",
        Duration::from_secs(10),
        || {
            http_get(&node_ns, HEALTHZ_PORT, "/readyz").is_ok_and(|(status, body)| {
                status.contains(" 200 ") && body.contains("proxy: ready")
            })
        },
    );
    let (status, body) = http_get(&node_ns, HEALTHZ_PORT, "/healthz").expect("GET /healthz");
    assert!(status.contains(" 200 "), "{status}\n{body}");
    let (status, metrics) = http_get(&node_ns, METRICS_PORT, "/metrics").expect("GET /metrics");
    assert!(status.contains(" 200 "), "{status}\n{metrics}");
    let full_syncs = metrics
        .lines()
        .find_map(|l| l.strip_prefix("capstan_proxy_sync_duration_seconds_count{kind=\"full\"} "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let services = metrics
        .lines()
        .find_map(|l| l.strip_prefix("capstan_proxy_services "))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    assert!(full_syncs >= 1 && services >= 1, "{metrics}");
    assert!(
        metrics.contains("capstan_proxy_sync_failures_total"),
        "{metrics}"
    );

    // The endpoint goes away: the service rejects instead of black-holing.
    kubectl(&cp, &["delete", "endpointslice", "web-1"]);
    wait_until(
        "the ClusterIP to reject",
        Duration::from_secs(20),
        || matches!(request(&node_ns, to), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
    );

    // Stopping the agent leaves the rules in place.
    agent.stop(Duration::from_secs(5));
    let table =
        run(node
            .command("nft")
            .expect("nft")
            .args(["list", "table", "ip", "capstan-proxy"]));
    assert!(table.contains("no-endpoint-services"), "{table}");
    assert!(
        matches!(request(&node_ns, to), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    );
    drop(cp);
}
