//! A node that joins later: the DaemonSet controller gives it an agent pod
//! and the pod network works on it (a pod there answers across nodes).

use std::time::Duration;

use libtest_mimic::Failed;

use crate::suite::*;
use crate::support::*;

pub fn a_node_added_later_gets_its_agent_and_pod_network(s: &Suite) -> Result<(), Failed> {
    let node = s.add_node()?;
    let pod = s.wait_for(
        &format!("a ready agent pod on {}", node.name()),
        ROLLOUT,
        || {
            s.agent_pods()
                .into_iter()
                .find(|p| node_of(p) == node.name() && is_ready(p))
        },
    )?;
    let cidr = s
        .get(&["node", node.name()])
        .and_then(|n| n["spec"]["podCIDR"].as_str().map(str::to_string))
        .ok_or_else(|| format!("{} has no podCIDR", node.name()))?;
    let web = format!("web-{}", node.name());
    s.kubectl(&["apply", "-f", "-"], Some(&web_pod(&web, node.name())))?;
    let ip = s.wait_for(&format!("{web} ready"), Duration::from_secs(90), || {
        let p = s.get(&["pod", &web])?;
        is_ready(&p).then(|| pod_ip(&p)).flatten()
    })?;
    if !in_cidr(ip, &cidr) {
        return Err(format!("{web} got {ip}, outside {cidr} (agent pod {})", name(&pod)).into());
    }
    // From the first node: across the overlay to the new node's pod.
    let first = s.lab.node(0);
    let url = format!("http://{ip}:8080/");
    let body = s.wait_for(
        &format!("{url} from {}", first.name()),
        Duration::from_secs(60),
        || {
            let mut c = first.command("curl").ok()?;
            capstan_lab::cmd::stdout(c.args(["-sf", "--max-time", "3", &url])).ok()
        },
    )?;
    if body.trim() != web {
        return Err(format!("{url} answered {body:?}, not {web}").into());
    }
    Ok(())
}
