//! The replica controller's expectations: creates and deletes this process
//! made that the pod watch has not shown yet, so a pass never counts them
//! twice; dropped after a TTL in case the watch missed them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

/// Creates and deletes this process made whose effect the pod watch hasn't
/// shown yet (kube-controller-manager's "expectations").
#[derive(Default)]
pub struct InFlight {
    pub(super) created: HashMap<String, (Instant, Arc<Pod>)>,
    pub(super) deleted: HashMap<String, Instant>,
}

/// After this long an expectation is dropped: the watch must have missed it.
const EXPECTATION_TTL: Duration = Duration::from_secs(60);

impl InFlight {
    /// Namespace pods as this process believes them to be.
    pub fn apply(&mut self, store: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
        let now = Instant::now();
        let seen: HashSet<&str> = store
            .iter()
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        self.created
            .retain(|uid, (t, _)| !seen.contains(uid.as_str()) && now - *t < EXPECTATION_TTL);
        self.deleted
            .retain(|uid, t| seen.contains(uid.as_str()) && now - *t < EXPECTATION_TTL);
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
    pub fn created(&mut self, p: Pod) {
        if let Some(uid) = p.metadata.uid.clone() {
            self.created.insert(uid, (Instant::now(), Arc::new(p)));
        }
    }
    pub fn deleted(&mut self, uid: &str) {
        self.deleted.insert(uid.to_string(), Instant::now());
    }
}
