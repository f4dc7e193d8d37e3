//! A cluster of N "nodes" on one machine: each node a network namespace
//! wired to an underlay bridge that lives in a namespace of its own, and a
//! mount namespace in which its node-local paths are its own (`mntns.rs`),
//! with real etcd and a real containerd per node. Nodes can be added to a
//! running lab. The host's own namespace is
//! never touched. Everything made is recorded in the lab's state before it
//! is made, and removed on drop (also while unwinding from a panic) or by a
//! later lab after a crash.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::daemon::{Daemon, DaemonSpec};
use crate::netns::Netns;
use crate::state::{base_dir, DaemonRecord, LabState, NodeState};
use crate::{cmd, containerd, etcd, image, mntns, sweep, LabError};

/// Underlay addressing: the bridge (and etcd) at .1, node i at .(10+i).
const UNDERLAY_NET: [u8; 3] = [192, 168, 250];
const UNDERLAY_PREFIX_LEN: u8 = 24;
const UNDERLAY_BRIDGE: &str = "lab0";

/// Per-node directories: the node's /run/capstan, /etc/cni/net.d, ...
/// (bound onto those paths in the node's mount namespace, see
/// `mntns::NODE_PATHS`; components may also be given them as flags).
pub const NODE_SUBDIRS: &[&str] = &[
    "run/capstan",
    "run/containerd",
    "etc/cni/net.d",
    "opt/cni/bin",
    "var/lib/cni",
    "var/lib/capstan",
    "var/log/pods",
    "netns",
    "logs",
];

/// The recorded shape of node `i` (1-based) of lab `prefix` in `dir`.
fn node_state(prefix: &str, dir: &Path, i: usize) -> Result<NodeState, LabError> {
    let host = u8::try_from(10 + i)
        .ok()
        .filter(|h| *h < 255)
        .ok_or_else(|| LabError::Other(format!("a lab holds at most 244 nodes, not {i}")))?;
    let name = format!("node-{i}");
    Ok(NodeState {
        netns: format!("{prefix}-{name}"),
        ip: Ipv4Addr::new(UNDERLAY_NET[0], UNDERLAY_NET[1], UNDERLAY_NET[2], host),
        dir: dir.join(&name),
        mntns: Some(mntns::dir(dir).join(&name)),
        name,
    })
}

pub struct LabBuilder {
    name: Option<String>,
    nodes: usize,
    etcd: bool,
    containerd: bool,
    image: bool,
    persistent: bool,
}

impl LabBuilder {
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }
    pub fn etcd(mut self, on: bool) -> Self {
        self.etcd = on;
        self
    }
    /// Starts a containerd in every node (and imports the test image).
    pub fn containerd(mut self, on: bool) -> Self {
        self.containerd = on;
        self
    }
    /// Imports the test image into every node's containerd (default: on
    /// when containerd is on).
    pub fn image(mut self, on: bool) -> Self {
        self.image = on;
        self
    }
    /// A fixed name (the local cluster) instead of a random one; the lab
    /// then outlives this process until `Lab::destroy(name)`.
    pub fn persistent(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self.persistent = true;
        self
    }

    pub fn build(self) -> Result<Lab, LabError> {
        sweep_crashed_labs();
        let prefix = self.name.clone().unwrap_or_else(random_prefix);
        let dir = base_dir().join(&prefix);
        if self.persistent && LabState::path(&dir).exists() {
            return Err(LabError::Other(format!(
                "a lab named {prefix} already exists ({}); take it down first",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir.join("logs")).map_err(LabError::io("create lab dir"))?;
        let owner = (!self.persistent).then(|| {
            let me = std::process::id();
            (me, sweep::process_start_time(me).unwrap_or(0))
        });
        let nodes = (1..=self.nodes)
            .map(|i| node_state(&prefix, &dir, i))
            .collect::<Result<_, _>>()?;
        let state = LabState {
            underlay_netns: format!("{prefix}-lab"),
            underlay_ip: Ipv4Addr::new(UNDERLAY_NET[0], UNDERLAY_NET[1], UNDERLAY_NET[2], 1),
            cgroup_root: format!("capstan-lab/{prefix}"),
            prefix,
            dir,
            persistent: self.persistent,
            owner,
            nodes,
            daemons: Vec::new(),
        };
        // Recorded before anything exists, so a crash mid-build is swept too.
        state.save()?;
        let mut lab = Lab {
            state: Mutex::new(state),
            etcd: Mutex::new(None),
            containerds: Mutex::new(Vec::new()),
            persistent: self.persistent,
        };
        lab.make_network()?;
        if self.etcd {
            lab.etcd_start()?;
        }
        if self.containerd {
            lab.start_containerds(self.image)?;
        }
        lab.save()?;
        Ok(lab)
    }
}

/// A running lab. Dropping it removes everything it made, unless it is
/// persistent (then `Lab::destroy` does).
pub struct Lab {
    state: Mutex<LabState>,
    etcd: Mutex<Option<Daemon>>,
    containerds: Mutex<Vec<Daemon>>,
    persistent: bool,
}

/// A node of a lab, as seen by tests.
#[derive(Clone, Debug)]
pub struct Node {
    state: NodeState,
}

impl Node {
    pub fn name(&self) -> &str {
        &self.state.name
    }
    /// The node's network namespace (not owned: the lab deletes it).
    pub fn netns(&self) -> Netns {
        Netns::existing(&self.state.netns)
            .unwrap_or_else(|_| panic!("netns {} of a live lab vanished", self.state.netns))
    }
    pub fn netns_name(&self) -> &str {
        &self.state.netns
    }
    /// Underlay address, on the node's `eth0`.
    pub fn ip(&self) -> Ipv4Addr {
        self.state.ip
    }
    /// The node's private directory; `NODE_SUBDIRS` exist below it.
    pub fn dir(&self) -> &Path {
        &self.state.dir
    }
    pub fn containerd_socket(&self) -> PathBuf {
        containerd::socket(&self.state.dir)
    }
    /// `ctr` talking to this node's containerd.
    pub fn ctr(&self) -> Result<Command, LabError> {
        containerd::ctr(&self.state)
    }
    /// The node's mount namespace file (None only in labs recorded
    /// before nodes had one).
    pub fn mntns(&self) -> Option<&Path> {
        self.state.mntns.as_deref()
    }
    /// A command run inside this node: its network and mount namespaces.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Result<Command, LabError> {
        node_command(&self.state, program)
    }
    /// Starts a daemon inside this node, logging to `logs/<name>.log`;
    /// stopped when the returned handle drops (and swept with the lab).
    pub fn spawn(&self, name: &str, program: &Path, args: &[String]) -> Result<Daemon, LabError> {
        Daemon::start(DaemonSpec {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: args.to_vec(),
            env: vec![],
            netns: Some(self.state.netns.clone()),
            mntns: self.state.mntns.clone(),
            log: self.state.dir.join(format!("logs/{name}.log")),
        })
    }
}

impl Lab {
    /// A lab with a random unique name, for tests.
    pub fn builder() -> LabBuilder {
        LabBuilder {
            name: None,
            nodes: 1,
            etcd: false,
            containerd: false,
            image: true,
            persistent: false,
        }
    }

    pub fn prefix(&self) -> String {
        self.lock().prefix.clone()
    }
    pub fn dir(&self) -> PathBuf {
        self.lock().dir.clone()
    }
    pub fn state(&self) -> LabState {
        self.lock().clone()
    }
    pub fn nodes(&self) -> Vec<Node> {
        self.lock()
            .nodes
            .iter()
            .map(|n| Node { state: n.clone() })
            .collect()
    }
    /// Node by 0-based index.
    pub fn node(&self, i: usize) -> Node {
        Node {
            state: self.lock().nodes[i].clone(),
        }
    }
    /// The underlay namespace: outside every node, as an external client.
    pub fn underlay(&self) -> Netns {
        let name = self.lock().underlay_netns.clone();
        Netns::existing(&name).unwrap_or_else(|_| panic!("underlay netns {name} vanished"))
    }
    pub fn underlay_ip(&self) -> Ipv4Addr {
        self.lock().underlay_ip
    }
    /// etcd's client URL, reachable from every node.
    pub fn etcd_endpoint(&self) -> String {
        format!("http://{}:{}", self.underlay_ip(), etcd::CLIENT_PORT)
    }
    /// Where cgroup paths of this lab's containers must live (below every
    /// hierarchy), so teardown can find and remove them.
    pub fn cgroup_root(&self) -> String {
        self.lock().cgroup_root.clone()
    }

    pub fn etcd_start(&self) -> Result<(), LabError> {
        let (ns, ip, dir) = {
            let s = self.lock();
            (s.underlay_netns.clone(), s.underlay_ip, s.dir.clone())
        };
        let d = etcd::start(etcd::spec(&ns, ip, &dir)?, ip)?;
        self.record("lab", &d)?;
        *self.etcd.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
        Ok(())
    }

    /// Stops etcd (its data stays, for outage tests and restarts).
    pub fn etcd_stop(&self) {
        if let Some(mut d) = self.etcd.lock().unwrap_or_else(|e| e.into_inner()).take() {
            d.stop(Duration::from_secs(5));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LabState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self) -> Result<(), LabError> {
        self.lock().save()
    }

    fn record(&self, place: &str, d: &Daemon) -> Result<(), LabError> {
        let mut s = self.lock();
        s.daemons
            .retain(|r| !(r.place == place && r.spec.name == d.spec().name));
        s.daemons.push(DaemonRecord {
            place: place.to_string(),
            spec: d.spec().clone(),
            pid: d.pid(),
        });
        s.save()
    }

    fn make_network(&mut self) -> Result<(), LabError> {
        let s = self.lock().clone();
        mntns::prepare_dir(&s.dir)?;
        let ul = &s.underlay_netns;
        Netns::create(ul)?.keep();
        let ip = |args: &[&str]| cmd::run(Command::new("ip").args(["-n", ul]).args(args));
        ip(&["link", "add", UNDERLAY_BRIDGE, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/{UNDERLAY_PREFIX_LEN}", s.underlay_ip),
            "dev",
            UNDERLAY_BRIDGE,
        ])?;
        ip(&["link", "set", UNDERLAY_BRIDGE, "up"])?;
        for node in &s.nodes {
            make_node(&s, node)?;
        }
        Ok(())
    }

    fn start_containerds(&self, with_image: bool) -> Result<(), LabError> {
        let s = self.lock().clone();
        let archive = with_image.then(test_image).transpose()?;
        for node in &s.nodes {
            let d = start_node_containerd(node, archive.as_deref())?;
            self.record(&node.name, &d)?;
            self.containerds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(d);
        }
        Ok(())
    }

    /// Adds node N+1 to this running lab: namespaces, directories, underlay
    /// link, and (if the lab runs containerd) its containerd with the test
    /// image. Recorded before it is made, like every node.
    pub fn add_node(&self) -> Result<Node, LabError> {
        let mut s = self.lock().clone();
        let with_containerd = s.daemons.iter().any(|d| d.spec.name == "containerd");
        let result = add_node(&mut s, with_containerd, with_containerd);
        // Whatever was recorded (also on failure) is the lab's now.
        *self.lock() = s;
        let (node, d) = result?;
        if let Some(d) = d {
            self.containerds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(d);
        }
        Ok(Node { state: node })
    }

    /// Leaves a persistent lab running when this handle drops.
    fn release(&mut self) {
        if let Some(d) = self.etcd.get_mut().unwrap_or_else(|e| e.into_inner()) {
            d.keep();
        }
        for d in self
            .containerds
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
        {
            d.keep();
        }
    }

    /// Removes a lab (by name or prefix) from its recorded state.
    pub fn destroy(name: &str) -> Result<(), LabError> {
        let dir = base_dir().join(name);
        match LabState::load(&dir) {
            Ok(state) => {
                teardown(&state);
                Ok(())
            }
            Err(_) if !dir.exists() => {
                // No state: still sweep namespaces a half-made lab may have left.
                for ns in owned_netns(name) {
                    crate::netns::delete(&ns);
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.persistent {
            self.release();
            return;
        }
        let state = self.lock().clone();
        teardown(&state);
        // Reap our own daemons' exit status (teardown killed them).
        self.etcd_stop();
        for mut d in self
            .containerds
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            d.stop(Duration::from_secs(1));
        }
    }
}

/// The namespaces of lab `name` (`<name>-...`), without those of another
/// recorded lab whose name starts with `<name>-` (lab `capstan` must never
/// take `capstan-smoke-node-1`).
pub fn owned_netns(name: &str) -> Vec<String> {
    let others: Vec<String> = std::fs::read_dir(base_dir())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|o| o.len() > name.len() && o.starts_with(&format!("{name}-")))
        .collect();
    crate::netns::list_with_prefix(&format!("{name}-"))
        .into_iter()
        .filter(|ns| !others.iter().any(|o| ns.starts_with(&format!("{o}-"))))
        .collect()
}

/// Removes everything recorded in `state`. Idempotent; never fails (what
/// it cannot remove is left for `leftovers` to report).
pub fn teardown(state: &LabState) {
    for node in &state.nodes {
        let has_containerd = state
            .daemons
            .iter()
            .any(|d| d.place == node.name && d.spec.name == "containerd");
        if has_containerd
            && containerd::socket(&node.dir).exists()
            && Netns::existing(&node.netns).is_ok()
        {
            containerd::remove_all(node);
        }
    }
    let netns_names = owned_netns(&state.prefix);
    let ids: Vec<(u64, u64)> = netns_names
        .iter()
        .filter_map(|n| Netns::existing(n).ok()?.id().ok())
        .collect();
    sweep::kill_lab_processes(&ids, &state.dir);
    sweep::remove_cgroups(&state.cgroup_root);
    // The node mount namespaces die with their files (below the lab dir)
    // once their processes are gone; their own mounts go with them.
    for node in &state.nodes {
        if let Some(m) = &node.mntns {
            mntns::delete(m);
        }
    }
    sweep::unmount_under(&state.dir);
    for ns in netns_names {
        crate::netns::delete(&ns);
    }
    let _ = std::fs::remove_dir_all(&state.dir);
}

/// What is left of a lab after teardown; empty when it cleaned up fully.
pub fn leftovers(state: &LabState) -> Vec<String> {
    let mut left = Vec::new();
    for ns in owned_netns(&state.prefix) {
        left.push(format!("netns {ns}"));
    }
    for pid in sweep::lab_processes(&[], &state.dir) {
        left.push(format!("process {pid}"));
    }
    for d in &state.daemons {
        if crate::daemon::process_alive(d.pid) {
            left.push(format!("{} (pid {})", d.spec.name, d.pid));
        }
    }
    for m in sweep::mounts_under(&state.dir) {
        left.push(format!("mount {m}"));
    }
    if let Ok(roots) = std::fs::read_dir("/sys/fs/cgroup") {
        for root in roots.filter_map(|e| e.ok()) {
            let p = root.path().join(&state.cgroup_root);
            if p.exists() {
                left.push(format!("cgroup {}", p.display()));
            }
        }
    }
    if state.dir.exists() {
        left.push(format!("directory {}", state.dir.display()));
    }
    left
}

/// Tears down non-persistent labs whose owning process is gone (a test run
/// that was killed before its drops ran).
fn sweep_crashed_labs() {
    let Ok(entries) = std::fs::read_dir(base_dir()) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let Ok(state) = LabState::load(&e.path()) else {
            continue;
        };
        if let Some((pid, start)) = state.owner {
            if !state.persistent && !sweep::owner_alive(pid, start) {
                tracing::info!(lab = %state.prefix, "removing lab left by a crashed run");
                teardown(&state);
            }
        }
    }
}

fn random_prefix() -> String {
    format!("cl{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Stops one recorded daemon of a persistent lab and starts it again with
/// the same spec (same data); the new pid is recorded.
pub fn restart_daemon(state: &mut LabState, place: &str, name: &str) -> Result<u32, LabError> {
    let record = state
        .daemons
        .iter_mut()
        .find(|r| r.place == place && r.spec.name == name)
        .ok_or_else(|| LabError::Other(format!("no daemon {name} recorded on {place}")))?;
    crate::daemon::terminate(record.pid, Duration::from_secs(10));
    let mut d = Daemon::start(record.spec.clone())?;
    d.keep();
    record.pid = d.pid();
    let pid = record.pid;
    state.save()?;
    Ok(pid)
}

/// Starts a daemon in a persistent lab and records it (the local cluster's
/// control plane, agents and host-side forwarder are started this way by
/// cluster.sh). `netns` None: the caller's namespace (the host's).
pub fn spawn_recorded(
    state: &mut LabState,
    place: &str,
    netns: Option<&str>,
    name: &str,
    command: &[String],
) -> Result<u32, LabError> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| LabError::Other("empty command".into()))?;
    let node = state.nodes.iter().find(|n| n.name == place);
    let log_dir = match node {
        Some(n) => n.dir.join("logs"),
        None => state.dir.join("logs"),
    };
    let mntns = node.and_then(|n| n.mntns.clone());
    let mut d = Daemon::start(DaemonSpec {
        name: name.to_string(),
        program: PathBuf::from(program),
        args: args.to_vec(),
        env: vec![],
        netns: netns.map(str::to_string),
        mntns,
        log: log_dir.join(format!("{name}.log")),
    })?;
    d.keep();
    let pid = d.pid();
    state
        .daemons
        .retain(|r| !(r.place == place && r.spec.name == name));
    state.daemons.push(DaemonRecord {
        place: place.to_string(),
        spec: d.spec().clone(),
        pid,
    });
    state.save()?;
    Ok(pid)
}

/// A command inside a recorded node: its network namespace and, when it
/// has one, its mount namespace (`capstan-lab exec NODE`, `Node::command`).
pub fn node_command(
    node: &NodeState,
    program: impl AsRef<std::ffi::OsStr>,
) -> Result<Command, LabError> {
    let mut cmd = Netns::existing(&node.netns)?.command(program)?;
    if let Some(m) = &node.mntns {
        mntns::enter_on_exec(m, &mut cmd)?;
    }
    Ok(cmd)
}

/// The test image archive (built once, cached by content).
fn test_image() -> Result<PathBuf, LabError> {
    let testsrv = crate::bins::path("capstan-testsrv")?;
    image::build(&base_dir().join("cache"), &testsrv)
}

/// Makes one recorded node: network namespace, directories, the veth to
/// the underlay bridge, and its mount namespace.
fn make_node(s: &LabState, node: &NodeState) -> Result<(), LabError> {
    Netns::create(&node.netns)?.keep();
    for sub in NODE_SUBDIRS {
        std::fs::create_dir_all(node.dir.join(sub))
            .map_err(LabError::io(format!("create {}/{sub}", node.name)))?;
    }
    // The veth is made inside the underlay namespace with its peer sent
    // straight into the node: nothing passes through the host.
    crate::veth::Veth::new(
        &s.underlay_netns,
        &format!("veth-{}", node.name),
        &node.netns,
    )
    .bridge(UNDERLAY_BRIDGE)
    .addr(format!("{}/{UNDERLAY_PREFIX_LEN}", node.ip))
    .gateway(s.underlay_ip)
    .create()?;
    if let Some(m) = &node.mntns {
        mntns::create(m, &node.dir)?;
    }
    Ok(())
}

/// Starts a node's containerd and imports the test image (if given).
fn start_node_containerd(node: &NodeState, archive: Option<&Path>) -> Result<Daemon, LabError> {
    let d = containerd::start(containerd::spec(node)?, &node.dir)?;
    if let Some(archive) = archive {
        cmd::run(
            containerd::ctr(node)?
                .args(["images", "import", "--index-name", image::TEST_IMAGE])
                .arg(archive),
        )?;
    }
    Ok(d)
}

/// Adds node N+1 to a lab from its recorded state (a `Lab`'s, or a
/// persistent lab's through `capstan-lab add-node`), starting its
/// containerd (and importing the test image) if asked. The node is
/// recorded before it is made, so a failure half-way is swept with the
/// lab. Returns the node and its containerd.
pub fn add_node(
    state: &mut LabState,
    with_containerd: bool,
    with_image: bool,
) -> Result<(NodeState, Option<Daemon>), LabError> {
    let node = node_state(&state.prefix, &state.dir, state.nodes.len() + 1)?;
    state.nodes.push(node.clone());
    state.save()?;
    mntns::prepare_dir(&state.dir)?;
    make_node(state, &node)?;
    let d = if with_containerd {
        let archive = with_image.then(test_image).transpose()?;
        let d = start_node_containerd(&node, archive.as_deref())?;
        state
            .daemons
            .retain(|r| !(r.place == node.name && r.spec.name == "containerd"));
        state.daemons.push(DaemonRecord {
            place: node.name.clone(),
            spec: d.spec().clone(),
            pid: d.pid(),
        });
        state.save()?;
        Some(d)
    } else {
        None
    };
    Ok((node, d))
}
