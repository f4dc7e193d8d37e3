//! The agent repairs the kernel and follows etcd: deleted entries come
//! back from netlink events, another VNI's device goes, a deleted lease
//! leaves every peer.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;

use crate::common::*;
use crate::suite::*;

pub fn drift_is_repaired(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    let ns = lab.node(0).netns_name().to_string();
    let peer = 1;
    let sn = node_subnet(lab, peer).ok_or("peer subnet")?;
    let sn6 = node_subnet6(lab, peer).ok_or("peer v6 subnet")?;
    let own = node_subnet(lab, 0).ok_or("own subnet")?;
    let fdb = fdb_in(&ns, "capstan.1");
    let mac = fdb
        .lines()
        .find(|l| l.contains(&format!("dst {}", lab.node(peer).ip())))
        .and_then(|l| l.split_whitespace().next())
        .ok_or(format!("peer fdb entry in {fdb}"))?
        .to_string();
    let vtep = sn.network().to_string();
    let peer_ip = lab.node(peer).ip().to_string();
    // Behind the agent's back: a route, a neighbour, the v6 route, the FDB
    // entry and the device's own address.
    let t0 = Instant::now();
    for args in [
        vec!["route", "del", &sn.to_string() as &str],
        vec!["neigh", "del", &vtep, "dev", "capstan.1"],
        vec!["-6", "route", "del", &sn6.to_string()],
        vec![
            "addr",
            "del",
            &format!("{}/32", own.network()),
            "dev",
            "capstan.1",
        ],
    ] {
        let out = std::process::Command::new("ip")
            .args(["-n", &ns])
            .args(&args)
            .output()?;
        check(
            out.status.success(),
            format!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr)),
        )?;
    }
    let out = std::process::Command::new("bridge")
        .args([
            "-n",
            &ns,
            "fdb",
            "del",
            &mac,
            "dev",
            "capstan.1",
            "dst",
            &peer_ip,
        ])
        .output()?;
    check(
        out.status.success(),
        format!("bridge fdb del: {}", String::from_utf8_lossy(&out.stderr)),
    )?;
    let took = wait_until("node 0 restored", Duration::from_secs(2), || {
        meshed(lab, 0)
            && has_peer6(lab, &ns, peer)
            && ip_in(&ns, &["-o", "addr", "show", "dev", "capstan.1"])
                .contains(&format!("inet {}/32", own.network()))
    })?;
    eprintln!(
        "    drift repaired in {took:?} (deleted at +0, restored at +{:?})",
        t0.elapsed()
    );
    check(
        took < Duration::from_millis(1500),
        format!("repair took {took:?}"),
    )?;
    tcp_echo(&s.pods[0], s.pods[peer].ip).map_err(|e| format!("tcp after repair: {e}"))?;
    let to6 = s.pods[peer].ip6.ok_or("pod v6")?;
    tcp_echo(&s.pods[0], to6).map_err(|e| format!("tcp6 after repair: {e}"))?;
    Ok(())
}

pub fn stale_vni_device_removed(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    let ns = lab.node(0).netns_name().to_string();
    let ip = lab.node(0).ip().to_string();
    // What a run with VNI 77 would have left; plus a look-alike it must keep.
    for (name, vni) in [("capstan.77", "77"), ("capstanx77", "78")] {
        let out = std::process::Command::new("ip")
            .args(["-n", &ns, "link", "add", name, "type", "vxlan", "id", vni])
            .args(["dstport", "8472", "local", &ip, "nolearning"])
            .output()?;
        check(
            out.status.success(),
            format!("add {name}: {}", String::from_utf8_lossy(&out.stderr)),
        )?;
    }
    let gone = wait_until("capstan.77 removed", Duration::from_secs(2), || {
        !ip_in(&ns, &["link", "show"]).contains("capstan.77")
    });
    let kept = ip_in(&ns, &["link", "show", "capstanx77"]).contains("capstanx77");
    let _ = std::process::Command::new("ip")
        .args(["-n", &ns, "link", "del", "capstanx77"])
        .output();
    gone?;
    check(kept, "a device outside capstan.<n> is left alone")?;
    check(meshed(lab, 0), "current device untouched")
}

pub fn deleted_lease_removed(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    let victim = 2;
    let sn = node_subnet(lab, victim).ok_or("subnet")?;
    let peer_ip = lab.node(victim).ip();
    // Stop the victim's agent so it does not re-create its lease at once.
    {
        let mut agents = s.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut d) = agents[victim].take() {
            d.stop(Duration::from_secs(5));
        }
    }
    let key = format!("/capstan/network/subnets/{}-{}", sn.network(), sn.prefix());
    etcdctl(lab, &["del", &key]);
    let t0 = Instant::now();
    for i in 0..NODES {
        if i == victim {
            continue;
        }
        let ns = lab.node(i).netns_name().to_string();
        wait_until(
            &format!("node {i} drops {sn}"),
            Duration::from_secs(2) - t0.elapsed().min(Duration::from_secs(2)),
            || lacks_peer(lab, &ns, sn, peer_ip),
        )?;
    }
    eprintln!(
        "    lease deletion applied on both peers in {:?}",
        t0.elapsed()
    );
    // The victim comes back with the same subnet (from its subnet file).
    s.respawn_and_remesh(victim)?;
    check(
        node_subnet(lab, victim) == Some(sn),
        "victim got its subnet back",
    )
}
