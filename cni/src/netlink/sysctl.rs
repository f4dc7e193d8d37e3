//! Sysctls under /proc/sys/net, which always reflect the network namespace
//! of the thread that opens the file. Must only be called on a thread that
//! is in the namespace it means to change.

use std::path::Path;

/// Sets `path` to `value` unless it already is (avoids a write per ADD).
pub fn ensure(path: &str, value: &str) -> std::io::Result<()> {
    let path = Path::new(path);
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(path, value)
}

pub const IPV4_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
pub const IPV6_FORWARD: &str = "/proc/sys/net/ipv6/conf/all/forwarding";
