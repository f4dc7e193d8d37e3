//! Pod volumes on the node: emptyDir (a directory per pod), hostPath,
//! and the volumes whose files the kubelet writes (configMap, secret,
//! downwardAPI, projected: through `atomic_writer`, their contents from
//! `payload` and `projected`), and the bind mounts a container's
//! volumeMounts turn into. Writes only below the pod's own directory (and
//! hostPath's DirectoryOrCreate).

pub mod atomic_writer;
pub mod payload;
pub mod projected;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use crate::error::{Error, Result};
use crate::pod::env::{Objects, PodFields};
use crate::pod::spec::BindMount;
use atomic_writer::Payload;
use payload::DEFAULT_MODE;
pub use projected::Tokens;

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

fn mount_failed(pod: &Pod, v: &Volume, message: String) -> Error {
    Error::Mount {
        pod: pod.metadata.name.clone().unwrap_or_default(),
        volume: v.name.clone(),
        message,
    }
}

/// Whether the kubelet writes this volume's files (and mounts it
/// read-only, as kubelet does for these kinds).
fn is_content(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.secret.is_some()
        || v.downward_api.is_some()
        || v.projected.is_some()
}

/// Where a content volume lives and the files it must hold now.
fn content(
    pod: &Pod,
    pod_dir: &Path,
    v: &Volume,
    fields: &PodFields,
    objects: &dyn Objects,
    tokens: &dyn Tokens,
) -> Option<(PathBuf, Result<Payload, String>)> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    if let Some(c) = &v.config_map {
        let optional = c.optional == Some(true);
        let files = match objects.config_map(ns, &c.name) {
            None if !optional => Err(format!("configmaps {:?} not found", c.name)),
            found => payload::config_map(
                found.as_ref(),
                c.items.as_deref(),
                c.default_mode.unwrap_or(DEFAULT_MODE),
                optional,
            ),
        };
        Some((volume_dir(pod_dir, "configmap", &v.name), files))
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let optional = s.optional == Some(true);
        let files = match objects.secret(ns, &name) {
            None if !optional => Err(format!("secrets {name:?} not found")),
            found => payload::secret(
                found.as_ref(),
                s.items.as_deref(),
                s.default_mode.unwrap_or(DEFAULT_MODE),
                optional,
            ),
        };
        Some((volume_dir(pod_dir, "secret", &v.name), files))
    } else if let Some(d) = &v.downward_api {
        let files = payload::downward_api(
            pod,
            fields,
            d.items.as_deref().unwrap_or_default(),
            d.default_mode.unwrap_or(DEFAULT_MODE),
        );
        Some((volume_dir(pod_dir, "downward-api", &v.name), files))
    } else {
        v.projected.as_ref().map(|p| {
            let files = projected::collect(pod, p, fields, objects, tokens);
            (volume_dir(pod_dir, "projected", &v.name), files)
        })
    }
}

/// Writes a content volume's files (atomically; nothing when unchanged).
fn write_content(pod: &Pod, v: &Volume, dir: &Path, files: Result<Payload, String>) -> Result<()> {
    let files = files.map_err(|m| mount_failed(pod, v, m))?;
    atomic_writer::write(dir, &files).map_err(|e| mount_failed(pod, v, e.to_string()))?;
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

fn volumes_of(pod: &Pod) -> &[Volume] {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
}

/// Makes every volume present and returns where each lives.
pub fn prepare(
    pod: &Pod,
    pod_dir: &Path,
    fields: &PodFields,
    objects: &dyn Objects,
    tokens: &dyn Tokens,
) -> Result<VolumePaths> {
    let mut out = VolumePaths::new();
    for v in volumes_of(pod) {
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
        } else if let Some((dir, files)) = content(pod, pod_dir, v, fields, objects, tokens) {
            write_content(pod, v, &dir, files)?;
            dir
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

/// Rewrites the content volumes of a running pod (new ConfigMap/Secret
/// data, rotated tokens), as kubelet's periodic remount does. Each volume
/// on its own: one that fails keeps its last files, and its error is
/// returned with the others'.
pub fn refresh(
    pod: &Pod,
    pod_dir: &Path,
    fields: &PodFields,
    objects: &dyn Objects,
    tokens: &dyn Tokens,
) -> Vec<Error> {
    volumes_of(pod)
        .iter()
        .filter_map(|v| {
            let (dir, files) = content(pod, pod_dir, v, fields, objects, tokens)?;
            write_content(pod, v, &dir, files).err()
        })
        .collect()
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
        // kubelet mounts the volumes it writes read-only, whatever the
        // volumeMount says: the next write would undo a container's.
        let written = volumes_of(pod)
            .iter()
            .any(|v| v.name == m.name && is_content(v));
        out.push(BindMount {
            destination: m.mount_path.clone(),
            source: source.display().to_string(),
            read_only: m.read_only == Some(true) || written,
        });
    }
    Ok(out)
}
