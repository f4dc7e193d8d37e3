//! Shared helpers of the overlay lab suites: agents, etcdctl, kernel
//! inspection inside node namespaces, pods made with capstan-cni, echo
//! servers and clients running inside pod namespaces.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use capstan_lab::daemon::Daemon;
pub use capstan_lab::wait::wait_until;
use capstan_lab::{cmd, Lab, Netns};
use libtest_mimic::Failed;

pub const ECHO_PORT: u16 = 7777;

/// The agent binary: `CAPSTAN_BIN_DIR`'s when set (the target directory may
/// be shared and rebuilt by others while a suite runs), else cargo's.
pub fn agent_bin() -> PathBuf {
    capstan_lab::bins::path("capstan-agent")
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_BIN_EXE_capstan-agent")))
}

/// The capstan-cni binary; a missing one stops the suite with the command
/// that builds it.
pub fn cni_bin() -> PathBuf {
    capstan_lab::bins::path("capstan-cni")
        .unwrap_or_else(|e| panic!("{e}; build it first: cargo build -p capstan-cni"))
}

pub struct Pod {
    pub ns: Netns,
    pub ip: Ipv4Addr,
    /// Dual-stack pods also have an IPv6 address.
    pub ip6: Option<Ipv6Addr>,
}

pub fn subnet_file(lab: &Lab, i: usize) -> PathBuf {
    lab.node(i).dir().join("run/capstan/subnet.env")
}

pub fn agent_args(lab: &Lab, i: usize, extra: &[&str]) -> Vec<String> {
    let n = lab.node(i);
    let mut v: Vec<String> = vec![
        "--node-name".into(),
        n.name().into(),
        "--etcd-endpoints".into(),
        lab.etcd_endpoint(),
        "--components".into(),
        "overlay".into(),
        "--subnet-file".into(),
        subnet_file(lab, i).display().to_string(),
        "--lease-ttl".into(),
        "60".into(),
        "--resync-interval".into(),
        "5".into(),
    ];
    if !extra.contains(&"--iface") {
        v.extend(["--iface".to_string(), "eth0".to_string()]);
    }
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

pub fn spawn_agent(lab: &Lab, i: usize, extra: &[&str]) -> Daemon {
    lab.node(i)
        .spawn("overlay", &agent_bin(), &agent_args(lab, i, extra))
        .expect("spawn agent")
}

pub fn agent_log(lab: &Lab, i: usize) -> String {
    std::fs::read_to_string(lab.node(i).dir().join("logs/overlay.log")).unwrap_or_default()
}

pub fn etcdctl(lab: &Lab, args: &[&str]) -> String {
    cmd::stdout(
        lab.node(0)
            .command("etcdctl")
            .expect("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", lab.etcd_endpoint()))
            .args(args),
    )
    .unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}"))
}

pub fn ip_in(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .expect("run ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn fdb_in(ns: &str, dev: &str) -> String {
    let out = Command::new("bridge")
        .args(["-n", ns, "fdb", "show", "dev", dev])
        .output()
        .expect("run bridge");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn check(cond: bool, msg: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(msg.into().into())
    }
}

/// The node's subnet from its subnet file (10.244.X.0/24).
pub fn node_subnet(lab: &Lab, i: usize) -> Option<ipnetwork::Ipv4Network> {
    let text = std::fs::read_to_string(subnet_file(lab, i)).ok()?;
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix("CAPSTAN_SUBNET="))?;
    let n: ipnetwork::Ipv4Network = v.parse().ok()?;
    ipnetwork::Ipv4Network::new(n.network(), n.prefix()).ok()
}

/// The node's IPv6 subnet from its subnet file (`fd00:10:244:X::1/64`).
pub fn node_subnet6(lab: &Lab, i: usize) -> Option<ipnetwork::Ipv6Network> {
    let text = std::fs::read_to_string(subnet_file(lab, i)).ok()?;
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix("CAPSTAN_IPV6_SUBNET="))?;
    let n: ipnetwork::Ipv6Network = v.parse().ok()?;
    ipnetwork::Ipv6Network::new(n.network(), n.prefix()).ok()
}

/// Node namespace `ns` has the v6 route and neighbour for node `j`.
pub fn has_peer6(lab: &Lab, ns: &str, j: usize) -> bool {
    let Some(s6) = node_subnet6(lab, j) else {
        return false;
    };
    let vtep = s6.network().to_string();
    let routes = ip_in(ns, &["-6", "route", "show", "proto", "67"]);
    let neigh = ip_in(ns, &["-6", "neigh", "show", "dev", "capstan.1"]);
    routes.contains(&format!("{s6} via {vtep} dev capstan.1"))
        && neigh
            .lines()
            .any(|l| l.starts_with(&format!("{vtep} lladdr")) && l.contains("PERMANENT"))
}

/// Node `i` has route + neighbour + FDB entry for every other node.
pub fn meshed(lab: &Lab, i: usize) -> bool {
    let nodes = lab.nodes().len();
    let ns = lab.node(i).netns_name().to_string();
    (0..nodes)
        .filter(|j| *j != i)
        .all(|j| has_peer(lab, &ns, j))
}

pub fn has_peer(lab: &Lab, ns: &str, j: usize) -> bool {
    let Some(s) = node_subnet(lab, j) else {
        return false;
    };
    let routes = ip_in(ns, &["route", "show", "proto", "67"]);
    let neigh = ip_in(ns, &["neigh", "show", "dev", "capstan.1"]);
    let fdb = fdb_in(ns, "capstan.1");
    let vtep = s.network().to_string();
    routes.contains(&format!("{s} via {vtep} dev capstan.1 onlink"))
        && neigh.contains(&format!("{vtep} lladdr"))
        && neigh.contains("PERMANENT")
        && fdb.contains(&format!("dst {}", lab.node(j).ip()))
}

pub fn lacks_peer(lab: &Lab, ns: &str, subnet: ipnetwork::Ipv4Network, peer_ip: Ipv4Addr) -> bool {
    let routes = ip_in(ns, &["route", "show", "proto", "67"]);
    let neigh = ip_in(ns, &["neigh", "show", "dev", "capstan.1"]);
    let fdb = fdb_in(ns, "capstan.1");
    let _ = lab;
    !routes.contains(&subnet.to_string())
        && !neigh.contains(&format!("{} ", subnet.network()))
        && !fdb.contains(&format!("dst {peer_ip}"))
}

/// A pod in node `i`, made by capstan-cni ADD.
pub fn make_pod(lab: &Lab, cni: &Path, i: usize) -> Pod {
    let node = lab.node(i);
    let name = format!("{}-pod{i}", lab.prefix());
    let ns = Netns::create(&name).expect("pod netns");
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "capstan",
        "type": "capstan-cni",
        "subnetFile": subnet_file(lab, i),
        "dataDir": node.dir().join("var/lib/cni/networks"),
    });
    let mut c = node.command(cni).expect("cni command");
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", format!("overlay-pod-{i}"))
        .env("CNI_NETNS", ns.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn capstan-cni");
    if let Some(mut w) = child.stdin.take() {
        let _ = w.write_all(conf.to_string().as_bytes());
    }
    let out = child.wait_with_output().expect("capstan-cni");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "capstan-cni ADD on node {i}: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("CNI result JSON");
    let ips: Vec<IpAddr> = v["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["address"].as_str()?.split('/').next()?.parse().ok())
        .collect();
    let ip = ips
        .iter()
        .find_map(|i| match i {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .expect("pod IPv4 address");
    let ip6 = ips.iter().find_map(|i| match i {
        IpAddr::V6(a) => Some(*a),
        IpAddr::V4(_) => None,
    });
    Pod { ns, ip, ip6 }
}

/// TCP and UDP echo servers inside the pod (sockets bound in its netns).
pub fn start_echo(p: &Pod) {
    // `[::]` takes IPv4 too (bindv6only is 0 in a fresh netns).
    let any: IpAddr = if p.ip6.is_some() {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let (tcp, udp) =
        p.ns.run_in(move || {
            let any = SocketAddr::from((any, ECHO_PORT));
            (TcpListener::bind(any), UdpSocket::bind(any))
        })
        .expect("enter pod netns");
    let tcp = tcp.expect("bind tcp echo");
    let udp = udp.expect("bind udp echo");
    std::thread::spawn(move || {
        for mut c in tcp.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], from);
        }
    });
}

pub fn tcp_echo(from: &Pod, to: impl Into<IpAddr>) -> Result<(), String> {
    let to: IpAddr = to.into();
    from.ns
        .run_in(move || -> Result<(), String> {
            let addr = SocketAddr::from((to, ECHO_PORT));
            let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                .map_err(|e| format!("tcp connect {addr}: {e}"))?;
            c.set_read_timeout(Some(Duration::from_secs(3))).ok();
            let msg = format!("hello {to}");
            c.write_all(msg.as_bytes()).map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; msg.len()];
            c.read_exact(&mut buf)
                .map_err(|e| format!("tcp read {addr}: {e}"))?;
            (buf == msg.as_bytes())
                .then_some(())
                .ok_or("tcp echo mismatch".into())
        })
        .map_err(|e| e.to_string())?
}

pub fn udp_echo(from: &Pod, to: impl Into<IpAddr>) -> Result<(), String> {
    let to: IpAddr = to.into();
    from.ns
        .run_in(move || -> Result<(), String> {
            let local = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
            let s = UdpSocket::bind(local).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(1))).ok();
            let addr = SocketAddr::from((to, ECHO_PORT));
            let msg = format!("dgram {to}");
            for _ in 0..3 {
                s.send_to(msg.as_bytes(), addr).map_err(|e| e.to_string())?;
                let mut buf = [0u8; 512];
                if let Ok((n, _)) = s.recv_from(&mut buf) {
                    return (buf[..n] == *msg.as_bytes())
                        .then_some(())
                        .ok_or("udp echo mismatch".into());
                }
            }
            Err(format!("no udp echo from {addr}"))
        })
        .map_err(|e| e.to_string())?
}

/// Runs an async block on a current-thread runtime inside node `i`'s netns.
pub fn in_node<T: Send + 'static>(
    lab: &Lab,
    i: usize,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    lab.node(i)
        .netns()
        .run_in(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(f())
        })
        .expect("enter node netns")
}

/// Runs the agent with `extra` args to completion (it must exit within 20 s).
pub fn agent_exit(lab: &Lab, i: usize, extra: &[&str], subnet_file_path: &Path) -> (bool, String) {
    let mut args = agent_args(lab, i, extra);
    if let Some(p) = args.iter().position(|a| a == "--subnet-file") {
        args[p + 1] = subnet_file_path.display().to_string();
    }
    let mut c = lab.node(i).command(agent_bin()).expect("agent cmd");
    c.args(&args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn agent");
    let exited = wait_until("the agent to exit", Duration::from_secs(20), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if exited.is_err() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("agent output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
