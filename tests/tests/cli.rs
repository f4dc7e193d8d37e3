//! Every binary answers --help and --version, and refuses a bad flag with a
//! single human line on stderr and a non-zero exit (no panic, no usage dump).

use std::process::Command;

use capstan_lab::{bins, privileged};

const BINARIES: &[&str] = &[
    "capstan-agent",
    "capstan-cni",
    "capstan-control",
    "capstan-lab",
    "capstan-testsrv",
];

fn binary(name: &str) -> Option<std::path::PathBuf> {
    match bins::path(name) {
        Ok(p) => Some(p),
        // Only `cargo test --workspace` builds every package's binaries.
        Err(e) if std::env::var(privileged::PRIVILEGED_ENV).as_deref() != Ok("1") => {
            eprintln!("SKIPPED {name}: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn every_binary_has_help_and_version() {
    for name in BINARIES {
        let Some(bin) = binary(name) else { continue };
        let out = Command::new(&bin).arg("--version").output().expect("run");
        assert!(out.status.success(), "{name} --version exits 0");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(env!("CARGO_PKG_VERSION")),
            "{name} --version prints the version: {text:?}"
        );
        let out = Command::new(&bin).arg("--help").output().expect("run");
        assert!(out.status.success(), "{name} --help exits 0");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{name} --help prints usage"
        );
    }
}

#[test]
fn a_bad_flag_is_one_line_and_non_zero() {
    for name in BINARIES {
        let Some(bin) = binary(name) else { continue };
        let out = Command::new(&bin)
            .arg("--no-such-flag")
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("run");
        assert!(!out.status.success(), "{name} fails on a bad flag");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err:?}");
        assert!(
            err.contains("--no-such-flag"),
            "{name} names the flag: {err:?}"
        );
        assert!(!err.contains("panicked"), "{name} does not panic: {err:?}");
    }
}
