//! `ipMasq: true`: source-NAT for pod traffic leaving the pod network, in
//! an nftables table of our own per network (`capstan-cni-<hash>`), for
//! standalone use. With capstan-agent the agent masquerades node-wide
//! (CAPSTAN_IPMASQ) and this stays off, keeping ADD free of fork/exec. Must
//! never touch any table but its own.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::config::Network;
use crate::error::{Error, Result};

const MARKER: &str = "masquerade.applied";

/// The nft table name for network `name`.
pub fn table_name(name: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("capstan-cni-{hash:08x}")
}

/// One nft transaction that (re)creates the table with exactly our rules:
/// declaring it first makes the delete valid when it does not exist yet.
pub fn script(name: &str, net: &Network) -> String {
    let table = table_name(name);
    let mut out = String::new();
    for (family, v4) in [("ip", true), ("ip6", false)] {
        let fams: Vec<_> = net
            .families
            .iter()
            .filter(|f| f.gateway.0.is_ipv4() == v4)
            .collect();
        if fams.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "table {family} {table} {{}}\ndelete table {family} {table}"
        );
        let _ = writeln!(out, "table {family} {table} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;");
        for f in fams {
            let subnet = f.gateway.subnet();
            let keep = f.cluster.unwrap_or(subnet);
            let _ = writeln!(
                out,
                "    {family} saddr {subnet} {family} daddr != {keep} {} masquerade comment \"capstan-cni {name}\"",
                if v4 { "ip daddr != 224.0.0.0/4" } else { "ip6 daddr != ff00::/8" }
            );
        }
        let _ = writeln!(out, "  }}\n}}");
    }
    out
}

/// Installs the rules unless this boot and this node netns already have
/// exactly them (a marker in `data_dir`), so only the first ADD pays for
/// running nft.
pub fn ensure(name: &str, net: &Network, data_dir: &Path) -> Result<()> {
    let script = script(name, net);
    let stamp = format!("{} {}\n{script}", boot_id(), netns_inode());
    let marker = data_dir.join(MARKER);
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == stamp) {
        return Ok(());
    }
    let io = |what: &str| {
        let what = what.to_string();
        move |source| Error::Io { what, source }
    };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(
            "ipMasq: run nft (install the nftables package, or let capstan-agent masquerade)",
        ))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(io("ipMasq: write nft script"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(io("ipMasq: wait for nft"))?;
    if !out.status.success() {
        return Err(Error::Io {
            what: format!(
                "ipMasq: nft refused the masquerade table: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            source: std::io::Error::other(out.status.to_string()),
        });
    }
    std::fs::create_dir_all(data_dir).map_err(io("ipMasq: create dataDir"))?;
    let _ = std::fs::write(&marker, stamp);
    tracing::info!(table = %table_name(name), "masquerade rules installed");
    Ok(())
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn netns_inode() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Family;
    use crate::subnet_file::GatewayPrefix;

    #[test]
    fn script_replaces_only_our_table() {
        let net = Network {
            families: vec![
                Family {
                    gateway: GatewayPrefix("10.244.1.1/24".parse().expect("literal")),
                    cluster: Some("10.244.0.0/16".parse().expect("literal")),
                },
                Family {
                    gateway: GatewayPrefix("fd00::1/64".parse().expect("literal")),
                    cluster: None,
                },
            ],
            mtu: 1500,
            ip_masq: true,
        };
        let s = script("podnet", &net);
        let t = table_name("podnet");
        assert!(s.contains(&format!("delete table ip {t}")));
        assert!(s.contains("ip saddr 10.244.1.0/24 ip daddr != 10.244.0.0/16"));
        assert!(s.contains("ip6 saddr fd00::/64 ip6 daddr != fd00::/64"));
        assert!(!s.contains("flush ruleset"));
    }
}
