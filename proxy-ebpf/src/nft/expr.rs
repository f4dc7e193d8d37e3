//! Builders for the nft text (`nft -f` syntax) fragments the proxy uses:
//! selectors, matches, statements, names. Pure; they must never decide
//! policy (that is render/).
//!
//! Text, not JSON: nft 1.0.6 parses and commits a text batch ~5× faster
//! than the same batch as JSON (README, proxy section), and a rule as text
//! is a third of its JSON size.

use std::net::IpAddr;

use crate::model::IpFamily;

pub fn saddr(f: IpFamily) -> String {
    format!("{} saddr", f.nft())
}

pub fn daddr(f: IpFamily) -> String {
    format!("{} daddr", f.nft())
}

pub const L4PROTO: &str = "meta l4proto";
pub const TH_DPORT: &str = "th dport";

/// `addr/len` as nft writes a prefix.
pub fn prefix(addr: IpAddr, len: u8) -> String {
    format!("{addr}/{len}")
}

/// `fib <saddr|daddr> type local`.
pub fn fib_local(which: &str) -> String {
    format!("fib {which} type local")
}

/// `a . b . c`.
pub fn concat(items: &[&str]) -> String {
    items.join(" . ")
}

/// The only characters nft 1.0.6 accepts in an unquoted name (it rejects
/// quoted chain and set names); anything else becomes '.'. Callers keep
/// names unique with a hash of the unsanitised text.
pub fn name(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.') {
                c
            } else {
                '.'
            }
        })
        .collect()
}

pub fn jump(chain: &str) -> String {
    format!("jump {chain}")
}

pub fn goto(chain: &str) -> String {
    format!("goto {chain}")
}

/// `numgen random mod n == 0`: true with probability 1/n.
pub fn numgen_zero(n: usize) -> String {
    format!("numgen random mod {n} == 0")
}

/// `dnat <family> to addr:port` (IPv6 addresses in brackets).
pub fn dnat(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("dnat ip to {a}:{port}"),
        IpAddr::V6(a) => format!("dnat ip6 to [{a}]:{port}"),
    }
}

/// `update @set { <key> }`: adds the key or refreshes its timeout.
pub fn set_update(set: &str, key: &str) -> String {
    format!("update @{set} {{ {key} }}")
}

/// `<key> @set`: the key is in the set.
pub fn in_set(key: &str, set: &str) -> String {
    format!("{key} @{set}")
}

/// `<key> vmap @map`.
pub fn vmap(key: &str, map: &str) -> String {
    format!("{key} vmap @{map}")
}

/// One rule from its statements.
pub fn rule(parts: &[&str]) -> String {
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_only_what_nft_accepts() {
        assert_eq!(
            name("endpoint-ab12-ns/web/tcp/http__[fd00::1]/80"),
            "endpoint-ab12-ns/web/tcp/http__.fd00..1./80"
        );
        assert_eq!(name("service-x-ns/a_b/tcp/p.1"), "service-x-ns/a_b/tcp/p.1");
    }

    #[test]
    fn dnat_brackets_v6() {
        assert_eq!(
            dnat("10.0.0.1".parse().unwrap(), 80),
            "dnat ip to 10.0.0.1:80"
        );
        assert_eq!(
            dnat("fd00::1".parse().unwrap(), 80),
            "dnat ip6 to [fd00::1]:80"
        );
    }

    #[test]
    fn rules_join_statements() {
        let r = rule(&[
            &format!(
                "{} != {}",
                saddr(IpFamily::V4),
                prefix("10.244.0.0".parse().unwrap(), 16)
            ),
            &jump("mark-for-masquerade"),
        ]);
        assert_eq!(r, "ip saddr != 10.244.0.0/16 jump mark-for-masquerade");
        assert_eq!(
            vmap(&concat(&[&daddr(IpFamily::V6), L4PROTO, TH_DPORT]), "m"),
            "ip6 daddr . meta l4proto . th dport vmap @m"
        );
    }
}
