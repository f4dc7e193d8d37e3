//! Names the kubelet gives to what it makes (container IDs, sandbox IDs)
//! and the labels that tie containers back to pods. Pure; the names must be
//! unique across agents sharing a machine, so they hash in an owner token.

use sha2::{Digest, Sha256};

pub const LABEL_OWNER: &str = "io.capstan.kubelet.owner";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const LABEL_ATTEMPT: &str = "io.capstan.container.attempt";
pub const LABEL_INIT: &str = "io.capstan.container.init";
/// Written on the container once its task exited, so a restarted agent
/// still knows how the attempt ended after the task itself is deleted.
pub const LABEL_EXIT_CODE: &str = "io.capstan.exit.code";
pub const LABEL_EXIT_REASON: &str = "io.capstan.exit.reason";
pub const LABEL_STARTED_AT: &str = "io.capstan.started-at";
pub const LABEL_FINISHED_AT: &str = "io.capstan.finished-at";

fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// Identifies one agent instance (node name + state dir): its containers
/// carry it, and its sweep only ever touches containers that do.
pub fn owner_token(node_name: &str, root_dir: &str) -> String {
    hash(&[node_name, root_dir])[..12].to_string()
}

/// containerd container ID for one attempt of one container of one pod:
/// readable prefix, hashed identity, attempt number (at most 76 chars, the
/// runc limit is far above).
pub fn container_id(owner: &str, pod_uid: &str, container: &str, attempt: u32) -> String {
    let name: String = container.chars().take(30).collect();
    format!(
        "{name}-{}-{attempt}",
        &hash(&[owner, pod_uid, container])[..20]
    )
}

/// The pod sandbox's ID: CNI container ID and namespace file name stem.
pub fn sandbox_id(owner: &str, pod_uid: &str) -> String {
    hash(&[owner, pod_uid, "sandbox"])[..24].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_valid() {
        let a = container_id("o1", "uid-1", "web", 0);
        assert_eq!(a, container_id("o1", "uid-1", "web", 0));
        assert_ne!(a, container_id("o2", "uid-1", "web", 0));
        assert_ne!(a, container_id("o1", "uid-1", "web", 1));
        assert!(a.starts_with("web-") && a.ends_with("-0"));
        let long = container_id("o", "u", &"x".repeat(63), 12345);
        assert!(long.len() <= 76, "{long}");
        assert!(long
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'));
        assert_ne!(sandbox_id("o", "u1"), sandbox_id("o", "u2"));
    }
}
