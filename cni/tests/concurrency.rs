//! 64 ADDs at once into 64 pods of one node: distinct addresses, then 64
//! parallel DELs leave an empty IPAM store and no veth behind.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;

const PODS: usize = 64;

#[test]
fn sixty_four_parallel_adds_then_dels() {
    if !may_run("sixty_four_parallel_adds_then_dels") {
        return;
    }
    let fx = Arc::new(Fixture::new());
    fx.write_subnet_file(SUBNET_V4);
    let conf = fx.conf("1.1.0");
    let pods: Vec<_> = (0..PODS).map(|i| fx.pod(&format!("p{i}"))).collect();

    let run_all = |command: &'static str| -> Vec<Answer> {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                let (fx, pod, conf) = (Arc::clone(&fx), pod.clone(), conf.clone());
                std::thread::spawn(move || {
                    fx.call(command, &format!("c-par-{i}"), &pod, "eth0", &conf)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    };

    let adds = run_all("ADD");
    let mut addresses = HashSet::new();
    for a in &adds {
        let r = a.expect_ok().json();
        let addr = r["ips"][0]["address"]
            .as_str()
            .expect("address")
            .to_string();
        assert!(
            addresses.insert(addr.clone()),
            "address {addr} handed out twice"
        );
    }
    assert_eq!(addresses.len(), PODS);
    assert_eq!(fx.reservations().len(), PODS);
    assert_eq!(fx.node_veths().len(), PODS);
    // Every pod really holds the address its result names.
    for (a, pod) in adds.iter().zip(&pods) {
        let addr = a.json()["ips"][0]["address"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let shown = ip_in(&ns_name(pod), &["-o", "addr", "show", "dev", "eth0"]);
        assert!(
            shown.contains(&addr),
            "{addr} not on {}: {shown}",
            pod.display()
        );
    }

    for d in run_all("DEL") {
        d.expect_ok();
    }
    assert!(
        fx.reservations().is_empty(),
        "IPAM store not empty: {:?}",
        fx.reservations()
    );
    assert!(
        fx.node_veths().is_empty(),
        "leftover veths: {:?}",
        fx.node_veths()
    );
}
