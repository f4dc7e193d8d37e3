//! Session affinity: a client sticks to one endpoint until the timeout.

use std::time::Duration;

use capstan_proxy::model::IpFamily;
use capstan_proxy::ProxyEvent;
use libtest_mimic::Failed;

use crate::checks::*;
use crate::common::*;
use crate::suite::*;

pub fn affinity_elements(s: &Suite) -> Result<String, Failed> {
    let out = run(s
        .lab
        .node(0)
        .command("nft")
        .map_err(|e| e.to_string())?
        .args(["-j", "list", "sets", "ip"]))?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    Ok(v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("set"))
        .filter(|set| set["name"].as_str().is_some_and(|n| n.contains("/sticky/")))
        .map(|set| set["elem"].to_string())
        .collect::<Vec<_>>()
        .join(" "))
}

pub fn affinity(s: &Suite) -> Result<(), Failed> {
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    s.apply(vec![
        ProxyEvent::ServiceApplied(Svc::new("sticky", &["10.96.0.40"], 80, "TCP").affinity(2).s),
        ProxyEvent::SliceApplied(slice(
            "sticky",
            IpFamily::V4,
            TCP_PORT,
            "TCP",
            &[
                (s.pod("a2"), &n1, true),
                (s.pod("b1"), &n2, true),
                (s.pod("b2"), &n2, true),
            ],
        )),
    ])?;
    let a1 = s.pod("a1");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..15 {
        let (pod, _) = tcp_request(&a1.place(), addr("10.96.0.40", 80), Duration::from_secs(2))?;
        seen.insert(pod);
    }
    if seen.len() != 1 {
        return Err(format!("affinity did not stick: {seen:?}").into());
    }
    let elems = affinity_elements(s)?;
    if !elems.contains(&a1.ip.to_string()) {
        return Err(format!("client not recorded in an affinity set: {elems}").into());
    }
    // The 2 s timeout expires the record (it is what ends the stickiness).
    wait_for("affinity record to expire", Duration::from_secs(6), || {
        affinity_elements(s)
            .ok()
            .filter(|e| !e.contains(&a1.ip.to_string()))
    })?;
    Ok(())
}
