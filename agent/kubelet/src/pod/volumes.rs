//! Pod volumes on the node: emptyDir (a directory per pod), hostPath,
//! configMap, secret and downwardAPI (files written into the pod's volume
//! dir), and the bind mounts a container's volumeMounts turn into. Writes
//! only below the pod's own directory (and hostPath's DirectoryOrCreate).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};

use crate::error::{Error, Result};
use crate::pod::env::{self, Objects, PodFields};
use crate::pod::spec::BindMount;

/// Where each volume of the pod lives on the node, by volume name.
pub type VolumePaths = BTreeMap<String, PathBuf>;

fn volume_dir(pod_dir: &Path, kind: &str, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(kind).join(name)
}

fn fail(pod: &Pod, message: String) -> Error {
    Error::Config {
        pod: pod.metadata.name.clone().unwrap_or_default(),
        message,
    }
}

/// Files of a configMap/secret volume: `items` pick keys, else every key.
fn projected(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
) -> Vec<(String, Vec<u8>, Option<i32>)> {
    match items {
        Some(items) => items
            .iter()
            .filter_map(|i| Some((i.path.clone(), data.get(&i.key)?.clone(), i.mode)))
            .collect(),
        None => data.into_iter().map(|(k, v)| (k, v, None)).collect(),
    }
}

/// Replaces the files in `dir` with `files` (only when different, so a
/// periodic sync is cheap and a running reader sees no churn).
fn write_files(
    dir: &Path,
    files: &[(String, Vec<u8>, Option<i32>)],
    default_mode: Option<i32>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io("create volume dir", dir))?;
    for (rel, bytes, mode) in files {
        let rel = rel.trim_start_matches('/');
        if rel.split('/').any(|c| c == "..") {
            continue;
        }
        let p = dir.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(Error::io("create volume dir", d))?;
        }
        if std::fs::read(&p).ok().as_deref() != Some(bytes.as_slice()) {
            std::fs::write(&p, bytes).map_err(Error::io("write volume file", &p))?;
        }
        let m = mode.or(default_mode).unwrap_or(0o644) as u32;
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m));
    }
    Ok(())
}

/// Deletes the pod's emptyDir volumes (their data dies with the pod, as
/// kubelet tears them down once the pod is terminated); the rest of the
/// pod's directory stays until the pod is deleted.
pub fn remove_empty_dirs(pod_dir: &Path) {
    let d = pod_dir.join("volumes").join("empty-dir");
    match std::fs::remove_dir_all(&d) {
        Ok(()) => tracing::info!(path = %d.display(), "emptyDir volumes removed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %d.display(), error = %e, "removing emptyDir volumes failed")
        }
    }
}

/// Makes every volume present and returns where each lives.
pub fn prepare(
    pod: &Pod,
    pod_dir: &Path,
    fields: &PodFields,
    objects: &dyn Objects,
) -> Result<VolumePaths> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = VolumePaths::new();
    let volumes: &[Volume] = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    for v in volumes {
        let path = if v.empty_dir.is_some() {
            let d = volume_dir(pod_dir, "empty-dir", &v.name);
            std::fs::create_dir_all(&d).map_err(Error::io("create emptyDir", &d))?;
            // World-writable like kubelet's, so non-root containers can use it.
            let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777));
            d
        } else if let Some(h) = &v.host_path {
            let p = PathBuf::from(&h.path);
            match h.type_.as_deref() {
                Some("DirectoryOrCreate") => {
                    std::fs::create_dir_all(&p).map_err(Error::io("create hostPath", &p))?
                }
                Some("FileOrCreate") if !p.exists() => {
                    std::fs::write(&p, b"").map_err(Error::io("create hostPath", &p))?
                }
                Some("Directory") if !p.is_dir() => {
                    return Err(fail(pod, format!("hostPath {} is not a directory", h.path)))
                }
                Some("File") if !p.is_file() => {
                    return Err(fail(pod, format!("hostPath {} is not a file", h.path)))
                }
                _ => {}
            }
            p
        } else if let Some(c) = &v.config_map {
            let d = volume_dir(pod_dir, "configmap", &v.name);
            match objects.config_map(ns, &c.name) {
                Some(cm) => {
                    let mut data: BTreeMap<String, Vec<u8>> = cm
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    for (k, v) in cm.binary_data.unwrap_or_default() {
                        data.insert(k, v.0);
                    }
                    write_files(&d, &projected(data, c.items.as_ref()), c.default_mode)?;
                }
                None if c.optional == Some(true) => {
                    std::fs::create_dir_all(&d).map_err(Error::io("create volume dir", &d))?
                }
                None => return Err(fail(pod, format!("configmap {:?} not found", c.name))),
            }
            d
        } else if let Some(s) = &v.secret {
            let d = volume_dir(pod_dir, "secret", &v.name);
            let name = s.secret_name.clone().unwrap_or_default();
            match objects.secret(ns, &name) {
                Some(sec) => {
                    let data = env::secret_data(&sec)
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    write_files(
                        &d,
                        &projected(data, s.items.as_ref()),
                        s.default_mode.or(Some(0o644)),
                    )?;
                }
                None if s.optional == Some(true) => {
                    std::fs::create_dir_all(&d).map_err(Error::io("create volume dir", &d))?
                }
                None => return Err(fail(pod, format!("secret {name:?} not found"))),
            }
            d
        } else if let Some(da) = &v.downward_api {
            let d = volume_dir(pod_dir, "downward-api", &v.name);
            let mut files = Vec::new();
            for item in da.items.iter().flatten() {
                if let Some(f) = &item.field_ref {
                    let value =
                        env::field_value(pod, fields, &f.field_path).map_err(|e| fail(pod, e.0))?;
                    files.push((item.path.clone(), value.into_bytes(), item.mode));
                }
            }
            write_files(&d, &files, da.default_mode)?;
            d
        } else {
            return Err(fail(
                pod,
                format!("volume {:?}: unsupported volume type", v.name),
            ));
        };
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

/// The bind mounts of a container's volumeMounts.
pub fn mounts(pod: &Pod, c: &Container, paths: &VolumePaths) -> Result<Vec<BindMount>> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let base = paths
            .get(&m.name)
            .ok_or_else(|| fail(pod, format!("volumeMount {:?}: no such volume", m.name)))?;
        let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if sub.split('/').any(|c| c == "..") => {
                return Err(fail(pod, format!("subPath {sub:?} escapes the volume")))
            }
            Some(sub) => {
                let p = base.join(sub);
                if !p.exists() {
                    std::fs::create_dir_all(&p).map_err(Error::io("create subPath", &p))?;
                }
                p
            }
            None => base.clone(),
        };
        out.push(BindMount {
            destination: m.mount_path.clone(),
            source: source.display().to_string(),
            read_only: m.read_only == Some(true),
        });
    }
    Ok(out)
}
