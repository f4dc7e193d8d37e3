//! Deterministic host-side veth names, so DEL and CHECK find the host end
//! from (container ID, ifname) alone, even when the pod's netns is gone.
//! Must never produce a name longer than 15 bytes.

use crate::ipam::Owner;

/// `cap` + 12 hex digits of the owner's key hash (FNV-1a over
/// `container_id \0 ifname`).
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let hash = Owner::new(container_id, ifname).key_hash();
    format!("cap{:012x}", hash & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_stable_and_distinct() {
        let a = host_veth_name("abc", "eth0");
        assert_eq!(a.len(), 15);
        assert_eq!(a, host_veth_name("abc", "eth0"));
        assert_ne!(a, host_veth_name("abc", "eth1"));
        assert_ne!(a, host_veth_name("abd", "eth0"));
    }
}
