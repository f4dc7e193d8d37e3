//! deploy/kubernetes against the agent it deploys: the committed
//! capstan.yaml is the Kustomize base's rendering, the image tag is the
//! crate version, the DaemonSet's flags are the agent's (they parse), the
//! probes use the health port, and the ConfigMap's net-conf.json and CNI
//! conflist are accepted by the parsers that will read them. The init
//! container's command runs for real, into a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn kube_dir() -> PathBuf {
    root().join("deploy/kubernetes")
}

fn agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_capstan-agent")
}

/// Every document of the rendered file.
fn rendered() -> Vec<Value> {
    let text = std::fs::read_to_string(kube_dir().join("capstan.yaml")).expect("capstan.yaml");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("capstan.yaml is YAML"))
        .collect()
}

fn object(kind: &str, name: &str) -> Value {
    rendered()
        .into_iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("capstan.yaml has no {kind} {name}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn image() -> String {
    format!("capstan.local/capstan:{}", env!("CARGO_PKG_VERSION"))
}

#[test]
fn capstan_yaml_is_the_rendering_of_the_base() {
    let out = Command::new(kube_dir().join("render.sh"))
        .arg("-")
        .output()
        .expect("run deploy/kubernetes/render.sh (needs kubectl with Kustomize v5)");
    assert!(
        out.status.success(),
        "render.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(kube_dir().join("capstan.yaml")).expect("capstan.yaml");
    assert!(
        committed == String::from_utf8_lossy(&out.stdout),
        "deploy/kubernetes/capstan.yaml is stale: run deploy/kubernetes/render.sh and commit it"
    );
}

#[test]
fn the_image_is_tagged_with_the_crate_version() {
    let k: Value = serde_yaml::from_str(
        &std::fs::read_to_string(kube_dir().join("kustomization.yaml")).expect("kustomization"),
    )
    .expect("kustomization.yaml is YAML");
    assert_eq!(
        k["images"][0]["name"].as_str(),
        Some("capstan.local/capstan")
    );
    assert_eq!(
        k["images"][0]["newTag"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "kustomization.yaml images newTag must be the crate version (build.sh tags the image with it)"
    );
    let ds = object("DaemonSet", "capstan");
    let spec = &ds["spec"]["template"]["spec"];
    for c in strings_of(&spec["initContainers"]).chain(strings_of(&spec["containers"])) {
        assert_eq!(c["image"].as_str(), Some(image().as_str()), "{c:?}");
        assert_eq!(c["imagePullPolicy"].as_str(), Some("IfNotPresent"));
    }
}

fn strings_of(v: &Value) -> impl Iterator<Item = Value> {
    v.as_sequence().cloned().unwrap_or_default().into_iter()
}

#[test]
fn the_daemonset_runs_on_every_node_in_the_host_network() {
    let ds = object("DaemonSet", "capstan");
    assert_eq!(ds["metadata"]["namespace"].as_str(), Some("capstan-system"));
    let strategy = &ds["spec"]["updateStrategy"];
    assert_eq!(strategy["type"].as_str(), Some("RollingUpdate"));
    assert_eq!(
        strategy["rollingUpdate"]["maxUnavailable"].as_u64(),
        Some(1)
    );
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"].as_bool(), Some(true));
    assert_eq!(spec["serviceAccountName"].as_str(), Some("capstan"));
    assert_eq!(
        spec["priorityClassName"].as_str(),
        Some("system-node-critical")
    );
    let tolerations = spec["tolerations"].as_sequence().expect("tolerations");
    assert!(
        tolerations
            .iter()
            .any(|t| t["operator"].as_str() == Some("Exists") && t["key"].is_null()),
        "a toleration of every taint: {tolerations:?}"
    );
    let agent = &spec["containers"][0];
    let args = strings(&agent["args"]);
    for want in [
        "--components=overlay,proxy",
        "--subnet-manager=kube",
        "--net-conf-file=/etc/capstan/net-conf.json",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
    }
    assert!(
        !args.iter().any(|a| a.starts_with("--kubeconfig")),
        "in-cluster config: {args:?}"
    );
    let port = capstan_agent::healthz_addr::DEFAULT_PORT;
    assert!(args.contains(&format!("--healthz-addr=0.0.0.0:{port}")));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(agent[probe]["httpGet"]["path"].as_str(), Some(path));
        assert_eq!(agent[probe]["httpGet"]["port"].as_u64(), Some(port.into()));
    }
    let env = agent["env"].as_sequence().expect("env");
    assert!(
        env.iter()
            .any(|e| e["name"].as_str() == Some("CAPSTAN_NODE_NAME")
                && e["valueFrom"]["fieldRef"]["fieldPath"].as_str() == Some("spec.nodeName")),
        "{env:?}"
    );
    assert!(agent["resources"]["requests"]["cpu"].as_str().is_some());
    assert!(agent["resources"]["requests"]["memory"].as_str().is_some());
    // Host paths: exactly the ones the issue allows, each with a type
    // that does not fail on a node that lacks the path.
    let mut host: Vec<(String, String)> = strings_of(&spec["volumes"])
        .filter(|v| !v["hostPath"].is_null())
        .map(|v| {
            (
                v["hostPath"]["path"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                v["hostPath"]["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    host.sort();
    let dir = |p: &str| (p.to_string(), "DirectoryOrCreate".to_string());
    assert_eq!(
        host,
        vec![
            dir("/etc/cni/net.d"),
            dir("/lib/modules"),
            dir("/opt/cni/bin"),
            dir("/run/capstan"),
            ("/run/xtables.lock".to_string(), "FileOrCreate".to_string()),
            dir("/sys/fs/bpf"),
            dir("/var/lib/cni"),
        ]
    );
    let modules = strings_of(&agent["volumeMounts"])
        .find(|m| m["mountPath"].as_str() == Some("/lib/modules"))
        .expect("/lib/modules mounted");
    assert_eq!(modules["readOnly"].as_bool(), Some(true));
}

/// The agent's own parser takes the DaemonSet's flags: `--help` after
/// them exits 0 only when every flag before it is known and its value parses.
#[test]
fn the_agent_accepts_the_daemonsets_flags() {
    let ds = object("DaemonSet", "capstan");
    let agent = &ds["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(strings(&agent["command"]), ["/usr/bin/capstan-agent"]);
    let out = Command::new(agent_bin())
        .args(strings(&agent["args"]))
        .arg("--help")
        .output()
        .expect("run capstan-agent");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The ConfigMap's files, through the code that reads them on a node.
#[test]
fn the_configmap_is_what_the_agent_and_plugin_read() {
    let cm = object("ConfigMap", "capstan-config");
    let net_conf = cm["data"]["net-conf.json"].as_str().expect("net-conf.json");
    let (cfg, ignored) =
        capstan_overlay::subnet::NetworkConfig::parse_quiet("net-conf.json", net_conf.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.network.to_string(), "10.244.0.0/16");
    assert_eq!(cfg.backend.type_name(), "vxlan");
    assert!(ignored.is_empty(), "{ignored:?}");
    let conflist = cm["data"]["cni-conflist.json"]
        .as_str()
        .expect("cni-conflist.json");
    let v: serde_json::Value = serde_json::from_str(conflist).expect("conflist is JSON");
    let plugin = &v["plugins"][0];
    assert_eq!(plugin["type"], "capstan");
    assert_eq!(
        plugin["subnetFile"],
        capstan_overlay::subnet_file::DEFAULT_PATH
    );
    assert_eq!(plugin["dataDir"], "/var/lib/cni/networks/capstan");
}

/// The init container's command and flags, run for real with every host
/// path moved under a temporary directory: the plugin and the conflist
/// land where a runtime looks, and a second run changes nothing.
#[test]
fn the_init_container_installs_the_plugin_and_conflist() {
    let ds = object("DaemonSet", "capstan");
    let init = &ds["spec"]["template"]["spec"]["initContainers"][0];
    let mut cmd = strings(&init["command"]);
    assert_eq!(cmd.remove(0), "/usr/bin/capstan-agent");
    let tmp = tempfile::tempdir().expect("tempdir");
    let under = |p: &str| tmp.path().join(p.trim_start_matches('/'));
    let args: Vec<String> = strings(&init["args"])
        .into_iter()
        .map(|a| match a.split_once("=/") {
            Some((flag, path)) => format!("{flag}={}", under(path).display()),
            None => a,
        })
        .collect();
    let cm = object("ConfigMap", "capstan-config");
    let conf = under("/etc/capstan/cni-conflist.json");
    std::fs::create_dir_all(conf.parent().expect("parent")).expect("mkdir");
    let conflist = cm["data"]["cni-conflist.json"].as_str().expect("conflist");
    std::fs::write(&conf, conflist).expect("write conflist");
    let from = under("/opt/capstan/cni");
    std::fs::create_dir_all(&from).expect("mkdir");
    std::fs::write(from.join("capstan"), b"plugin").expect("write plugin");
    for round in ["installed", "unchanged"] {
        let out = Command::new(agent_bin())
            .args(&cmd)
            .args(&args)
            .output()
            .expect("run install-cni");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.lines().all(|l| l.starts_with(round)),
            "{round}: {text}"
        );
    }
    assert_eq!(
        std::fs::read(under("/opt/cni/bin/capstan")).expect("plugin"),
        b"plugin"
    );
    assert_eq!(
        std::fs::read_to_string(under("/etc/cni/net.d/10-capstan.conflist")).expect("conflist"),
        conflist
    );
    // A broken conflist: one line, naming the file.
    std::fs::write(&conf, "{").expect("write");
    let out = Command::new(agent_bin())
        .args(&cmd)
        .args(&args)
        .output()
        .expect("run install-cni");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success()
            && err.lines().count() == 1
            && err.contains("cni-conflist.json")
            && err.contains("not valid JSON"),
        "{err}"
    );
}
