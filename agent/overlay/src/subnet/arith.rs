//! Subnet arithmetic: lease key names and choosing a free subnet, as pure
//! functions. Whether the choice sticks is decided by the lease store's
//! put-if-absent transaction, never here.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{Ipv4Network, Ipv6Network};

/// Lease key suffix for a subnet: `10.244.1.0-24`.
pub fn key_name(subnet: Ipv4Network) -> String {
    format!("{}-{}", subnet.network(), subnet.prefix())
}

/// Inverse of [`key_name`]; `None` for anything else under the prefix.
pub fn parse_key_name(name: &str) -> Option<Ipv4Network> {
    let (ip, len) = name.rsplit_once('-')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let net = Ipv4Network::new(ip, len).ok()?;
    (net.network() == ip).then_some(net)
}

/// The `.0` address of a subnet: the VTEP address peers route through.
pub fn vtep_addr(subnet: Ipv4Network) -> Ipv4Addr {
    subnet.network()
}

/// The `.1` address: the pods' gateway on the node's bridge.
pub fn gateway_addr(subnet: Ipv4Network) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()).wrapping_add(1))
}

/// The `::` address of an IPv6 subnet: the v6 VTEP address (as flannel).
pub fn vtep_addr_v6(subnet: Ipv6Network) -> Ipv6Addr {
    subnet.network()
}

/// A node's IPv6 subnet: the one with the same index in `network6` as
/// `v4` has in `network`. Derived, never chosen, so the put-if-absent on
/// the IPv4 key makes both unique. `None` when `v4` is outside `network`
/// or the index does not fit (config validation rules that out).
pub fn ipv6_for(
    network: Ipv4Network,
    v4: Ipv4Network,
    network6: Ipv6Network,
    len6: u8,
) -> Option<Ipv6Network> {
    if !network.contains(v4.network()) || v4.prefix() <= network.prefix() || len6 > 128 {
        return None;
    }
    let index = u128::from(u32::from(v4.network()) - u32::from(network.network()))
        >> (32 - u32::from(v4.prefix()));
    let bits = u32::from(len6.checked_sub(network6.prefix())?);
    if bits < 128 && index >= 1u128 << bits {
        return None;
    }
    // len6 == 0 shifts by 128: None.
    let step = 1u128.checked_shl(128 - u32::from(len6))?;
    let addr = u128::from(network6.network()).checked_add(index.checked_mul(step)?)?;
    Ipv6Network::new(Ipv6Addr::from(addr), len6).ok()
}

/// Every subnet of length `len` inside `network`, skipping the first one
/// (its `.0` is the network address itself, as flannel does), in order.
pub fn all_subnets(network: Ipv4Network, len: u8) -> impl Iterator<Item = Ipv4Network> {
    let base = u32::from(network.network());
    let count: u64 = if len > network.prefix() && len <= 32 {
        1u64 << (len - network.prefix())
    } else {
        0
    };
    let step = if len >= 32 { 1u64 } else { 1u64 << (32 - len) };
    (1..count).filter_map(move |i| {
        let addr = u64::from(base) + i * step;
        u32::try_from(addr)
            .ok()
            .and_then(|a| Ipv4Network::new(Ipv4Addr::from(a), len).ok())
    })
}

/// Picks a free subnet: the `pick`-th (modulo the number free) of those not
/// in `taken`. Callers pass a random `pick` so that nodes starting at the
/// same instant usually try different subnets; `None` means exhausted.
pub fn choose_free(
    network: Ipv4Network,
    len: u8,
    taken: &BTreeSet<Ipv4Network>,
    pick: usize,
) -> Option<Ipv4Network> {
    let free: Vec<Ipv4Network> = all_subnets(network, len)
        .filter(|s| !taken.contains(s))
        .collect();
    if free.is_empty() {
        return None;
    }
    // Only look among the lowest few so the allocation stays compact.
    let window = free.len().min(16);
    free.get(pick % window).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    #[test]
    fn key_names_round_trip() {
        assert_eq!(key_name(net("10.244.1.0/24")), "10.244.1.0-24");
        assert_eq!(parse_key_name("10.244.1.0-24"), Some(net("10.244.1.0/24")));
        assert_eq!(parse_key_name("10.244.1.5-24"), None, "host bits");
        assert_eq!(parse_key_name("garbage"), None);
        assert_eq!(parse_key_name("10.244.1.0-40"), None);
    }

    #[test]
    fn addresses_in_a_subnet() {
        assert_eq!(
            vtep_addr(net("10.244.3.0/24")),
            Ipv4Addr::new(10, 244, 3, 0)
        );
        assert_eq!(
            gateway_addr(net("10.244.3.0/24")),
            Ipv4Addr::new(10, 244, 3, 1)
        );
    }

    #[test]
    fn ipv6_subnet_follows_the_ipv4_index() {
        let n6: Ipv6Network = "fd00:10:244::/56".parse().unwrap();
        let v6 = |s: &str| ipv6_for(net("10.244.0.0/16"), net(s), n6, 64);
        assert_eq!(
            v6("10.244.1.0/24"),
            Some("fd00:10:244:1::/64".parse().unwrap())
        );
        assert_eq!(
            v6("10.244.255.0/24"),
            Some("fd00:10:244:ff::/64".parse().unwrap())
        );
        assert_eq!(v6("10.9.1.0/24"), None, "outside the network");
        // Too few IPv6 subnets for the index.
        let small: Ipv6Network = "fd00::/62".parse().unwrap();
        assert_eq!(
            ipv6_for(net("10.244.0.0/16"), net("10.244.9.0/24"), small, 64),
            None
        );
        assert_eq!(
            vtep_addr_v6("fd00:10:244:1::/64".parse().unwrap()),
            "fd00:10:244:1::".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn all_subnets_skips_the_first() {
        let v: Vec<_> = all_subnets(net("10.244.0.0/22"), 24).collect();
        assert_eq!(
            v,
            vec![
                net("10.244.1.0/24"),
                net("10.244.2.0/24"),
                net("10.244.3.0/24")
            ]
        );
        assert_eq!(all_subnets(net("10.0.0.0/8"), 24).count(), 65535);
    }

    #[test]
    fn choose_free_avoids_taken_and_reports_exhaustion() {
        let n = net("10.244.0.0/22");
        let mut taken = BTreeSet::new();
        taken.insert(net("10.244.1.0/24"));
        for pick in 0..10 {
            let s = choose_free(n, 24, &taken, pick).unwrap();
            assert!(!taken.contains(&s));
        }
        taken.insert(net("10.244.2.0/24"));
        assert_eq!(choose_free(n, 24, &taken, 7), Some(net("10.244.3.0/24")));
        taken.insert(net("10.244.3.0/24"));
        assert_eq!(choose_free(n, 24, &taken, 0), None);
    }
}
