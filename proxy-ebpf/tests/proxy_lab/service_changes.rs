//! A service changing shape over its life: shared pick chains to chains of
//! its own and back, then deletion, with nothing left behind.

use std::time::Duration;

use capstan_proxy::model::IpFamily;
use capstan_proxy::ProxyEvent;
use libtest_mimic::Failed;

use crate::checks::*;
use crate::common::*;
use crate::suite::*;

/// Lines of node 1's IPv4 table that mention `needle`.
fn table_lines(s: &Suite, needle: &str) -> Result<Vec<String>, Failed> {
    Ok(nft0(s, &["list", "table", "ip", "capstan-proxy"])?
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| l.trim().to_string())
        .collect())
}

pub fn affinity_flip(s: &Suite) -> Result<(), Failed> {
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    let to = addr("10.96.0.80", 80);
    let a1 = s.pod("a1").place();
    let eps = slice(
        "flip",
        IpFamily::V4,
        TCP_PORT,
        "TCP",
        &[(s.pod("a2"), &n1, true), (s.pod("b1"), &n2, true)],
    );
    let shared = Svc::new("flip", &["10.96.0.80"], 80, "TCP").s;
    s.apply(vec![
        ProxyEvent::ServiceApplied(shared.clone()),
        ProxyEvent::SliceApplied(eps),
    ])?;
    reach_all(&a1, to, &["a2", "b1"], |_| Ok(()))?;
    if !table_lines(s, "/flip/")?.is_empty() {
        return Err("a shared service owns chains".into());
    }
    // Affinity on: the service gets chains and sets of its own, and sticks.
    let sticky = Svc::new("flip", &["10.96.0.80"], 80, "TCP").affinity(60).s;
    s.apply(vec![ProxyEvent::ServiceApplied(sticky.clone())])?;
    if table_lines(s, "/flip/")?.is_empty() {
        return Err("affinity made no chain of the service's own".into());
    }
    let (first, _) = tcp_request(&a1, to, Duration::from_secs(2))?;
    for _ in 0..10 {
        let (pod, _) = tcp_request(&a1, to, Duration::from_secs(2))?;
        if pod != first {
            return Err(format!("affinity did not stick: {first} then {pod}").into());
        }
    }
    // Off again: back to elements only, both endpoints, no chain or set left.
    s.apply(vec![ProxyEvent::ServiceApplied(shared)])?;
    let left = table_lines(s, "/flip/")?;
    if !left.is_empty() {
        return Err(format!("chains or sets left after affinity was removed: {left:?}").into());
    }
    reach_all(&a1, to, &["a2", "b1"], |_| Ok(()))?;
    // Deleted: nothing of it in the table, and it no longer answers.
    s.apply(vec![ProxyEvent::ServiceDeleted(sticky)])?;
    let left = table_lines(s, "10.96.0.80")?;
    if !left.is_empty() {
        return Err(format!("elements left after the service was deleted: {left:?}").into());
    }
    if tcp_request(&a1, to, Duration::from_millis(300)).is_ok() {
        return Err("a deleted service still answers".into());
    }
    Ok(())
}
