//! Static pods: a directory of manifests (YAML, possibly multi-document,
//! or JSON), re-read when anything in it changes (mtime/size poll; cheap
//! for the handful of files such a directory holds). Pods get kubelet's
//! static-pod treatment: name suffixed with the node name, UID hashed from
//! file path, node and content (so an edit is a new pod), defaults filled.
//! ConfigMap and Secret documents feed the object store. Never runs pods.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::snapshot::{ObjectStore, Snapshot};

#[derive(Default, Debug)]
pub struct Parsed {
    pub pods: Vec<Pod>,
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
    pub errors: Vec<String>,
}

fn uid_for(path: &Path, node: &str, doc: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(doc).unwrap_or_default());
    h.update(format!("host:{node}").as_bytes());
    h.update(format!("file:{}", path.display()).as_bytes());
    let d = hex::encode(h.finalize());
    // UUID-shaped, like a real pod UID.
    format!(
        "{}-{}-{}-{}-{}",
        &d[0..8],
        &d[8..12],
        &d[12..16],
        &d[16..20],
        &d[20..32]
    )
}

/// Static-pod defaults (what the API server would have filled in).
pub fn apply_defaults(pod: &mut Pod, node: &str) {
    let m = &mut pod.metadata;
    m.namespace.get_or_insert_with(|| "default".into());
    if let Some(n) = &m.name {
        m.name = Some(format!("{n}-{node}"));
    }
    m.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert("kubernetes.io/config.source".into(), "file".into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.to_string());
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        if c.image_pull_policy.is_none() {
            let latest = c.image.as_deref().is_none_or(|i| {
                i.ends_with(":latest") || !i.rsplit('/').next().unwrap_or(i).contains(':')
            });
            c.image_pull_policy = Some(if latest { "Always" } else { "IfNotPresent" }.into());
        }
    }
}

pub fn parse_file(path: &Path, text: &str, node: &str) -> Parsed {
    let mut out = Parsed::default();
    let docs: Vec<serde_json::Value> = if path.extension().and_then(|e| e.to_str()) == Some("json")
    {
        match serde_json::from_str(text) {
            Ok(v) => vec![v],
            Err(e) => {
                out.errors.push(format!("{}: {e}", path.display()));
                return out;
            }
        }
    } else {
        let mut v = Vec::new();
        for d in serde_yaml::Deserializer::from_str(text) {
            match serde_json::Value::deserialize(d) {
                Ok(serde_json::Value::Null) => {}
                Ok(doc) => v.push(doc),
                Err(e) => out.errors.push(format!("{}: {e}", path.display())),
            }
        }
        v
    };
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or("").to_string();
        let r = match kind.as_str() {
            "Pod" => serde_json::from_value::<Pod>(doc.clone()).map(|mut p| {
                if p.metadata.uid.is_none() {
                    p.metadata.uid = Some(uid_for(path, node, &doc));
                }
                apply_defaults(&mut p, node);
                out.pods.push(p);
            }),
            "ConfigMap" => {
                serde_json::from_value::<ConfigMap>(doc).map(|c| out.config_maps.push(c))
            }
            "Secret" => serde_json::from_value::<Secret>(doc).map(|s| out.secrets.push(s)),
            other => {
                out.errors.push(format!(
                    "{}: kind {other:?} is not read from the manifest directory",
                    path.display()
                ));
                Ok(())
            }
        };
        if let Err(e) = r {
            out.errors.push(format!("{}: {e}", path.display()));
        }
    }
    out
}

fn is_manifest(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.')
        && matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        )
}

type Fingerprint = BTreeMap<PathBuf, (SystemTime, u64)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| is_manifest(p))
        .filter_map(|p| {
            let m = std::fs::metadata(&p).ok()?;
            Some((p, (m.modified().ok()?, m.len())))
        })
        .collect()
}

/// Reads the directory once: the snapshot and every problem found.
pub fn read_dir(dir: &Path, node: &str, objects: &ObjectStore) -> (Snapshot, Vec<String>) {
    let mut pods = HashMap::new();
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    let mut errors = Vec::new();
    for path in fingerprint(dir).into_keys() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let p = parse_file(&path, &text, node);
        for pod in p.pods {
            if let Some(uid) = pod.metadata.uid.clone() {
                pods.insert(uid, Arc::new(pod));
            }
        }
        cms.extend(p.config_maps);
        secrets.extend(p.secrets);
        errors.extend(p.errors);
    }
    objects.replace(cms, secrets);
    (Snapshot { pods }, errors)
}

/// Publishes a snapshot on start and whenever the directory changes.
pub async fn run(
    dir: PathBuf,
    node: String,
    objects: ObjectStore,
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    poll: Duration,
) {
    let mut last: Option<Fingerprint> = None;
    loop {
        let fp = fingerprint(&dir);
        if last.as_ref() != Some(&fp) {
            let (snap, errors) = read_dir(&dir, &node, &objects);
            for e in &errors {
                tracing::warn!(error = %e, "static pod manifest skipped");
            }
            tracing::debug!(pods = snap.pods.len(), dir = %dir.display(), "static pods read");
            if tx.send(Some(Arc::new(snap))).is_err() {
                return;
            }
            last = Some(fp);
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_doc_yaml_defaults_and_stable_uids() {
        let text = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: c
    image: capstan.local/busybox:latest
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {k: v}
---
kind: Service
"#;
        let p = parse_file(Path::new("/m/a.yaml"), text, "node-1");
        assert_eq!(p.pods.len(), 1);
        assert_eq!(p.config_maps.len(), 1);
        assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
        let pod = &p.pods[0];
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("Always")
        );
        let again = parse_file(Path::new("/m/a.yaml"), text, "node-1");
        assert_eq!(again.pods[0].metadata.uid, pod.metadata.uid);
        let other = parse_file(Path::new("/m/b.yaml"), text, "node-1");
        assert_ne!(other.pods[0].metadata.uid, pod.metadata.uid);
        let bad = parse_file(Path::new("/m/c.json"), "{", "n");
        assert_eq!(bad.errors.len(), 1);
    }
}
