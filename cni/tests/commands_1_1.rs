//! VERSION, and the 1.1 commands GC and STATUS.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;

#[test]
fn version_lists_every_supported_version() {
    if !may_run("version_lists_every_supported_version") {
        return;
    }
    let fx = Fixture::new();
    let a = fx.exec(
        Path::new(PLUGIN),
        &[("CNI_COMMAND", "VERSION")],
        br#"{"cniVersion":"1.1.0"}"#,
    );
    let v = a.expect_ok().json();
    assert_eq!(v["cniVersion"], "1.1.0");
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
    // Also with no stdin at all.
    fx.exec(Path::new(PLUGIN), &[("CNI_COMMAND", "VERSION")], b"")
        .expect_ok();
}

#[test]
fn status_reports_readiness() {
    if !may_run("status_reports_readiness") {
        return;
    }
    let fx = Fixture::new();
    let status = |fx: &Fixture| {
        fx.exec(
            Path::new(PLUGIN),
            &[("CNI_COMMAND", "STATUS")],
            fx.conf("1.1.0").to_string().as_bytes(),
        )
    };
    let a = status(&fx);
    assert_eq!(a.code(), 50, "no subnet file yet: {}", a.stdout);
    assert!(a.stdout.contains("subnet"), "{}", a.stdout);
    fx.write_subnet_file(SUBNET_V4);
    let a = status(&fx);
    assert!(a.ok && a.stdout.is_empty(), "{a:?}");
    // STATUS is a 1.1 command.
    let a = fx.exec(
        Path::new(PLUGIN),
        &[("CNI_COMMAND", "STATUS")],
        fx.conf("1.0.0").to_string().as_bytes(),
    );
    assert_eq!(a.code(), 1);
}

#[test]
fn gc_releases_what_the_runtime_no_longer_knows() {
    if !may_run("gc_releases_what_the_runtime_no_longer_knows") {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(SUBNET_V4);
    let conf = fx.conf("1.1.0");
    let keep = fx.pod("keep");
    let lost = fx.pod("lost");
    let kept = fx
        .call("ADD", "c-keep", &keep, "eth0", &conf)
        .expect_ok()
        .json();
    fx.call("ADD", "c-lost", &lost, "eth0", &conf).expect_ok();
    assert_eq!(fx.reservations().len(), 2);

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c-keep", "ifname": "eth0"}]);
    let a = fx.exec(
        Path::new(PLUGIN),
        &[("CNI_COMMAND", "GC")],
        gc.to_string().as_bytes(),
    );
    assert!(a.ok && a.stdout.is_empty(), "{a:?}");
    let kept_ip = kept["ips"][0]["address"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches("/24")
        .to_string();
    assert_eq!(fx.reservations(), vec![kept_ip]);

    // Without the list GC refuses rather than freeing live pods' addresses.
    let a = fx.exec(
        Path::new(PLUGIN),
        &[("CNI_COMMAND", "GC")],
        conf.to_string().as_bytes(),
    );
    assert_eq!(a.code(), 7);
    assert_eq!(fx.reservations().len(), 1);

    fx.call("DEL", "c-keep", &keep, "eth0", &conf).expect_ok();
    fx.call("DEL", "c-lost", &lost, "eth0", &conf).expect_ok();
    assert!(fx.reservations().is_empty());
}
