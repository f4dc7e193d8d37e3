//! Nodes register Ready with the overlay's podCIDR and
//! NetworkUnavailable=False.

use std::time::Duration;

use libtest_mimic::Failed;

use crate::kube_suite::wait_for;
use crate::suite::*;
use crate::support::*;

pub fn subnet_of(s: &Suite, i: usize) -> Option<String> {
    let text = std::fs::read_to_string(s.lab.node(i).dir().join("run/capstan/subnet.env")).ok()?;
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix("CAPSTAN_SUBNET="))?;
    let n: ipnetwork::Ipv4Network = v.trim().parse().ok()?;
    Some(format!("{}/{}", n.network(), n.prefix()))
}

pub fn nodes_ready(s: &Suite) -> Result<(), Failed> {
    for i in 0..2 {
        let name = s.lab.node(i).name().to_string();
        let subnet = wait_for(
            "overlay subnet",
            Duration::from_secs(30),
            || subnet_of(s, i),
            || s.log(),
        )?;
        wait_for(
            "node Ready, podCIDR from the overlay, NetworkUnavailable=False",
            Duration::from_secs(30),
            || {
                s.get(&["node", &name]).filter(|n| {
                    condition(n, "Ready") == "True"
                        && condition(n, "NetworkUnavailable") == "False"
                        && n["spec"]["podCIDR"] == subnet.as_str()
                        && n["spec"]["podCIDRs"][0] == subnet.as_str()
                })
            },
            || format!("{}\nnode: {:?}", s.log(), s.get(&["node", &name])),
        )?;
    }
    Ok(())
}
