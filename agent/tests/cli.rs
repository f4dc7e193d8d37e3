//! The agent binary's command line and config file: bad input is a one-line
//! error and a non-zero exit, before anything is touched. Needs no root.

use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_capstan-agent");

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(AGENT)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run agent");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn one_line_error(args: &[&str], needle: &str) {
    let (code, err) = run(args);
    assert_ne!(code, 0, "{args:?} must fail");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one line for {args:?}: {err:?}"
    );
    assert!(err.starts_with("capstan-agent: "), "{err:?}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

#[test]
fn bad_flags_are_one_line_errors() {
    one_line_error(&["--no-such-flag"], "--no-such-flag");
    one_line_error(&["--components", "overlay,bogus"], "bogus");
    one_line_error(&["--ip-masq", "maybe"], "maybe");
    one_line_error(&["--subnet-manager", "consul"], "consul");
}

#[test]
fn components_and_managers_not_built_yet_say_so() {
    // Kube mode reads its network config file first: none, one line.
    one_line_error(&["--subnet-manager", "kube"], "net-conf");
    one_line_error(
        &["--components", "proxy", "--cluster-cidr", "10.244.0.0"],
        "10.244.0.0",
    );
}

#[test]
fn config_file_keys_are_checked_and_flags_override_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "etcd-endpoints = [\"http://127.0.0.1:1\"]\nbogus-key = 1\n",
    )
    .expect("write");
    one_line_error(&["--config", bad.to_str().unwrap_or_default()], "bogus-key");
    one_line_error(
        &["--config", "/nonexistent/agent.toml"],
        "/nonexistent/agent.toml",
    );
    // The file holds a bad pod network; the flag wins.
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        "components = [\"proxy\"]\ncluster-cidr = [\"nope\"]\n",
    )
    .expect("write");
    one_line_error(&["--config", file.to_str().unwrap_or_default()], "nope");
    one_line_error(
        &[
            "--config",
            file.to_str().unwrap_or_default(),
            "--cluster-cidr",
            "10.244.0.0/16",
            "--subnet-manager",
            "kube",
        ],
        "kube",
    );
}

#[test]
fn reservation_and_eviction_flags_are_checked_before_anything_runs() {
    one_line_error(
        &["--components", "kubelet", "--system-reserved", "gpu=1"],
        "--system-reserved: unknown resource \"gpu\"",
    );
    one_line_error(
        &["--components", "kubelet", "--kube-reserved", "memory=lots"],
        "--kube-reserved: memory=\"lots\"",
    );
    one_line_error(
        &[
            "--components",
            "kubelet",
            "--eviction-hard",
            "memory.available>1Gi",
        ],
        "--eviction-hard: \"memory.available>1Gi\": only \"<\"",
    );
    one_line_error(
        &[
            "--components",
            "kubelet",
            "--eviction-hard",
            "nodefs.available<110%",
        ],
        "nodefs.available",
    );
    one_line_error(
        &[
            "--components",
            "kubelet",
            "--eviction-pressure-transition-period",
            "5 minutes",
        ],
        "--eviction-pressure-transition-period",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        "components = [\"kubelet\"]\neviction-hard = {\"memory.free\" = \"1Gi\"}\n",
    )
    .expect("write");
    one_line_error(
        &["--config", file.to_str().unwrap_or_default()],
        "unknown eviction signal \"memory.free\"",
    );
}

#[test]
fn help_and_version_succeed() {
    assert_eq!(run(&["--help"]).0, 0);
    assert_eq!(run(&["--version"]).0, 0);
}
