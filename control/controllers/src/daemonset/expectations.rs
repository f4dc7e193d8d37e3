//! One DaemonSet's expectations: pods this process created that the pod
//! watch has not shown yet, and pods it deleted that the watch still shows
//! undeleted. While any is pending the plan makes no rollout step and does
//! not claim the generation observed (as kube-controller-manager waits for
//! its expectations); dropped after a TTL in case the watch missed them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

const TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Expectations {
    created: HashMap<String, (Instant, Arc<Pod>)>,
    deleted: HashMap<String, Instant>,
}

impl Expectations {
    /// The DaemonSet's pods as this process believes them to be: the
    /// store's, without the ones it deleted, with the ones it created.
    pub fn view(&mut self, store: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
        let now = Instant::now();
        let seen: HashSet<&str> = store
            .iter()
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        let undeleted: HashSet<&str> = store
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        self.created
            .retain(|uid, (t, _)| !seen.contains(uid.as_str()) && now - *t < TTL);
        self.deleted
            .retain(|uid, t| undeleted.contains(uid.as_str()) && now - *t < TTL);
        store
            .iter()
            .filter(|p| {
                !p.metadata
                    .uid
                    .as_deref()
                    .is_some_and(|u| self.deleted.contains_key(u))
            })
            .cloned()
            .chain(self.created.values().map(|(_, p)| p.clone()))
            .collect()
    }

    /// Nothing this process did is still unseen.
    pub fn satisfied(&self) -> bool {
        self.created.is_empty() && self.deleted.is_empty()
    }

    pub fn created(&mut self, p: Pod) {
        if let Some(uid) = p.metadata.uid.clone() {
            self.created.insert(uid, (Instant::now(), Arc::new(p)));
        }
    }

    pub fn deleted(&mut self, uid: &str) {
        self.deleted.insert(uid.to_string(), Instant::now());
    }
}
