//! The hairpin set's members: endpoint addresses, shared between services,
//! so counted by how many services list each.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::render::Rendered;

/// Reference-count changes for the hairpin set: (new counts, added, removed).
pub(super) fn hairpin_delta(
    refs: &HashMap<IpAddr, usize>,
    changes: &[(&Rendered, &Rendered)],
) -> (HashMap<IpAddr, usize>, Vec<IpAddr>, Vec<IpAddr>) {
    let mut delta: HashMap<IpAddr, isize> = HashMap::new();
    for (old, new) in changes {
        for ip in old.hairpin.difference(&new.hairpin) {
            *delta.entry(*ip).or_default() -= 1;
        }
        for ip in new.hairpin.difference(&old.hairpin) {
            *delta.entry(*ip).or_default() += 1;
        }
    }
    let (mut counts, mut add, mut del) = (HashMap::new(), Vec::new(), Vec::new());
    for (ip, d) in delta {
        let before = refs.get(&ip).copied().unwrap_or(0);
        let after = (before as isize + d).max(0) as usize;
        if before == 0 && after > 0 {
            add.push(ip);
        } else if before > 0 && after == 0 {
            del.push(ip);
        }
        counts.insert(ip, after);
    }
    add.sort();
    del.sort();
    (counts, add, del)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hairpin(ips: &[&str]) -> Rendered {
        Rendered {
            hairpin: ips.iter().map(|s| s.parse().unwrap()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn hairpin_members_are_counted_across_services() {
        let (empty, a, b) = (
            Rendered::default(),
            with_hairpin(&["10.0.0.1"]),
            with_hairpin(&["10.0.0.1", "10.0.0.2"]),
        );
        // Two services list 10.0.0.1: added once.
        let (counts, add, del) = hairpin_delta(&HashMap::new(), &[(&empty, &a), (&empty, &b)]);
        assert_eq!(add.len(), 2);
        assert!(del.is_empty());
        assert_eq!(counts[&"10.0.0.1".parse().unwrap()], 2);
        // One of them goes: 10.0.0.1 stays (still referenced), 10.0.0.2 goes.
        let (counts2, add, del) = hairpin_delta(&counts, &[(&b, &empty)]);
        assert!(add.is_empty());
        assert_eq!(del, vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(counts2[&"10.0.0.1".parse().unwrap()], 1);
    }
}
