//! What must lose no packet: an agent restart, an etcd outage (the lease
//! is renewed after), a watch that falls behind compaction.

use std::net::Ipv4Addr;
use std::time::Duration;

use capstan_overlay::subnet::etcd::{EtcdStore, LeaseStore};
use capstan_overlay::subnet::{BackendData, LeaseAttrs, LeaseEvent, WatchItem};
use capstan_overlay::types::NodeIp;
use libtest_mimic::Failed;

use crate::common::*;
use crate::suite::*;

pub fn restart_loses_nothing(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    let before = ip_in(
        lab.node(0).netns_name(),
        &["-d", "link", "show", "capstan.1"],
    );
    let (sent, got) = ping_during(s, 0, 1, 600, || {
        std::thread::sleep(Duration::from_millis(1500));
        let mut agents = s.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut d) = agents[0].take() {
            d.kill();
        }
        if let Some(mut d) = agents[1].take() {
            d.kill();
        }
        agents[0] = Some(spawn_overlay(lab, 0));
        agents[1] = Some(spawn_overlay(lab, 1));
    });
    check(
        sent >= 600 && got == sent,
        format!("ping across agent restarts: {got}/{sent}"),
    )?;
    wait_until("mesh after restart", Duration::from_secs(10), || {
        meshed(lab, 0) && meshed(lab, 1)
    })?;
    let after = ip_in(
        lab.node(0).netns_name(),
        &["-d", "link", "show", "capstan.1"],
    );
    let ifindex = |t: &str| t.split(':').next().unwrap_or_default().to_string();
    check(
        ifindex(&before) == ifindex(&after),
        "device kept (not recreated)",
    )?;
    let log = agent_log(lab, 0);
    let last_start = log.rfind("underlay").unwrap_or(0);
    check(
        !log[last_start..].contains("applied"),
        format!(
            "restarted agent changed nothing in the kernel:\n{}",
            &log[last_start..]
        ),
    )
}

pub fn etcd_outage(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    let log_len: Vec<usize> = (0..NODES).map(|i| agent_log(lab, i).len()).collect();
    let (sent, got) = ping_during(s, 0, 2, 2000, || {
        std::thread::sleep(Duration::from_millis(1000));
        lab.etcd_stop();
        std::thread::sleep(Duration::from_secs(15));
        lab.etcd_start().expect("restart etcd");
    });
    check(
        sent >= 2000 && got == sent,
        format!("ping across etcd outage: {got}/{sent}"),
    )?;
    for i in 0..NODES {
        wait_until(
            &format!("node {i} renews after outage"),
            Duration::from_secs(15),
            || {
                let log = agent_log(lab, i);
                let new = &log[log_len[i].min(log.len())..];
                new.contains("subnet store unreachable")
                    && new.contains("subnet store reachable again")
                    && new.rfind("lease renewed") > new.find("subnet store unreachable")
            },
        )?;
        let log = agent_log(lab, i);
        let new = &log[log_len[i].min(log.len())..];
        check(
            new.matches("subnet store unreachable").count() == 1,
            format!("node {i}: outage logged once, not per retry:\n{new}"),
        )?;
    }
    // The watch is live again: a lease change still propagates.
    let victim = 1;
    let sn = node_subnet(lab, victim).ok_or("subnet")?;
    {
        let mut agents = s.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut d) = agents[victim].take() {
            d.stop(Duration::from_secs(5));
        }
    }
    etcdctl(
        lab,
        &[
            "del",
            &format!("/capstan/network/subnets/{}-{}", sn.network(), sn.prefix()),
        ],
    );
    let ns0 = lab.node(0).netns_name().to_string();
    wait_until("watch resumed after outage", Duration::from_secs(2), || {
        lacks_peer(lab, &ns0, sn, lab.node(victim).ip())
    })?;
    s.respawn_and_remesh(victim)?;
    Ok(())
}

pub fn watch_recovers_from_compaction(s: &Suite) -> Result<(), Failed> {
    let ep = s.lab.etcd_endpoint();
    let result: Result<(), String> = in_node(&s.lab, 0, move || {
        Box::pin(async move {
            let store = EtcdStore::connect(&[ep], "/capstan/compact")
                .await
                .map_err(|e| e.to_string())?;
            let attrs = LeaseAttrs {
                public_ip: NodeIp(Ipv4Addr::new(192, 168, 9, 1)),
                backend_type: "vxlan".into(),
                backend_data: BackendData::default(),
                node_name: String::new(),
                ipv6_subnet: None,
                backend_v6_data: None,
            };
            let id = store
                .grant(Duration::from_secs(60))
                .await
                .map_err(|e| e.to_string())?;
            let s1: ipnetwork::Ipv4Network = "10.254.1.0/24".parse().map_err(|e| format!("{e}"))?;
            let s2: ipnetwork::Ipv4Network = "10.254.2.0/24".parse().map_err(|e| format!("{e}"))?;
            let s3: ipnetwork::Ipv4Network = "10.254.3.0/24".parse().map_err(|e| format!("{e}"))?;
            store
                .create(s1, &attrs, id)
                .await
                .map_err(|e| e.to_string())?;
            let old = store.list().await.map_err(|e| e.to_string())?.revision;
            store
                .create(s2, &attrs, id)
                .await
                .map_err(|e| e.to_string())?;
            let mut c = store.client();
            c.delete(store.subnet_key(s1), None)
                .await
                .map_err(|e| e.to_string())?;
            let now = store.list().await.map_err(|e| e.to_string())?.revision;
            c.compact(now, None).await.map_err(|e| e.to_string())?;
            // Watching from below the compaction: a full re-list first.
            let mut rx = store.watch(old + 1).await.map_err(|e| e.to_string())?;
            let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .map_err(|_| "no watch item")?;
            match first {
                Some(Ok(WatchItem::Resync(list))) => {
                    let subnets: Vec<_> = list.leases.iter().map(|l| l.subnet).collect();
                    if subnets != vec![s2] {
                        return Err(format!("resync list {subnets:?}"));
                    }
                }
                other => return Err(format!("expected a resync, got {other:?}")),
            }
            // ...then it resumes with live events.
            store
                .create(s3, &attrs, id)
                .await
                .map_err(|e| e.to_string())?;
            let next = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .map_err(|_| "no event after resync")?;
            match next {
                Some(Ok(WatchItem::Events { events, .. })) if matches!(events.as_slice(), [LeaseEvent::Put(l)] if l.subnet == s3) => {
                    Ok(())
                }
                other => Err(format!("expected put of {s3}, got {other:?}")),
            }
        })
    });
    result.map_err(Failed::from)
}
