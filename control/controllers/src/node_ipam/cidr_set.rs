//! One family's allocator: the cluster CIDR cut into `/mask` slots, the
//! lowest free slot handed out first (deterministic, and what node IPAM
//! did before dual-stack). Slots are reference-counted: two nodes
//! registered with the same CIDR by hand must both be gone before it is
//! free again. Only used slots are stored, so a large IPv6 pool costs
//! nothing until nodes use it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::config::Pool;

/// Occupying more slots than this at once (a node registered with a CIDR
/// far larger than a node's) is refused rather than tracked slot by slot.
const MAX_OCCUPY_SLOTS: u128 = 1 << 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("{cidr} is outside the cluster CIDR {cluster}")]
    OutOfRange { cidr: IpNetwork, cluster: IpNetwork },
    #[error("{cidr} covers more than {MAX_OCCUPY_SLOTS} node CIDRs of {cluster}")]
    TooLarge { cidr: IpNetwork, cluster: IpNetwork },
}

#[derive(Debug, Clone)]
pub struct CidrSet {
    pool: Pool,
    /// Address width: 32 or 128.
    bits: u8,
    base: u128,
    /// Number of slots (at most 2^126: /0 cut into /126).
    slots: u128,
    used: BTreeMap<u128, u32>,
}

fn addr_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `1 << n`, or 0 when that overflows (only ever needed as "one slot").
fn shl(v: u128, n: u8) -> u128 {
    v.checked_shl(u32::from(n)).unwrap_or(0)
}

impl CidrSet {
    pub fn new(pool: Pool) -> Self {
        let bits = if pool.cluster.is_ipv4() { 32 } else { 128 };
        CidrSet {
            pool,
            bits,
            base: addr_bits(pool.cluster.network()),
            slots: shl(1, pool.mask.saturating_sub(pool.cluster.prefix())).max(1),
            used: BTreeMap::new(),
        }
    }

    pub fn pool(&self) -> Pool {
        self.pool
    }

    /// Whether `cidr` is this set's family.
    pub fn same_family(&self, cidr: &IpNetwork) -> bool {
        cidr.is_ipv4() == self.pool.cluster.is_ipv4()
    }

    fn slot_cidr(&self, slot: u128) -> IpNetwork {
        let addr = self.base + shl(slot, self.bits - self.pool.mask);
        let ip = if self.bits == 32 {
            IpAddr::from(u32::try_from(addr).unwrap_or(u32::MAX).to_be_bytes())
        } else {
            IpAddr::from(addr.to_be_bytes())
        };
        // The address is aligned and the mask was validated for the family.
        IpNetwork::new(ip, self.pool.mask).unwrap_or(self.pool.cluster)
    }

    /// The slots `cidr` overlaps, first and last.
    fn range(&self, cidr: &IpNetwork) -> Result<(u128, u128), SetError> {
        let cluster = self.pool.cluster;
        if !self.same_family(cidr)
            || !(cluster.contains(cidr.network()) || cidr.contains(cluster.network()))
        {
            return Err(SetError::OutOfRange {
                cidr: *cidr,
                cluster,
            });
        }
        let host = |prefix: u8| shl(1, self.bits - prefix).wrapping_sub(1);
        let start = addr_bits(cidr.network()).max(self.base);
        let end = (addr_bits(cidr.network()) | host(cidr.prefix()))
            .min(self.base | host(cluster.prefix()));
        let shift = u32::from(self.bits - self.pool.mask);
        let first = (start - self.base).checked_shr(shift).unwrap_or(0);
        let last = (end - self.base).checked_shr(shift).unwrap_or(0);
        if last - first >= MAX_OCCUPY_SLOTS {
            return Err(SetError::TooLarge {
                cidr: *cidr,
                cluster,
            });
        }
        Ok((first, last))
    }

    /// Marks what `cidr` covers as used (a node that already has it).
    pub fn occupy(&mut self, cidr: &IpNetwork) -> Result<(), SetError> {
        let (first, last) = self.range(cidr)?;
        for s in first..=last {
            *self.used.entry(s).or_insert(0) += 1;
        }
        Ok(())
    }

    /// Undoes one `occupy` (or `allocate`) of `cidr`.
    pub fn release(&mut self, cidr: &IpNetwork) {
        let Ok((first, last)) = self.range(cidr) else {
            return;
        };
        for s in first..=last {
            if let Some(n) = self.used.get_mut(&s) {
                *n -= 1;
                if *n == 0 {
                    self.used.remove(&s);
                }
            }
        }
    }

    /// The lowest free slot, now used; None when the pool is exhausted.
    pub fn allocate(&mut self) -> Option<IpNetwork> {
        let mut candidate: u128 = 0;
        for &s in self.used.keys() {
            if s != candidate {
                break;
            }
            candidate += 1;
        }
        if candidate >= self.slots {
            return None;
        }
        self.used.insert(candidate, 1);
        Some(self.slot_cidr(candidate))
    }

    /// How many slots are in use.
    pub fn used(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(cluster: &str, mask: u8) -> CidrSet {
        CidrSet::new(Pool {
            cluster: cluster.parse().unwrap(),
            mask,
        })
    }

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    fn alloc(s: &mut CidrSet) -> String {
        s.allocate().map(|c| c.to_string()).unwrap_or_default()
    }

    #[test]
    fn ipv4_lowest_free_first_and_exhaustion() {
        let mut s = set("10.244.0.0/22", 24);
        s.occupy(&net("10.244.1.0/24")).unwrap();
        assert_eq!(alloc(&mut s), "10.244.0.0/24");
        assert_eq!(alloc(&mut s), "10.244.2.0/24");
        assert_eq!(alloc(&mut s), "10.244.3.0/24");
        assert_eq!(s.allocate(), None);
        // Reuse after release: the freed slot is the next one handed out.
        s.release(&net("10.244.2.0/24"));
        assert_eq!(alloc(&mut s), "10.244.2.0/24");
        assert_eq!(s.allocate(), None);
    }

    #[test]
    fn ipv6_slots() {
        let mut s = set("fd00:10:244::/56", 64);
        assert_eq!(alloc(&mut s), "fd00:10:244::/64");
        assert_eq!(alloc(&mut s), "fd00:10:244:1::/64");
        s.occupy(&net("fd00:10:244:2::/64")).unwrap();
        assert_eq!(alloc(&mut s), "fd00:10:244:3::/64");
        let mut last = String::new();
        while let Some(c) = s.allocate() {
            last = c.to_string();
        }
        assert_eq!(last, "fd00:10:244:ff::/64");
        assert_eq!(s.used(), 256);
        s.release(&net("fd00:10:244:80::/64"));
        assert_eq!(alloc(&mut s), "fd00:10:244:80::/64");
        // A huge IPv6 pool costs only what is used.
        let mut big = set("fd00::/16", 64);
        assert_eq!(alloc(&mut big), "fd00::/64");
        assert_eq!(big.used(), 1);
    }

    #[test]
    fn occupy_covers_ranges_and_counts_references() {
        let mut s = set("10.244.0.0/16", 24);
        // A /23 takes two slots; a /25 one.
        s.occupy(&net("10.244.0.0/23")).unwrap();
        s.occupy(&net("10.244.2.128/25")).unwrap();
        assert_eq!(alloc(&mut s), "10.244.3.0/24");
        // The same CIDR on two nodes: free only once both released it.
        s.occupy(&net("10.244.4.0/24")).unwrap();
        s.occupy(&net("10.244.4.0/24")).unwrap();
        s.release(&net("10.244.4.0/24"));
        assert_eq!(alloc(&mut s), "10.244.5.0/24");
        s.release(&net("10.244.4.0/24"));
        assert_eq!(alloc(&mut s), "10.244.4.0/24");
        // Outside the pool, or the other family: refused, nothing changes.
        let before = s.used();
        assert!(matches!(
            s.occupy(&net("10.245.0.0/24")),
            Err(SetError::OutOfRange { .. })
        ));
        assert!(matches!(
            s.occupy(&net("fd00::/64")),
            Err(SetError::OutOfRange { .. })
        ));
        s.release(&net("10.245.0.0/24"));
        assert_eq!(s.used(), before);
        // A CIDR larger than the pool occupies all of it.
        let mut small = set("10.244.0.0/23", 24);
        small.occupy(&net("10.0.0.0/8")).unwrap();
        assert_eq!(small.allocate(), None);
        let mut v6 = set("fd00::/16", 64);
        assert!(matches!(
            v6.occupy(&net("fd00::/32")),
            Err(SetError::TooLarge { .. })
        ));
    }

    #[test]
    fn mask_equal_to_the_cluster_prefix_is_one_slot() {
        let mut s = set("10.244.0.0/24", 24);
        assert_eq!(alloc(&mut s), "10.244.0.0/24");
        assert_eq!(s.allocate(), None);
    }
}
