//! How the proxy syncs: a partial sync touches one service, a restart
//! keeps connections and rules until the resync, a table someone else
//! altered forces a full one.

use std::time::Duration;

use capstan_proxy::model::IpFamily;
use capstan_proxy::ProxyEvent;
use libtest_mimic::Failed;

use crate::checks::*;
use crate::common::*;
use crate::suite::*;

/// Rule handles of the chains in node 0's table whose name contains
/// `chain_prefix`: unchanged handles mean no rule was rewritten.
pub fn handles(s: &Suite, chain_prefix: &str) -> Result<Vec<u64>, Failed> {
    let out = run(s
        .lab
        .node(0)
        .command("nft")
        .map_err(|e| e.to_string())?
        .args(["-j", "-a", "list", "table", "ip", "capstan-proxy"]))?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    Ok(v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("rule"))
        .filter(|r| {
            r["chain"]
                .as_str()
                .is_some_and(|c| c.contains(chain_prefix))
        })
        .filter_map(|r| r["handle"].as_u64())
        .collect())
}

pub fn partial_sync(s: &Suite) -> Result<(), Failed> {
    // web has no chain of its own (elements only): no rule of the table
    // may be rewritten; a new shared pick chain may appear.
    let before = handles(s, "")?;
    if before.is_empty() {
        return Err("the table has no rules".into());
    }
    let n1 = s.node_name(0);
    let reports = s.apply(vec![
        ProxyEvent::ServiceApplied(Svc::new("extra", &["10.96.0.25"], 80, "TCP").s),
        ProxyEvent::SliceApplied(slice(
            "extra",
            IpFamily::V4,
            TCP_PORT,
            "TCP",
            &[(s.pod("a2"), &n1, true)],
        )),
    ])?;
    for r in &reports {
        if r.full || r.services_changed != 1 || r.commands > 12 {
            return Err(format!("want a small partial sync, got {r:?}").into());
        }
    }
    let after = handles(s, "")?;
    if !before.iter().all(|h| after.contains(h)) {
        return Err(format!("rules were rewritten: {before:?} -> {after:?}").into());
    }
    let (pod, _) = tcp_request(
        &s.pod("b2").place(),
        addr("10.96.0.25", 80),
        Duration::from_secs(2),
    )?;
    if pod != "a2" {
        return Err(format!("extra answered from {pod}").into());
    }
    Ok(())
}

pub fn restart(s: &Suite) -> Result<(), Failed> {
    let a1 = s.pod("a1");
    let mut conn = Conn::open(&a1.place(), addr(WEB_V4, 80))?;
    let (first, _) = conn.ask()?;
    let mut fresh = proxy_for(&s.lab, 0);
    // Nothing is written before the initial state is known.
    if fresh.sync()?.is_some() {
        return Err("a proxy synced before its source's initial list".into());
    }
    if conn.ask()?.0 != first {
        return Err("connection moved".into());
    }
    tcp_request(&a1.place(), addr(WEB_V4, 80), Duration::from_secs(2))
        .map_err(|e| format!("rules gone during restart: {e}"))?;
    for e in s.history.lock().map_err(|_| "poisoned")?.iter() {
        fresh.handle(e.clone());
    }
    let r = fresh.sync()?.ok_or("no sync after restart")?;
    if !r.full {
        return Err("the first sync after a restart must be full".into());
    }
    if r.recreated {
        return Err("the resync re-created the table instead of restoring it in place".into());
    }
    let (again, _) = conn
        .ask()
        .map_err(|e| format!("established connection broken by the resync: {e}"))?;
    if again != first {
        return Err(format!("established connection moved from {first} to {again}").into());
    }
    *s.proxies[0].lock().map_err(|_| "poisoned")? = fresh;
    Ok(())
}

pub fn tampering(s: &Suite) -> Result<(), Failed> {
    // A table someone else owns, in the same namespace.
    nft0(s, &["add", "table", "ip", "foreign"])?;
    nft0(s, &["add", "chain", "ip", "foreign", "c"])?;
    nft0(s, &["add", "rule", "ip", "foreign", "c", "counter"])?;
    nft0(s, &["flush", "chain", "ip", "capstan-proxy", "services"])?;
    let reports = s.apply(vec![ProxyEvent::ServiceDeleted(
        Svc::new("extra", &["10.96.0.25"], 80, "TCP").s,
    )])?;
    if !reports[0].full || reports[1].full || reports[0].recreated {
        return Err(format!("want a full sync in place on node 1 only: {reports:?}").into());
    }
    tcp_request(
        &s.pod("a1").place(),
        addr(WEB_V4, 80),
        Duration::from_secs(2),
    )
    .map_err(|e| format!("web after resync: {e}"))?;
    let r = tcp_request(
        &s.pod("a1").place(),
        addr("10.96.0.25", 80),
        Duration::from_millis(500),
    );
    if r.is_ok() {
        return Err("deleted service still answers".into());
    }
    let foreign = nft0(s, &["list", "table", "ip", "foreign"])?;
    if !foreign.contains("counter") {
        return Err(format!("the full sync touched a table it does not own: {foreign}").into());
    }
    Ok(())
}
