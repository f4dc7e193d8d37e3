//! The pods a latency benchmark talks between: network namespaces (named
//! with the lab's prefix, so the lab removes them) running the test server,
//! built either by hand as flannel's vxlan backend would program the kernel
//! (the reference), or by capstan-agent's overlay plus capstan-cni.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::daemon::Daemon;
use crate::netns::Netns;
use crate::veth::Veth;
use crate::{cmd, Lab, LabError};

pub const TCP_ECHO_PORT: u16 = 5201;
pub const UDP_ECHO_PORT: u16 = 5202;
pub const TCP_SINK_PORT: u16 = 5203;
/// VXLAN overhead on a 1500-byte underlay, as flannel computes the pod MTU.
const POD_MTU: &str = "1450";

/// A place a server runs or a client connects from.
pub struct Endpoint {
    pub netns: String,
    pub ip: Ipv4Addr,
}

/// Two pods on node A and one on node B; `a1` is always the client.
pub struct PodSet {
    pub a1: Endpoint,
    pub a2: Endpoint,
    pub b1: Endpoint,
}

fn ip(ns: &str, args: &[&str]) -> Result<(), LabError> {
    cmd::run(Command::new("ip").args(["-n", ns]).args(args)).map(|_| ())
}

fn sysctl(ns: &str, key: &str, value: &str) -> Result<(), LabError> {
    cmd::run(
        Netns::existing(ns)?
            .command("sysctl")?
            .args(["-qw", &format!("{key}={value}")]),
    )
    .map(|_| ())
}

fn link_mac(ns: &str, dev: &str) -> Result<String, LabError> {
    let out = cmd::stdout(Command::new("ip").args(["-n", ns, "-j", "link", "show", dev]))?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| LabError::Other(format!("ip -j link: {e}")))?;
    v[0]["address"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| LabError::Other(format!("no MAC for {dev} in {ns}")))
}

/// The flannel-style reference, kernel features only: bridge `cni0`, a veth
/// per pod, VXLAN device `flannel.2` (VNI 2, port 8473, so it can sit beside
/// Capstan's on the same nodes), and per peer one route, one permanent
/// neighbour and one FDB entry.
pub fn reference(lab: &Lab) -> Result<PodSet, LabError> {
    let prefix = lab.prefix();
    let nodes = [lab.node(0), lab.node(1)];
    let mut macs = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let ns = node.netns_name();
        let n = i + 1;
        ip(ns, &["link", "add", "cni0", "type", "bridge"])?;
        ip(
            ns,
            &["addr", "add", &format!("10.245.{n}.1/24"), "dev", "cni0"],
        )?;
        ip(ns, &["link", "set", "cni0", "mtu", POD_MTU, "up"])?;
        sysctl(ns, "net.ipv4.ip_forward", "1")?;
        ip(
            ns,
            &[
                "link",
                "add",
                "flannel.2",
                "type",
                "vxlan",
                "id",
                "2",
                "local",
                &node.ip().to_string(),
                "dev",
                "eth0",
                "dstport",
                "8473",
                "nolearning",
            ],
        )?;
        ip(ns, &["link", "set", "flannel.2", "up"])?;
        ip(
            ns,
            &[
                "addr",
                "add",
                &format!("10.245.{n}.0/32"),
                "dev",
                "flannel.2",
            ],
        )?;
        macs.push(link_mac(ns, "flannel.2")?);
    }
    for (i, node) in nodes.iter().enumerate() {
        let j = 1 - i;
        let ns = node.netns_name();
        let peer = j + 1;
        ip(
            ns,
            &[
                "route",
                "add",
                &format!("10.245.{peer}.0/24"),
                "via",
                &format!("10.245.{peer}.0"),
                "dev",
                "flannel.2",
                "onlink",
            ],
        )?;
        ip(
            ns,
            &[
                "neigh",
                "add",
                &format!("10.245.{peer}.0"),
                "lladdr",
                &macs[j],
                "dev",
                "flannel.2",
                "nud",
                "permanent",
            ],
        )?;
        cmd::run(Command::new("bridge").args([
            "-n",
            ns,
            "fdb",
            "add",
            &macs[j],
            "dev",
            "flannel.2",
            "dst",
            &nodes[j].ip().to_string(),
        ]))?;
    }
    let pod = |node: usize, name: &str, host: u8| -> Result<Endpoint, LabError> {
        let netns = format!("{prefix}-ref-{name}");
        Netns::create(&netns)?.keep();
        let ns = nodes[node].netns_name();
        let n = node + 1;
        let addr = Ipv4Addr::new(10, 245, n as u8, host);
        Veth::new(ns, &format!("vref{name}"), &netns)
            .mtu(POD_MTU)
            .bridge("cni0")
            .addr(format!("{addr}/24"))
            .gateway(Ipv4Addr::new(10, 245, n as u8, 1))
            .create()?;
        Ok(Endpoint { netns, ip: addr })
    };
    Ok(PodSet {
        a1: pod(0, "a1", 2)?,
        a2: pod(0, "a2", 3)?,
        b1: pod(1, "b1", 2)?,
    })
}

/// Capstan: the overlay config in etcd, `capstan-agent --components overlay`
/// on both nodes, and pods made by `capstan-cni` ADD. Returns the pods and
/// the agents (stopped when dropped).
pub fn capstan(lab: &Lab) -> Result<(PodSet, Vec<Daemon>), LabError> {
    let agent_bin = crate::bins::path("capstan-agent")?;
    let cni_bin = crate::bins::path("capstan-cni")?;
    let config = r#"{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1,"Port":8472}}"#;
    cmd::run(
        lab.node(0)
            .command("etcdctl")?
            .arg(format!("--endpoints={}", lab.etcd_endpoint()))
            .args(["put", "/capstan/network/config", config]),
    )?;
    let nodes = [lab.node(0), lab.node(1)];
    let mut agents = Vec::new();
    for node in &nodes {
        let subnet_file = node.dir().join("run/capstan/subnet.env");
        agents.push(node.spawn(
            "capstan-agent",
            &agent_bin,
            &[
                "--components=overlay".into(),
                format!("--node-name={}", node.name()),
                format!("--etcd-endpoints={}", lab.etcd_endpoint()),
                "--iface=eth0".into(),
                format!("--subnet-file={}", subnet_file.display()),
            ],
        )?);
    }
    // Ready when each node has its subnet file and a route to the other's subnet.
    for (i, agent) in agents.iter_mut().enumerate() {
        let file = nodes[i].dir().join("run/capstan/subnet.env");
        let ns = nodes[i].netns_name().to_string();
        agent.wait_ready(Duration::from_secs(30), || {
            file.exists()
                && cmd::stdout(Command::new("ip").args([
                    "-n",
                    &ns,
                    "route",
                    "show",
                    "dev",
                    "capstan.1",
                ]))
                .is_ok_and(|r| r.contains("10.244."))
        })?;
    }
    let prefix = lab.prefix();
    let pod = |node: usize, name: &str| -> Result<Endpoint, LabError> {
        let netns = format!("{prefix}-cap-{name}");
        Netns::create(&netns)?.keep();
        let n = &nodes[node];
        let ip = cni_add(&cni_bin, n.netns_name(), n.dir(), &netns, name)?;
        Ok(Endpoint { netns, ip })
    };
    let pods = PodSet {
        a1: pod(0, "a1")?,
        a2: pod(0, "a2")?,
        b1: pod(1, "b1")?,
    };
    Ok((pods, agents))
}

/// One CNI ADD of capstan-cni, run in the node's namespace; the pod's IPv4.
fn cni_add(
    bin: &Path,
    node_ns: &str,
    node_dir: &Path,
    pod_ns: &str,
    id: &str,
) -> Result<Ipv4Addr, LabError> {
    use std::io::Write;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "capstan",
        "type": "capstan",
        "subnetFile": node_dir.join("run/capstan/subnet.env"),
        "dataDir": node_dir.join("var/lib/cni/networks"),
    });
    let mut child = Netns::existing(node_ns)?
        .command(bin)?
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", format!("bench-{id}"))
        .env("CNI_NETNS", format!("/run/netns/{pod_ns}"))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", bin.parent().unwrap_or(Path::new("/")))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(LabError::io("run capstan-cni"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(conf.to_string().as_bytes())
            .map_err(LabError::io("write CNI config"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(LabError::io("wait for capstan-cni"))?;
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        LabError::Other(format!(
            "capstan-cni ADD answered non-JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    })?;
    if !out.status.success() {
        return Err(LabError::Other(format!("capstan-cni ADD failed: {result}")));
    }
    result["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| LabError::Other(format!("capstan-cni ADD result has no IPv4: {result}")))
}

/// Starts the test server (echo, UDP echo, sink) in `ep`, pinned to `cpu`,
/// and waits until it accepts connections.
pub fn start_server(lab_node: &crate::Node, ep: &Endpoint, cpu: usize) -> Result<Daemon, LabError> {
    let bin = crate::bins::path("capstan-testsrv")?;
    let mut d = Daemon::start(crate::daemon::DaemonSpec {
        name: format!("testsrv-{}", ep.netns),
        program: bin,
        args: vec![
            "serve".into(),
            format!("--tcp-echo=0.0.0.0:{TCP_ECHO_PORT}"),
            format!("--udp-echo=0.0.0.0:{UDP_ECHO_PORT}"),
            format!("--tcp-sink=0.0.0.0:{TCP_SINK_PORT}"),
            format!("--cpu={cpu}"),
        ],
        env: vec![],
        netns: Some(ep.netns.clone()),
        mntns: None,
        log: lab_node
            .dir()
            .join(format!("logs/testsrv-{}.log", ep.netns)),
    })?;
    let ns = Netns::existing(&ep.netns)?;
    let addr = std::net::SocketAddr::from((ep.ip, TCP_ECHO_PORT));
    d.wait_ready(Duration::from_secs(10), || {
        ns.run_in(move || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
        .unwrap_or(false)
    })?;
    Ok(d)
}
