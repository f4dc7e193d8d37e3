//! Picks addresses as a pure function of the pools and what is already
//! reserved, so allocation is unit-tested without files or locks. Must
//! never return the network, broadcast or gateway address.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use super::IpamError;

/// One family's range: the subnet and its gateway (never handed out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub subnet: IpNetwork,
    pub gateway: IpAddr,
}

/// Addresses for an owner, one per pool, in pool order. `held` are the
/// addresses the owner already has (a retried ADD keeps them); otherwise
/// the search starts after that pool's last reserved address so released
/// addresses are not reused at once.
pub fn plan_allocation(
    pools: &[Pool],
    taken: &HashSet<IpAddr>,
    held: &[IpAddr],
    last_reserved: &[Option<IpAddr>],
) -> Result<Vec<IpAddr>, IpamError> {
    pools
        .iter()
        .enumerate()
        .map(|(i, pool)| {
            if let Some(ip) = held.iter().find(|ip| pool.subnet.contains(**ip)) {
                return Ok(*ip);
            }
            next_free(pool, taken, last_reserved.get(i).copied().flatten()).ok_or_else(|| {
                IpamError::Exhausted {
                    pool: pool.subnet.to_string(),
                    reserved: taken.iter().filter(|ip| pool.subnet.contains(**ip)).count(),
                }
            })
        })
        .collect()
}

/// First usable host after `last` (wrapping) that is not taken.
pub fn next_free(pool: &Pool, taken: &HashSet<IpAddr>, last: Option<IpAddr>) -> Option<IpAddr> {
    let (first, end) = host_bounds(pool.subnet)?; // inclusive
    let size = end - first + 1;
    let start = match last.map(to_u128) {
        Some(l) if l >= first && l < end => l + 1,
        _ => first,
    };
    // Pigeonhole: among taken+2 consecutive candidates at least one is free
    // (the +1 is the gateway); the cap keeps a /64 from being walked.
    let tries = size.min(taken.len() as u128 + 2);
    (0..tries)
        .map(|k| first + (start - first + k) % size)
        .map(|n| from_u128(n, pool.subnet.is_ipv4()))
        .find(|ip| *ip != pool.gateway && !taken.contains(ip))
}

/// First and last assignable host numbers of the subnet.
fn host_bounds(subnet: IpNetwork) -> Option<(u128, u128)> {
    let (network, bits) = match subnet {
        IpNetwork::V4(n) => (u128::from(u32::from(n.network())), 32u32),
        IpNetwork::V6(n) => (u128::from(n.network()), 128u32),
    };
    let host_bits = bits - u32::from(subnet.prefix());
    if host_bits < 2 {
        return None;
    }
    let last = network + ((1u128 << host_bits) - 1);
    // Skip the network address; for IPv4 also the broadcast, for IPv6 the
    // all-ones host, as host-local does.
    Some((network + 1, last - 1))
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(s: &str, gw: &str) -> Pool {
        Pool {
            subnet: s.parse().expect("literal"),
            gateway: gw.parse().expect("literal"),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("literal")
    }

    #[test]
    fn skips_network_gateway_and_broadcast() {
        let p = pool("10.0.0.0/30", "10.0.0.1");
        let mut taken = HashSet::new();
        assert_eq!(next_free(&p, &taken, None), Some(ip("10.0.0.2")));
        taken.insert(ip("10.0.0.2"));
        assert_eq!(next_free(&p, &taken, None), None);
    }

    #[test]
    fn continues_after_last_and_wraps() {
        let p = pool("10.0.0.0/29", "10.0.0.1");
        let taken: HashSet<_> = [ip("10.0.0.3")].into();
        assert_eq!(
            next_free(&p, &taken, Some(ip("10.0.0.6"))),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            next_free(&p, &taken, Some(ip("10.0.0.2"))),
            Some(ip("10.0.0.4"))
        );
    }

    #[test]
    fn held_address_is_kept_and_exhaustion_is_reported() {
        let p = [pool("10.0.0.0/30", "10.0.0.1")];
        let taken: HashSet<_> = [ip("10.0.0.2")].into();
        let kept = plan_allocation(&p, &taken, &[ip("10.0.0.2")], &[None]);
        assert_eq!(kept.ok(), Some(vec![ip("10.0.0.2")]));
        let err = plan_allocation(&p, &taken, &[], &[None]);
        assert!(matches!(err, Err(IpamError::Exhausted { reserved: 1, .. })));
    }

    #[test]
    fn ipv6_pool_is_not_walked_whole() {
        let p = pool("fd00::/64", "fd00::1");
        assert_eq!(next_free(&p, &HashSet::new(), None), Some(ip("fd00::2")));
    }
}
