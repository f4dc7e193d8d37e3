//! `capstan-bench pod-latency` runs end to end in a lab (1 s cells), writes
//! JSON in the documented schema and an SVG, measures traffic in every cell
//! and leaves nothing behind. It asserts structure, never speed.

use std::process::Command;

use capstan_lab::{bins, netns, privileged};

#[test]
fn pod_latency_reports_every_row_with_traffic() {
    if !privileged::require(
        "pod_latency_reports_every_row_with_traffic",
        &["ip", "bridge", "etcd", "etcdctl", "sysctl"],
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("capstan-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("report.json");
    let svg = dir.join("report.svg");
    let before = netns::list_with_prefix("");
    let out = Command::new(bins::path("capstan-bench").expect("capstan-bench built"))
        .args([
            "pod-latency",
            "--duration",
            "1",
            "--rounds",
            "1",
            "--warmup",
            "0.1",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .expect("run capstan-bench");
    assert!(
        out.status.success(),
        "capstan-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| capstan | cross-node |"), "table: {table}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json written")).expect("valid JSON");
    assert!(report["machine"]["cpus"].as_u64().is_some_and(|n| n > 0));
    let rows = report["rows"].as_array().expect("rows");
    let pairs: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["dataplane"].as_str().unwrap_or("").to_string(),
                r["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for want in [
        ("underlay", "cross-node"),
        ("reference", "same-node"),
        ("reference", "cross-node"),
        ("capstan", "same-node"),
        ("capstan", "cross-node"),
    ] {
        assert!(
            pairs.contains(&(want.0.to_string(), want.1.to_string())),
            "row {want:?} in {pairs:?}"
        );
    }
    for r in rows {
        let name = format!("{} {}", r["dataplane"], r["path"]);
        for key in ["tcp_rr_us", "udp_rr_us"] {
            for p in ["p50", "p90", "p99", "p999"] {
                let v = r[key][p].as_f64().unwrap_or(0.0);
                assert!(v > 0.0, "{name}: {key}.{p} measured ({v})");
            }
        }
        assert!(
            r["tcp_crr_per_s"].as_f64().unwrap_or(0.0) > 0.0,
            "{name}: crr measured"
        );
        assert!(
            r["tcp_stream_gbit_s"].as_f64().unwrap_or(0.0) > 0.0,
            "{name}: stream measured"
        );
        assert!(
            r["ratio_to_underlay_p50"].as_f64().unwrap_or(0.0) > 0.0,
            "{name}: ratio"
        );
    }
    let plot = std::fs::read_to_string(&svg).expect("svg written");
    assert!(
        plot.contains("<svg") && plot.contains("capstan"),
        "svg has the rows"
    );

    let after = netns::list_with_prefix("");
    let new: Vec<_> = after
        .iter()
        .filter(|n| !before.contains(n))
        .filter(|n| n.starts_with("cl"))
        .collect();
    // Other tests' labs may come and go meanwhile; the bench's own lab is gone
    // once it returns, so no namespace of a lab it made may remain.
    let bench_labs: Vec<_> = new
        .iter()
        .filter(|n| n.contains("-ref-") || n.contains("-cap-"))
        .collect();
    assert!(
        bench_labs.is_empty(),
        "bench left namespaces: {bench_labs:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `capstan-bench pod-startup` runs end to end (2 nodes, capstan-control,
/// two kubelets) with a handful of pods and reports both rounds, memory and
/// CPU. Structure only, never speed.
#[test]
fn pod_startup_reports_both_rounds() {
    if !privileged::require(
        "pod_startup_reports_both_rounds",
        &["ip", "etcd", "containerd", "runc", "ctr"],
    ) {
        return;
    }
    let json =
        std::env::temp_dir().join(format!("capstan-bench-startup-{}.json", std::process::id()));
    let out = Command::new(bins::path("capstan-bench").expect("capstan-bench built"))
        .args([
            "pod-startup",
            "--pods",
            "4",
            "--batch",
            "2",
            "--idle-seconds",
            "1",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run capstan-bench");
    assert!(
        out.status.success(),
        "capstan-bench failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report written")).expect("JSON");
    let _ = std::fs::remove_file(&json);
    let rounds = v["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2, "{v}");
    for r in rounds {
        assert_eq!(r["pods"], 4, "{r}");
        let (run, ready) = (r["running_p99_ms"].as_f64(), r["ready_p99_ms"].as_f64());
        // Bound is seen no later than Running (same or an earlier event).
        let bound = r["bound_p50_ms"].as_f64();
        assert!(
            bound.is_some_and(|b| b > 0.0 && b <= r["running_p50_ms"].as_f64().unwrap_or(0.0)),
            "{r}"
        );
        assert!(
            run.is_some_and(|x| x > 0.0) && ready.is_some_and(|x| x >= run.unwrap_or(0.0)),
            "{r}"
        );
    }
    for k in ["agent_rss_mib", "agent_idle_cpu_percent"] {
        let a = v[k].as_array().expect(k);
        assert_eq!(a.len(), 2, "{k}: {v}");
        assert!(
            a.iter()
                .all(|x| x.as_f64().is_some_and(|x| x > 0.0 || k.contains("cpu"))),
            "{k}: {v}"
        );
    }
}
