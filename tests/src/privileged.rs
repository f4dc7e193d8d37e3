//! Decides whether a test that needs root and real kernel features may run.
//! Under `CAPSTAN_PRIVILEGED_TESTS=1` a missing prerequisite fails the test;
//! otherwise (a contributor's plain `cargo test`) the test is skipped, loudly.

use std::path::Path;

/// Environment variable the test command sets so that nothing is skipped.
pub const PRIVILEGED_ENV: &str = "CAPSTAN_PRIVILEGED_TESTS";

fn privileged_required() -> bool {
    std::env::var(PRIVILEGED_ENV).is_ok_and(|v| v == "1")
}

/// Returns true when the test may go on. Returns false (after saying why on
/// stderr) when it must be skipped. Panics with the reason when privileged
/// tests are required and a prerequisite is missing.
pub fn require(test: &str, binaries: &[&str]) -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root".to_string());
    }
    for bin in binaries {
        if which(bin).is_none() {
            missing.push(format!("`{bin}` on PATH"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{test} needs {} (install them with deploy/local/install-deps.sh and run as root)",
        missing.join(", ")
    );
    if privileged_required() {
        panic!("{PRIVILEGED_ENV}=1 but {why}");
    }
    eprintln!("SKIPPED: {why}; set {PRIVILEGED_ENV}=1 to make this a failure");
    false
}

/// Finds an executable on PATH (and in the sbin directories, which root's
/// PATH has but a contributor's may not).
pub fn which(bin: &str) -> Option<std::path::PathBuf> {
    if bin.contains('/') {
        return Path::new(bin).is_file().then(|| bin.into());
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|dir| Path::new(dir).join(bin))
        .find(|p| p.is_file());
    found
}
