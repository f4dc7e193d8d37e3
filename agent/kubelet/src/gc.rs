//! The orphan sweep: whatever this kubelet made for a pod that no longer
//! has a worker — containers (and their snapshots), sandboxes (CNI DEL,
//! namespaces), namespace files, status files — is removed. Touches only
//! things carrying this kubelet's owner token or naming prefix.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::ids;
use crate::pod_worker::terminate::remove_pod;
use crate::runtime::container_runtime::ContainerRuntime;
use crate::sandbox::netns;
use crate::sandbox::pod_sandbox as sandbox;
use crate::shared::Shared;

/// `active` is the manager's live set of pods with workers: read again
/// right before each removal, so a pod whose worker started while the sweep
/// ran is never touched.
pub async fn sweep<R: ContainerRuntime>(shared: &Shared<R>, active: &Mutex<HashSet<String>>) {
    let is_active = |uid: &str| active.lock().map(|a| a.contains(uid)).unwrap_or(true);
    let mut orphans: HashSet<String> = HashSet::new();
    match shared.runtime.list(ids::LABEL_OWNER, &shared.owner).await {
        Ok(cs) => {
            for c in cs {
                if let Some(uid) = c.labels.get(ids::LABEL_POD_UID) {
                    if !is_active(uid) {
                        orphans.insert(uid.clone());
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "sweep: listing containers failed"),
    }
    let root = &shared.opts.root_dir;
    for uid in sandbox::recorded_uids(root) {
        if !is_active(&uid) {
            orphans.insert(uid);
        }
    }
    for uid in &orphans {
        if is_active(uid) {
            continue;
        }
        match remove_pod(shared, uid).await {
            Ok(()) => tracing::info!(pod_uid = %uid, "sweep: removed orphaned pod resources"),
            Err(e) => tracing::warn!(pod_uid = %uid, error = %e, "sweep: cleanup failed"),
        }
    }
    // Namespace files no sandbox record names any more.
    let mut known: HashSet<std::path::PathBuf> = HashSet::new();
    for uid in sandbox::recorded_uids(root) {
        if let Some(r) = sandbox::load(root, &uid) {
            known.extend(r.net.into_iter().chain([r.ipc, r.uts]));
        }
    }
    if let Ok(entries) = std::fs::read_dir(&shared.opts.netns_dir) {
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name
                .strip_prefix(&shared.opts.netns_prefix)
                .is_some_and(|rest| {
                    let stem = rest.split('.').next().unwrap_or("");
                    stem.len() == 24 && stem.chars().all(|c| c.is_ascii_hexdigit())
                });
            let stem = name
                .strip_prefix(&shared.opts.netns_prefix)
                .and_then(|r| r.split('.').next())
                .unwrap_or("")
                .to_string();
            let of_active = active
                .lock()
                .map(|a| a.iter().any(|u| ids::sandbox_id(&shared.owner, u) == stem))
                .unwrap_or(true);
            if ours && !of_active && !known.contains(&e.path()) {
                if let Err(err) = netns::remove_file(&e.path()) {
                    tracing::warn!(path = %e.path().display(), error = %err, "sweep: namespace file");
                }
            }
        }
    }
    // Status files of pods without a worker.
    if let Ok(entries) = std::fs::read_dir(root.join("pod-status")) {
        for e in entries.filter_map(|e| e.ok()) {
            let uid = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["metadata"]["uid"].as_str().map(str::to_string));
            if uid.is_some_and(|u| !is_active(&u)) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
