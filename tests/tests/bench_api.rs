//! `capstan-bench api` runs end to end with tiny sizes: the JSON has every
//! operation with samples and no errors, and the goal verdicts agree with
//! the numbers. It asserts structure, never speed.

use std::process::Command;

use capstan_lab::{bins, privileged};

#[test]
fn api_bench_reports_every_operation_with_samples() {
    if !privileged::require(
        "api_bench_reports_every_operation_with_samples",
        &["ip", "etcd"],
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("capstan-bench-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("report.json");
    let out = Command::new(bins::path("capstan-bench").expect("capstan-bench built"))
        .args([
            "api",
            "--clients",
            "4",
            "--pods",
            "50",
            "--ops",
            "10",
            "--stored",
            "300",
            "--rate",
            "50",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run capstan-bench");
    assert!(
        out.status.success(),
        "capstan-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| list (50 pods) | 4 |"), "table: {table}");

    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json written")).expect("valid JSON");
    let cells = r["cells"].as_array().expect("cells");
    let ops: Vec<&str> = cells.iter().filter_map(|c| c["op"].as_str()).collect();
    assert_eq!(
        ops,
        ["create", "watch", "get", "patch", "create", "watch", "patch", "list"]
    );
    for c in cells {
        let op = c["op"].as_str().unwrap_or("");
        let want = if op == "list" { 100 } else { 40 };
        assert_eq!(c["samples"].as_u64(), Some(want), "{op}: samples");
        assert_eq!(c["errors"].as_u64(), Some(0), "{op}: errors");
        let p50 = c["p50_ms"].as_f64().unwrap_or(0.0);
        let p99 = c["p99_ms"].as_f64().unwrap_or(0.0);
        let max = c["max_ms"].as_f64().unwrap_or(0.0);
        assert!(
            p50 > 0.0 && p50 <= p99 && p99 <= max,
            "{op}: {p50} {p99} {max}"
        );
        assert!(c["per_second"].as_f64().unwrap_or(0.0) > 0.0, "{op}: rate");
    }
    // The open-loop round is paced: its 40 calls are due over 39/50 s, so
    // it cannot finish faster than that (a bound by construction, not a
    // speed check), and the table names its rate.
    let paced: Vec<&serde_json::Value> = cells
        .iter()
        .filter(|c| c["rate_per_s"].as_f64() == Some(50.0))
        .collect();
    assert_eq!(paced.len(), 3, "create, watch and patch at 50/s");
    for c in &paced {
        if c["op"] != "watch" {
            let per_s = c["per_second"].as_f64().unwrap_or(f64::INFINITY);
            assert!(
                per_s <= 40.0 / 0.78,
                "{}: {per_s} calls/s is faster than paced",
                c["op"]
            );
        }
    }
    assert!(table.contains("create, open loop 50/s"), "table: {table}");
    let g = &r["goals"];
    let worst = |op: &str| {
        cells
            .iter()
            .find(|c| c["op"] == op && c["rate_per_s"].is_null())
            .and_then(|c| c["p99_ms"].as_f64())
            .unwrap_or(f64::NAN)
    };
    assert_eq!(
        g["mutating_p99_ms"].as_f64(),
        Some(worst("create").max(worst("patch")))
    );
    assert_eq!(
        g["mutating_met"].as_bool(),
        Some(worst("create").max(worst("patch")) < 25.0)
    );
    assert_eq!(g["watch_met"].as_bool(), Some(worst("watch") < 10.0));
    let open = &g["open_loop"][0];
    assert_eq!(open["rate_per_s"].as_f64(), Some(50.0));
    let p99 = |op: &str| {
        paced
            .iter()
            .find(|c| c["op"] == op)
            .and_then(|c| c["p99_ms"].as_f64())
            .unwrap_or(f64::NAN)
    };
    assert_eq!(
        open["mutating_p99_ms"].as_f64(),
        Some(p99("create").max(p99("patch")))
    );
    assert_eq!(open["watch_met"].as_bool(), Some(p99("watch") < 10.0));
    assert_eq!(r["pods_stored"].as_u64(), Some(300));
    let idle = r["control_rss_idle_mib"].as_f64().unwrap_or(0.0);
    let stored = r["control_rss_stored_mib"].as_f64().unwrap_or(0.0);
    assert!(idle > 0.0 && stored > 0.0, "rss {idle} → {stored}");
    assert!(r["etcd_db_mib"].as_f64().unwrap_or(0.0) > 0.0, "etcd db");
    assert!(r["list_all_error"].is_null(), "{}", r["list_all_error"]);
    assert!(r["anchor"].as_str().is_some_and(|a| !a.is_empty()));
    let _ = std::fs::remove_dir_all(&dir);
}
