//! The scheduler and controllers end to end: one lab (real etcd,
//! capstan-control with every controller, a short node-monitor grace
//! period) and three simulated nodes (`capstan_lab::simnode`: Ready nodes
//! that renew their Leases and "run" the pods bound to them), driven by the
//! real kubectl. Tests run one at a time, each in its own namespace.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use capstan_lab::control::ControlPlane;
use capstan_lab::simnode::{SimNodes, NOT_READY_LABEL};
use capstan_lab::{privileged, Lab};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use libtest_mimic::{Arguments, Failed, Trial};

struct Suite {
    _lab: Lab,
    /// Locked only to build a command or to crash and restart the server.
    cp: std::sync::Mutex<ControlPlane>,
    rt: tokio::runtime::Runtime,
    client: kube::Client,
    sim: SimNodes,
}

type TestFn = fn(&Suite) -> Result<(), Failed>;

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    if !privileged::require("controllers_e2e", &["ip", "etcd", "kubectl"]) {
        return;
    }
    let lab = Lab::builder()
        .nodes(0)
        .etcd(true)
        .build()
        .expect("build lab");
    let cp = ControlPlane::start_with(
        &lab,
        &lab.etcd_endpoint(),
        &["--node-monitor-grace-period=6s".to_string()],
    )
    .unwrap_or_else(|e| panic!("start capstan-control: {e}"));
    // Worker threads are born in the underlay namespace and so reach the server.
    let rt = lab
        .underlay()
        .run_in(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        })
        .expect("enter underlay")
        .expect("runtime");
    let kubeconfig = cp.admin_kubeconfig();
    let (client, sim) = rt
        .block_on(rt.spawn(async move {
            let kc = Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
            let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .expect("config");
            let client = kube::Client::try_from(cfg).expect("client");
            let sim = SimNodes::start(client.clone());
            for n in ["sim-a", "sim-b", "sim-c"] {
                sim.add(n, &[("zone", "one")]).await.expect("add node");
            }
            (client, sim)
        }))
        .expect("setup");
    let suite = Suite {
        _lab: lab,
        cp: std::sync::Mutex::new(cp),
        rt,
        client,
        sim,
    };
    let tests: &[(&str, TestFn)] = &[
        ("deployment_scales_0_50_5", deployment_scales_0_50_5),
        (
            "rolling_update_keeps_desired_ready",
            rolling_update_keeps_desired_ready,
        ),
        ("daemonset_follows_nodes", daemonset_follows_nodes),
        ("endpoints_follow_readiness", endpoints_follow_readiness),
        (
            "silent_node_goes_unknown_and_pods_move",
            silent_node_goes_unknown_and_pods_move,
        ),
        ("cascade_delete", cascade_delete),
        (
            "foreground_delete_waits_for_dependents",
            foreground_delete_waits_for_dependents,
        ),
        (
            "orphan_delete_keeps_dependents",
            orphan_delete_keeps_dependents,
        ),
        (
            "namespace_terminates_then_goes",
            namespace_terminates_then_goes,
        ),
        (
            "crash_mid_rollout_finishes_without_duplicates",
            crash_mid_rollout_finishes_without_duplicates,
        ),
        (
            "unschedulable_pod_explains_why",
            unschedulable_pod_explains_why,
        ),
    ];
    let suite = std::sync::Arc::new(suite);
    let trials = tests
        .iter()
        .map(|&(name, f)| {
            let s = suite.clone();
            Trial::test(name, move || f(&s))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if conclusion.has_failed() {
        eprintln!(
            "capstan-control log (last lines):\n{}",
            capstan_lab::daemon::log_tail(&control(&suite).log(), 60)
        );
    }
    drop(suite);
    conclusion.exit();
}

// ---------------------------------------------------------------- helpers

fn control(s: &Suite) -> std::sync::MutexGuard<'_, ControlPlane> {
    // A test that panicked while holding it left a usable server behind.
    s.cp.lock().unwrap_or_else(|e| e.into_inner())
}

/// kubectl's exit status and stderr, for calls expected to fail.
fn kubectl_status(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<(bool, String), Failed> {
    let mut c = control(s).kubectl()?;
    c.args(args);
    let out = run(c, stdin)?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn run(mut c: Command, stdin: Option<&str>) -> Result<Output, Failed> {
    use std::io::Write;
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("spawn {c:?}: {e}"))?;
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().ok_or("no stdin pipe")?;
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("write stdin: {e}"))?;
    }
    Ok(child
        .wait_with_output()
        .map_err(|e| format!("wait for {c:?}: {e}"))?)
}

fn kubectl(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
    let mut c = control(s).kubectl()?;
    c.args(args);
    if matches!(args.first(), Some(&"create") | Some(&"apply")) && args.contains(&"-f") {
        c.arg("--validate=false");
    }
    let out = run(c, stdin)?;
    if !out.status.success() {
        return Err(format!(
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn namespace(s: &Suite, ns: &str) -> Result<(), Failed> {
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
        )),
    )
    .map(|_| ())
}

/// Polls `f` until it returns Some, for at most `limit`.
fn wait<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, Failed> {
    let end = Instant::now() + limit;
    let mut pause = Duration::from_millis(50);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > end {
            return Err(format!("timed out after {limit:?} waiting for {what}").into());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

fn jsonpath(s: &Suite, args: &[&str], path: &str) -> String {
    let mut a: Vec<&str> = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    kubectl(s, &a, None).unwrap_or_default()
}

fn pods(s: &Suite, ns: &str, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(s.client.clone(), ns);
    let lp = ListParams::default().labels(selector);
    s.rt.block_on(s.rt.spawn(async move { api.list(&lp).await }))
        .ok()
        .and_then(|r| r.ok())
        .map(|l| l.items)
        .unwrap_or_default()
}

fn ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn deployment(ns: &str, name: &str, replicas: u32, image: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n{extra_spec}  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: c\n        image: {image}\n        resources:\n          requests:\n            cpu: 10m\n"
    )
}

// ---------------------------------------------------------------- tests

fn deployment_scales_0_50_5(s: &Suite) -> Result<(), Failed> {
    let ns = "scale";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(ns, "web", 0, "capstan.local/busybox:v1", "")),
    )?;
    kubectl(
        s,
        &["-n", ns, "scale", "deployment/web", "--replicas=50"],
        None,
    )?;
    wait("50 ready replicas", Duration::from_secs(60), || {
        (jsonpath(
            s,
            &["-n", ns, "get", "deployment", "web"],
            "{.status.readyReplicas}",
        ) == "50")
            .then_some(())
    })?;
    let live = pods(s, ns, "app=web").into_iter().filter(ready).count();
    if live != 50 {
        return Err(format!("{live} ready pods, want 50").into());
    }
    // Spread over every node.
    let spread: std::collections::HashSet<String> = pods(s, ns, "app=web")
        .iter()
        .filter_map(|p| p.spec.as_ref().and_then(|x| x.node_name.clone()))
        .collect();
    if spread.len() != 3 {
        return Err(format!("pods on {spread:?}, want all three nodes").into());
    }
    kubectl(
        s,
        &["-n", ns, "scale", "deployment/web", "--replicas=5"],
        None,
    )?;
    wait("5 pods left", Duration::from_secs(60), || {
        let p = pods(s, ns, "app=web");
        (p.len() == 5 && p.iter().all(ready)).then_some(())
    })?;
    wait("status says 5", Duration::from_secs(20), || {
        (jsonpath(
            s,
            &["-n", ns, "get", "deployment", "web"],
            "{.status.replicas}",
        ) == "5")
            .then_some(())
    })
}

fn rolling_update_keeps_desired_ready(s: &Suite) -> Result<(), Failed> {
    let ns = "roll";
    namespace(s, ns)?;
    let strategy = "  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n";
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(
            ns,
            "roll",
            4,
            "capstan.local/busybox:v1",
            strategy,
        )),
    )?;
    kubectl(
        s,
        &[
            "-n",
            ns,
            "rollout",
            "status",
            "deployment/roll",
            "--timeout=60s",
        ],
        None,
    )?;
    // Sample the ready count while the rollout runs.
    let min_ready = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (min_ready, stop) = (min_ready.clone(), stop.clone());
        let api: Api<Pod> = Api::namespaced(s.client.clone(), ns);
        s.rt.spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(l) = api.list(&ListParams::default().labels("app=roll")).await {
                    let n = l.items.iter().filter(|p| ready(p)).count();
                    min_ready.fetch_min(n, std::sync::atomic::Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    kubectl(
        s,
        &[
            "-n",
            ns,
            "set",
            "image",
            "deployment/roll",
            "c=capstan.local/busybox:v2",
        ],
        None,
    )?;
    let status = kubectl(
        s,
        &[
            "-n",
            ns,
            "rollout",
            "status",
            "deployment/roll",
            "--timeout=90s",
        ],
        None,
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = s.rt.block_on(sampler);
    status?;
    let min = min_ready.load(std::sync::atomic::Ordering::SeqCst);
    if min < 4 {
        return Err(
            format!("ready pods dropped to {min} during a maxUnavailable=0 rollout").into(),
        );
    }
    let images: Vec<String> = pods(s, ns, "app=roll")
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.spec.as_ref().and_then(|x| x.containers[0].image.clone()))
        .collect();
    if images.len() != 4 || images.iter().any(|i| !i.ends_with(":v2")) {
        return Err(format!("after the rollout: {images:?}").into());
    }
    // Back to the previous template.
    kubectl(s, &["-n", ns, "rollout", "undo", "deployment/roll"], None)?;
    kubectl(
        s,
        &[
            "-n",
            ns,
            "rollout",
            "status",
            "deployment/roll",
            "--timeout=90s",
        ],
        None,
    )?;
    let image = jsonpath(
        s,
        &["-n", ns, "get", "deployment", "roll"],
        "{.spec.template.spec.containers[0].image}",
    );
    if image != "capstan.local/busybox:v1" {
        return Err(format!("rollout undo left image {image}").into());
    }
    Ok(())
}

fn daemonset_follows_nodes(s: &Suite) -> Result<(), Failed> {
    let ns = "ds";
    namespace(s, ns)?;
    let ds = format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels:\n      app: agent\n  template:\n    metadata:\n      labels:\n        app: agent\n    spec:\n      containers:\n      - name: c\n        image: capstan.local/busybox:latest\n"
    );
    kubectl(s, &["create", "-f", "-"], Some(&ds))?;
    let on_nodes = |want: usize| {
        move || {
            let p: Vec<Pod> = pods(s, ns, "app=agent")
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let nodes: std::collections::HashSet<String> = p
                .iter()
                .filter_map(|p| p.spec.as_ref().and_then(|x| x.node_name.clone()))
                .collect();
            (p.len() == want && nodes.len() == want).then_some(())
        }
    };
    wait(
        "one daemon pod on each of 3 nodes",
        Duration::from_secs(30),
        on_nodes(3),
    )?;
    let sim = s.sim.clone();
    s.rt.block_on(s.rt.spawn(async move { sim.add("sim-d", &[("zone", "two")]).await }))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    wait(
        "a daemon pod on the new node",
        Duration::from_secs(30),
        on_nodes(4),
    )?;
    let sim = s.sim.clone();
    s.rt.block_on(s.rt.spawn(async move { sim.remove("sim-d").await }))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    wait(
        "the daemon pod gone with its node",
        Duration::from_secs(30),
        on_nodes(3),
    )?;
    kubectl(s, &["-n", ns, "delete", "daemonset", "agent"], None)?;
    Ok(())
}

fn endpoints_follow_readiness(s: &Suite) -> Result<(), Failed> {
    let ns = "eps";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(
            ns,
            "api",
            2,
            "capstan.local/busybox:latest",
            "",
        )),
    )?;
    let svc = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n  namespace: {ns}\nspec:\n  selector:\n    app: api\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n"
    );
    kubectl(s, &["create", "-f", "-"], Some(&svc))?;
    let ready_ips = || {
        jsonpath(
            s,
            &["-n", ns, "get", "endpoints", "api"],
            "{.subsets[*].addresses[*].ip}",
        )
    };
    let not_ready_ips = || {
        jsonpath(
            s,
            &["-n", ns, "get", "endpoints", "api"],
            "{.subsets[*].notReadyAddresses[*].ip}",
        )
    };
    wait("two ready endpoints", Duration::from_secs(30), || {
        (ready_ips().split_whitespace().count() == 2).then_some(())
    })?;
    let port = jsonpath(
        s,
        &["-n", ns, "get", "endpoints", "api"],
        "{.subsets[0].ports[0].port}",
    );
    if port != "8080" {
        return Err(format!("endpoint port {port}, want 8080").into());
    }
    // One pod turns unready: it moves to notReadyAddresses, and the slice says so.
    let victim = pods(s, ns, "app=api")
        .into_iter()
        .next()
        .and_then(|p| p.metadata.name)
        .ok_or("no pod")?;
    kubectl(
        s,
        &[
            "-n",
            ns,
            "label",
            "pod",
            &victim,
            &format!("{NOT_READY_LABEL}=false"),
        ],
        None,
    )?;
    wait("one ready, one not ready", Duration::from_secs(30), || {
        (ready_ips().split_whitespace().count() == 1
            && not_ready_ips().split_whitespace().count() == 1)
            .then_some(())
    })?;
    let slice_ready = jsonpath(
        s,
        &[
            "-n",
            ns,
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=api",
        ],
        "{.items[*].endpoints[*].conditions.ready}",
    );
    if slice_ready
        .split_whitespace()
        .filter(|x| *x == "true")
        .count()
        != 1
    {
        return Err(format!("endpointslice readiness: {slice_ready}").into());
    }
    kubectl(
        s,
        &[
            "-n",
            ns,
            "label",
            "pod",
            &victim,
            &format!("{NOT_READY_LABEL}-"),
        ],
        None,
    )?;
    wait("both ready again", Duration::from_secs(30), || {
        (ready_ips().split_whitespace().count() == 2).then_some(())
    })
}

fn silent_node_goes_unknown_and_pods_move(s: &Suite) -> Result<(), Failed> {
    let ns = "evict";
    namespace(s, ns)?;
    let extra = "";
    let mut d = deployment(ns, "mover", 3, "capstan.local/busybox:latest", extra);
    d.push_str("      tolerations:\n      - key: node.kubernetes.io/unreachable\n        operator: Exists\n        effect: NoExecute\n        tolerationSeconds: 2\n");
    kubectl(s, &["create", "-f", "-"], Some(&d))?;
    wait("3 ready", Duration::from_secs(30), || {
        (pods(s, ns, "app=mover").iter().filter(|p| ready(p)).count() == 3).then_some(())
    })?;
    let victim_node = pods(s, ns, "app=mover")
        .iter()
        .find_map(|p| p.spec.as_ref().and_then(|x| x.node_name.clone()))
        .ok_or("no bound pod")?;
    s.sim.stop(&victim_node);
    wait("the silent node Unknown", Duration::from_secs(30), || {
        (jsonpath(
            s,
            &["get", "node", &victim_node],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "Unknown")
            .then_some(())
    })?;
    let taints = jsonpath(s, &["get", "node", &victim_node], "{.spec.taints[*].key}");
    if !taints.contains("node.kubernetes.io/unreachable") {
        return Err(format!("taints on the silent node: {taints}").into());
    }
    wait(
        "3 ready pods, none on the silent node",
        Duration::from_secs(60),
        || {
            let p = pods(s, ns, "app=mover");
            let ok = p.iter().filter(|p| ready(p)).count() == 3
                && p.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .all(|p| {
                        p.spec.as_ref().and_then(|x| x.node_name.as_deref())
                            != Some(victim_node.as_str())
                    });
            ok.then_some(())
        },
    )?;
    // The node comes back: it loses the taint and is Ready again.
    let sim = s.sim.clone();
    let n = victim_node.clone();
    s.rt.block_on(s.rt.spawn(async move { sim.add(&n, &[("zone", "one")]).await }))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    wait(
        "the node Ready without the taint",
        Duration::from_secs(30),
        || {
            let ready = jsonpath(
                s,
                &["get", "node", &victim_node],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            );
            let taints = jsonpath(s, &["get", "node", &victim_node], "{.spec.taints[*].key}");
            (ready == "True" && !taints.contains("unreachable")).then_some(())
        },
    )?;
    Ok(())
}

fn cascade_delete(s: &Suite) -> Result<(), Failed> {
    let ns = "cascade";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(
            ns,
            "gone",
            3,
            "capstan.local/busybox:latest",
            "",
        )),
    )?;
    wait("3 pods", Duration::from_secs(30), || {
        (pods(s, ns, "app=gone").len() == 3).then_some(())
    })?;
    kubectl(s, &["-n", ns, "delete", "deployment", "gone"], None)?;
    wait("replicasets and pods gone", Duration::from_secs(30), || {
        let rs = jsonpath(
            s,
            &["-n", ns, "get", "replicasets"],
            "{.items[*].metadata.name}",
        );
        (rs.trim().is_empty() && pods(s, ns, "app=gone").is_empty()).then_some(())
    })
}

fn unschedulable_pod_explains_why(s: &Suite) -> Result<(), Failed> {
    let ns = "nofit";
    namespace(s, ns)?;
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: huge\n  namespace: {ns}\nspec:\n  containers:\n  - name: c\n    image: capstan.local/busybox:latest\n    resources:\n      requests:\n        cpu: \"100\"\n"
    );
    kubectl(s, &["create", "-f", "-"], Some(&pod))?;
    let msg = wait("a FailedScheduling event", Duration::from_secs(30), || {
        let m = jsonpath(
            s,
            &[
                "-n",
                ns,
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=huge,reason=FailedScheduling",
            ],
            "{.items[0].message}",
        );
        (!m.is_empty()).then_some(m)
    })?;
    let nodes = jsonpath(s, &["get", "nodes"], "{.items[*].metadata.name}")
        .split_whitespace()
        .count();
    let want = format!("0/{nodes} nodes are available: {nodes} Insufficient cpu.");
    if msg != want {
        return Err(format!("event message {msg:?}, want {want:?}").into());
    }
    let cond = jsonpath(
        s,
        &["-n", ns, "get", "pod", "huge"],
        "{.status.conditions[?(@.type==\"PodScheduled\")].status}",
    );
    if cond != "False" {
        return Err(format!("PodScheduled condition {cond:?}").into());
    }
    let describe = kubectl(s, &["-n", ns, "describe", "pod", "huge"], None)?;
    if !describe.contains("FailedScheduling") {
        return Err(
            format!("kubectl describe shows no FailedScheduling event:\n{describe}").into(),
        );
    }
    Ok(())
}

fn replica_sets(s: &Suite, ns: &str, selector: &str) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::namespaced(s.client.clone(), ns);
    let lp = ListParams::default().labels(selector);
    s.rt.block_on(s.rt.spawn(async move { api.list(&lp).await }))
        .ok()
        .and_then(|r| r.ok())
        .map(|l| l.items)
        .unwrap_or_default()
}

/// `kubectl get -o name --ignore-not-found`: empty once the object is gone.
fn exists(s: &Suite, ns: &str, what: &str) -> Result<bool, Failed> {
    let out = kubectl(
        s,
        &["-n", ns, "get", what, "-o", "name", "--ignore-not-found"],
        None,
    )?;
    Ok(!out.trim().is_empty())
}

fn image(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|x| x.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn foreground_delete_waits_for_dependents(s: &Suite) -> Result<(), Failed> {
    let ns = "foreground";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(ns, "fg", 2, "capstan.local/busybox:latest", "")),
    )?;
    let held = wait("2 ready pods", Duration::from_secs(30), || {
        let p = pods(s, ns, "app=fg");
        (p.len() == 2 && p.iter().all(ready)).then(|| p[0].metadata.name.clone())?
    })?;
    // A Service deleted in the foreground waits for its EndpointSlice,
    // which the endpoints controller must not write again meanwhile.
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: fgsvc\n  namespace: {ns}\nspec:\n  selector:\n    app: fg\n  ports:\n  - port: 80\n"
        )),
    )?;
    wait(
        "the service's endpointslice",
        Duration::from_secs(30),
        || {
            let n = jsonpath(
                s,
                &[
                    "-n",
                    ns,
                    "get",
                    "endpointslices",
                    "-l",
                    "kubernetes.io/service-name=fgsvc",
                ],
                "{.items[*].metadata.name}",
            );
            (!n.trim().is_empty()).then_some(())
        },
    )?;
    kubectl(
        s,
        &[
            "-n",
            ns,
            "delete",
            "service",
            "fgsvc",
            "--cascade=foreground",
            "--timeout=30s",
        ],
        None,
    )?;
    let left = jsonpath(
        s,
        &[
            "-n",
            ns,
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=fgsvc",
        ],
        "{.items[*].metadata.name}",
    );
    if !left.trim().is_empty() {
        return Err(format!("endpointslices outlived their service: {left}").into());
    }
    // A finalizer on one pod holds the chain: pod, then its ReplicaSet,
    // then the Deployment.
    kubectl(
        s,
        &[
            "-n",
            ns,
            "patch",
            "pod",
            &held,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["capstan.test/hold"]}}"#,
        ],
        None,
    )?;
    kubectl(
        s,
        &[
            "-n",
            ns,
            "delete",
            "deployment",
            "fg",
            "--cascade=foreground",
            "--wait=false",
        ],
        None,
    )?;
    wait(
        "only the held pod left, its ReplicaSet deleting in the foreground",
        Duration::from_secs(30),
        || {
            let p = pods(s, ns, "app=fg");
            let only_held = p.len() == 1
                && p[0].metadata.name.as_deref() == Some(held.as_str())
                && p[0].metadata.deletion_timestamp.is_some();
            let rs = replica_sets(s, ns, "app=fg");
            let rs_waits = rs.len() == 1
                && rs[0].metadata.deletion_timestamp.is_some()
                && rs[0]
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == "foregroundDeletion");
            (only_held && rs_waits).then_some(())
        },
    )?;
    let d = jsonpath(
        s,
        &["-n", ns, "get", "deployment", "fg"],
        "{.metadata.deletionTimestamp} {.metadata.finalizers}",
    );
    if !d.contains("foregroundDeletion") || !d.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("deployment while its dependents go: {d:?}").into());
    }
    // A second delete changes nothing and answers with the object.
    let again = kubectl(
        s,
        &[
            "-n",
            ns,
            "delete",
            "deployment",
            "fg",
            "--cascade=foreground",
            "--wait=false",
        ],
        None,
    )?;
    if !again.contains("fg") || !exists(s, ns, "deployment/fg")? {
        return Err(format!("second delete: {again:?}").into());
    }
    // No finalizer may be added once deletion started.
    let (ok, err) = kubectl_status(
        s,
        &[
            "-n",
            ns,
            "patch",
            "deployment",
            "fg",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/metadata/finalizers/-","value":"capstan.test/late"}]"#,
        ],
        None,
    )?;
    if ok || !err.contains("no new finalizers can be added") {
        return Err(format!("adding a finalizer while deleting: ok={ok} {err}").into());
    }
    // Releasing the pod lets everything go, bottom up.
    kubectl(
        s,
        &[
            "-n",
            ns,
            "patch",
            "pod",
            &held,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
        None,
    )?;
    wait("the deployment gone", Duration::from_secs(30), || {
        (!exists(s, ns, "deployment/fg").unwrap_or(true)
            && replica_sets(s, ns, "app=fg").is_empty()
            && pods(s, ns, "app=fg").is_empty())
        .then_some(())
    })
}

fn orphan_delete_keeps_dependents(s: &Suite) -> Result<(), Failed> {
    let ns = "orphan";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(
            ns,
            "orph",
            2,
            "capstan.local/busybox:latest",
            "",
        )),
    )?;
    wait("2 ready pods", Duration::from_secs(30), || {
        let p = pods(s, ns, "app=orph");
        (p.len() == 2 && p.iter().all(ready)).then_some(())
    })?;
    kubectl(
        s,
        &[
            "-n",
            ns,
            "delete",
            "deployment",
            "orph",
            "--cascade=orphan",
            "--timeout=30s",
        ],
        None,
    )?;
    if exists(s, ns, "deployment/orph")? {
        return Err("the deployment outlived kubectl delete --wait".into());
    }
    let rs = replica_sets(s, ns, "app=orph");
    let [rs] = rs.as_slice() else {
        return Err(format!("{} replicasets after an orphan delete, want 1", rs.len()).into());
    };
    if rs
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| !o.is_empty())
    {
        return Err(format!(
            "orphaned replicaset still owned: {:?}",
            rs.metadata.owner_references
        )
        .into());
    }
    // The orphaned ReplicaSet keeps its pods: watch a few controller passes.
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        let p = pods(s, ns, "app=orph");
        if p.len() != 2 || !p.iter().all(ready) {
            return Err(format!("{} pods after the orphan delete, want 2 ready", p.len()).into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Deleting the ReplicaSet (background, kubectl's default) takes them.
    let name = rs.metadata.name.clone().unwrap_or_default();
    kubectl(s, &["-n", ns, "delete", "replicaset", &name], None)?;
    wait("pods gone", Duration::from_secs(30), || {
        pods(s, ns, "app=orph").is_empty().then_some(())
    })
}

fn crash_mid_rollout_finishes_without_duplicates(s: &Suite) -> Result<(), Failed> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    let ns = "crash";
    namespace(s, ns)?;
    let strategy = "  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n";
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(
            ns,
            "rr",
            6,
            "capstan.local/busybox:v1",
            strategy,
        )),
    )?;
    let status = [
        "-n",
        ns,
        "rollout",
        "status",
        "deployment/rr",
        "--timeout=90s",
    ];
    kubectl(s, &status, None)?;
    // Samples the live pods of the deployment through the whole rollout.
    let most = Arc::new(AtomicUsize::new(0));
    let old_after_crash = Arc::new(AtomicUsize::new(0));
    let crashed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (most, old_after_crash, crashed, stop) = (
            most.clone(),
            old_after_crash.clone(),
            crashed.clone(),
            stop.clone(),
        );
        let api: Api<Pod> = Api::namespaced(s.client.clone(), ns);
        s.rt.spawn(async move {
            while !stop.load(SeqCst) {
                if let Ok(l) = api.list(&ListParams::default().labels("app=rr")).await {
                    let live: Vec<&Pod> = l
                        .items
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .collect();
                    most.fetch_max(live.len(), SeqCst);
                    if crashed.load(SeqCst) {
                        let old = live.iter().filter(|p| image(p).ends_with(":v1")).count();
                        old_after_crash.fetch_max(old, SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let result = (|| -> Result<(), Failed> {
        kubectl(
            s,
            &[
                "-n",
                ns,
                "set",
                "image",
                "deployment/rr",
                "c=capstan.local/busybox:v2",
            ],
            None,
        )?;
        wait("the rollout under way", Duration::from_secs(30), || {
            let p = pods(s, ns, "app=rr");
            (p.iter().filter(|p| image(p).ends_with(":v2")).count() >= 2).then_some(())
        })?;
        crashed.store(true, SeqCst);
        let t = Instant::now();
        control(s).crash_and_restart()?;
        eprintln!(
            "capstan-control killed and ready again in {:?}",
            t.elapsed()
        );
        kubectl(s, &status, None).map(|_| ())
    })();
    stop.store(true, SeqCst);
    let _ = s.rt.block_on(sampler);
    result?;
    let (most, old) = (most.load(SeqCst), old_after_crash.load(SeqCst));
    if most > 7 {
        return Err(format!("{most} live pods at once, more than replicas + maxSurge = 7").into());
    }
    if old == 0 {
        return Err("the rollout had finished before the crash: nothing was tested".into());
    }
    let rs = replica_sets(s, ns, "app=rr");
    let new: Vec<&ReplicaSet> = rs
        .iter()
        .filter(|r| {
            r.spec
                .as_ref()
                .and_then(|x| x.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .and_then(|x| x.containers.first())
                .and_then(|c| c.image.as_deref())
                == Some("capstan.local/busybox:v2")
        })
        .collect();
    let [new] = new.as_slice() else {
        return Err(format!("{} replicasets for the new template, want 1", new.len()).into());
    };
    let hash = new
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"))
        .cloned()
        .unwrap_or_default();
    let live: Vec<Pod> = pods(s, ns, "app=rr")
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let of_new = live
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash"))
                == Some(&hash)
        })
        .count();
    if hash.is_empty() || live.len() != 6 || of_new != 6 || rs.len() != 2 {
        return Err(format!(
            "after the rollout: {} live pods, {of_new} of the new template {hash:?}, {} replicasets",
            live.len(),
            rs.len()
        )
        .into());
    }
    eprintln!("crash mid-rollout: at most {most} live pods, {old} old ones left after the crash");
    Ok(())
}

fn namespace_terminates_then_goes(s: &Suite) -> Result<(), Failed> {
    let ns = "doomed";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(ns, "w", 2, "capstan.local/busybox:latest", "")),
    )?;
    // A finalizer on a ConfigMap keeps the namespace Terminating.
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: {ns}\n  finalizers: [capstan.test/hold]\n"
        )),
    )?;
    wait("2 ready pods", Duration::from_secs(30), || {
        let p = pods(s, ns, "app=w");
        (p.len() == 2 && p.iter().all(ready)).then_some(())
    })?;
    kubectl(s, &["delete", "namespace", ns, "--wait=false"], None)?;
    let state = jsonpath(
        s,
        &["get", "namespace", ns],
        "{.status.phase} {.spec.finalizers}",
    );
    if !state.starts_with("Terminating") || !state.contains("kubernetes") {
        return Err(format!("namespace after delete: {state:?}").into());
    }
    let (ok, err) = kubectl_status(
        s,
        &["create", "-f", "-", "--validate=false"],
        Some(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: late\n  namespace: {ns}\n"
        )),
    )?;
    if ok || !err.contains("because it is being terminated") || !err.contains("forbidden") {
        return Err(format!("create in a Terminating namespace: ok={ok} {err}").into());
    }
    wait(
        "everything but the held ConfigMap gone",
        Duration::from_secs(30),
        || {
            (pods(s, ns, "app=w").is_empty()
                && replica_sets(s, ns, "app=w").is_empty()
                && !exists(s, ns, "deployment/w").unwrap_or(true)
                && exists(s, ns, "configmap/held").unwrap_or(false))
            .then_some(())
        },
    )?;
    if jsonpath(s, &["get", "namespace", ns], "{.status.phase}") != "Terminating" {
        return Err("the namespace went while a finalizer held its content".into());
    }
    kubectl(
        s,
        &[
            "-n",
            ns,
            "patch",
            "configmap",
            "held",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
        None,
    )?;
    wait("the namespace gone", Duration::from_secs(30), || {
        let out = kubectl(
            s,
            &["get", "namespace", ns, "-o", "name", "--ignore-not-found"],
            None,
        );
        out.is_ok_and(|o| o.trim().is_empty()).then_some(())
    })
}
