//! Terminating endpoints serve only while nothing is ready.

use std::time::Duration;

use capstan_proxy::model::IpFamily;
use capstan_proxy::ProxyEvent;
use libtest_mimic::Failed;

use crate::checks::*;
use crate::common::*;
use crate::suite::*;

pub fn terminating(s: &Suite) -> Result<(), Failed> {
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    let mut ending = slice(
        "term",
        IpFamily::V4,
        TCP_PORT,
        "TCP",
        &[(s.pod("a2"), &n1, true), (s.pod("b1"), &n2, false)],
    );
    // b1: not ready, still serving, terminating.
    if let Some(c) = ending.endpoints[1].conditions.as_mut() {
        c.serving = Some(true);
        c.terminating = Some(true);
    }
    s.apply(vec![
        ProxyEvent::ServiceApplied(Svc::new("term", &["10.96.0.60"], 80, "TCP").s),
        ProxyEvent::SliceApplied(ending.clone()),
    ])?;
    for _ in 0..10 {
        let (pod, _) = tcp_request(
            &s.pod("b2").place(),
            addr("10.96.0.60", 80),
            Duration::from_secs(2),
        )?;
        if pod != "a2" {
            return Err(format!("terminating endpoint {pod} used while a2 is ready").into());
        }
    }
    // a2 goes away: the terminating one is all that is left, and is used.
    ending.endpoints.remove(0);
    s.apply(vec![ProxyEvent::SliceApplied(ending)])?;
    let (pod, _) = tcp_request(
        &s.pod("b2").place(),
        addr("10.96.0.60", 80),
        Duration::from_secs(2),
    )?;
    if pod != "b1" {
        return Err(format!("want the terminating b1, got {pod}").into());
    }
    Ok(())
}
