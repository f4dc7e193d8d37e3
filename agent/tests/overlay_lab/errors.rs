//! Leasing at its edges: a malformed config or an exhausted network is a
//! clear error; concurrent acquires get distinct subnets.

use std::net::Ipv4Addr;
use std::time::Duration;

use capstan_overlay::subnet::etcd::{EtcdStore, StoreSubnetManager};
use capstan_overlay::subnet::{BackendData, LeaseAttrs, NetworkConfig, SubnetManager};
use capstan_overlay::types::NodeIp;
use libtest_mimic::Failed;

use crate::common::*;
use crate::suite::*;

pub fn malformed_config(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    etcdctl(
        lab,
        &[
            "put",
            "/capstan/bad/config",
            r#"{"Network":"10.244.0.0/16","SubnetLen":"x"}"#,
        ],
    );
    let tmp = lab.node(0).dir().join("run/capstan/bad.env");
    let (ok, err) = agent_exit(lab, 0, &["--etcd-prefix", "/capstan/bad"], &tmp);
    check(!ok, "agent fails on malformed config")?;
    check(
        err.contains("/capstan/bad/config") && err.contains("malformed"),
        format!("error names the key: {err}"),
    )?;
    let (ok, err) = agent_exit(lab, 0, &["--etcd-prefix", "/capstan/missing"], &tmp);
    check(
        !ok && err.contains("/capstan/missing/config") && err.contains("missing"),
        format!("missing config: {err}"),
    )?;
    check(!tmp.exists(), "no subnet file written")
}

pub fn exhausted_network(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    etcdctl(
        lab,
        &[
            "put",
            "/capstan/tiny/config",
            r#"{"Network":"10.252.0.0/23","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":9}}"#,
        ],
    );
    etcdctl(
        lab,
        &[
            "put",
            "/capstan/tiny/subnets/10.252.1.0-24",
            r#"{"PublicIP":"192.168.250.99","BackendType":"vxlan","BackendData":{"VtepMAC":"02:00:00:00:00:99"}}"#,
        ],
    );
    let tmp = lab.node(0).dir().join("run/capstan/tiny.env");
    let leases = || etcdctl(lab, &["lease", "list"]);
    let before = leases();
    let (ok, err) = agent_exit(lab, 0, &["--etcd-prefix", "/capstan/tiny"], &tmp);
    check(!ok, "agent fails on an exhausted network")?;
    check(
        leases() == before,
        format!(
            "the failed acquire revoked its etcd lease: before {before:?}, after {:?}",
            leases()
        ),
    )?;
    check(
        err.contains("10.252.0.0/23") && err.contains("no free"),
        format!("clear exhaustion error: {err}"),
    )?;
    check(
        err.trim().lines().count() == 1
            || err
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("capstan-agent:")),
        "one-line error",
    )
}

pub fn concurrent_acquire(s: &Suite) -> Result<(), Failed> {
    let ep = s.lab.etcd_endpoint();
    let failures = in_node(&s.lab, 0, move || {
        Box::pin(async move {
            let mut failures = Vec::new();
            for round in 0..10 {
                let prefix = format!("/capstan/race-{round}");
                let a = EtcdStore::connect(std::slice::from_ref(&ep), &prefix)
                    .await
                    .expect("connect");
                let b = EtcdStore::connect(std::slice::from_ref(&ep), &prefix)
                    .await
                    .expect("connect");
                let cfg =
                    NetworkConfig::parse("x", br#"{"Network":"10.253.0.0/22","SubnetLen":24}"#)
                        .expect("cfg");
                let attrs = |n: u8| LeaseAttrs {
                    public_ip: NodeIp(Ipv4Addr::new(192, 168, 9, n)),
                    backend_type: "vxlan".into(),
                    backend_data: BackendData::default(),
                    node_name: format!("racer-{n}"),
                    ipv6_subnet: None,
                    backend_v6_data: None,
                };
                let (ma, mb) = (
                    StoreSubnetManager {
                        store: a,
                        ttl: Duration::from_secs(30),
                    },
                    StoreSubnetManager {
                        store: b,
                        ttl: Duration::from_secs(30),
                    },
                );
                let (a1, a2) = (attrs(1), attrs(2));
                let (ra, rb) =
                    tokio::join!(ma.acquire(&cfg, &a1, None), mb.acquire(&cfg, &a2, None));
                match (ra, rb) {
                    (Ok(x), Ok(y)) if x.subnet != y.subnet => {}
                    other => failures.push(format!("round {round}: {other:?}")),
                }
            }
            failures
        })
    });
    check(failures.is_empty(), failures.join("; "))
}
