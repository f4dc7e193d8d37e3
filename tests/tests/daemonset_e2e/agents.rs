//! The install itself: one Running, Ready agent pod per node from the
//! image build.sh made, every node Ready with a podCIDR and its subnet file
//! written through the hostPath; the manifests pass server-side dry-run
//! and the rendered YAML strict client-side validation.

use libtest_mimic::Failed;

use crate::suite::*;
use crate::support::*;

pub fn one_agent_pod_per_node(s: &Suite) -> Result<(), Failed> {
    let nodes: Vec<String> = s.lab.nodes().iter().map(|n| n.name().to_string()).collect();
    let pods = s.wait_for("a ready agent pod on every node", ROLLOUT, || {
        let pods = s.agent_pods();
        let mut on: Vec<String> = pods.iter().filter(|p| is_ready(p)).map(node_of).collect();
        on.sort();
        (on == nodes && pods.len() == nodes.len()).then_some(pods)
    })?;
    for p in &pods {
        let image = p["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default();
        if !image.starts_with("capstan.local/capstan:") {
            return Err(format!("agent pod {} runs {image}", name(p)).into());
        }
    }
    for node in s.lab.nodes() {
        let n = s
            .get(&["node", node.name()])
            .ok_or_else(|| format!("node {} not found", node.name()))?;
        let cidr = n["spec"]["podCIDR"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !cidr.starts_with("10.244.") {
            return Err(format!("{} has podCIDR {cidr:?}", node.name()).into());
        }
        // The agent pod's /run/capstan is the node's own /run/capstan.
        let subnet = std::fs::read_to_string(node.dir().join("run/capstan/subnet.env"))
            .map_err(|e| format!("{}: no subnet file from the agent pod: {e}", node.name()))?;
        let gateway = subnet
            .lines()
            .find_map(|l| l.strip_prefix("CAPSTAN_SUBNET="))
            .and_then(|v| v.split('/').next()?.parse().ok());
        if !gateway.is_some_and(|ip| in_cidr(ip, &cidr)) {
            return Err(format!("{}: subnet.env {subnet:?} vs podCIDR {cidr}", node.name()).into());
        }
        // The init container installed the plugin and conflist there too.
        for f in ["opt/cni/bin/capstan", "etc/cni/net.d/10-capstan.conflist"] {
            if !node.dir().join(f).exists() {
                return Err(
                    format!("{}: {f} not installed by the init container", node.name()).into(),
                );
            }
        }
        s.wait_for(&format!("{} Ready", node.name()), ROLLOUT, || {
            let n = s.get(&["node", node.name()])?;
            n["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                .then_some(())
        })?;
    }
    Ok(())
}

pub fn manifests_pass_dry_run(s: &Suite) -> Result<(), Failed> {
    let dir = manifests().display().to_string();
    s.kubectl(&["apply", "--dry-run=server", "-k", &dir], None)?;
    let rendered = manifests().join("capstan.yaml").display().to_string();
    s.kubectl(
        &[
            "apply",
            "--dry-run=client",
            "--validate=strict",
            "-f",
            &rendered,
        ],
        None,
    )?;
    Ok(())
}
