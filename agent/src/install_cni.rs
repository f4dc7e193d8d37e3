//! `capstan-agent install-cni`: copies the CNI plugin binaries and the
//! network config from the image onto the host (the DaemonSet's init
//! container). Each file is written to a temporary file in its target
//! directory, fsynced and renamed over the old one, so a container runtime
//! never execs a half-written plugin or reads a half-written config; a file
//! whose content and mode are already right is left alone. It never
//! deletes anything it did not write.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Name the network config gets in the conf dir: the lowest-sorted file
/// wins in kubelets and runtimes, as flannel's `10-flannel.conflist`.
pub const DEFAULT_CONFLIST_NAME: &str = "10-capstan.conflist";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no plugin binaries (regular files)")]
    NoPlugins { path: PathBuf },
    #[error("{path} is not a CNI network config list: {reason}")]
    BadConflist { path: PathBuf, reason: String },
    #[error("{name:?} is not a file name (no '/', not empty)")]
    BadName { name: String },
    #[error("install {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to install where.
#[derive(Debug, Clone)]
pub struct Request {
    /// A plugin binary, or a directory whose regular files all are.
    pub from: PathBuf,
    pub bin_dir: PathBuf,
    pub conflist: Option<PathBuf>,
    pub conf_dir: PathBuf,
    pub conflist_name: String,
}

/// What happened to one target file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Installed(PathBuf),
    Unchanged(PathBuf),
}

/// Installs everything `req` names; stops at the first failure (files
/// installed before it stay, each whole).
pub fn install(req: &Request) -> Result<Vec<Outcome>, InstallError> {
    // Everything is read and checked before the first write.
    let plugins = plugins(&req.from)?;
    let conflist = match &req.conflist {
        Some(p) => Some(read_conflist(p)?),
        None => None,
    };
    if req.conflist_name.is_empty() || req.conflist_name.contains('/') {
        return Err(InstallError::BadName {
            name: req.conflist_name.clone(),
        });
    }
    let mut done = Vec::new();
    for (name, bytes) in plugins {
        done.push(write_atomic(&req.bin_dir, &name, &bytes, 0o755)?);
    }
    if let Some(bytes) = conflist {
        done.push(write_atomic(
            &req.conf_dir,
            &req.conflist_name,
            &bytes,
            0o644,
        )?);
    }
    Ok(done)
}

/// (file name, content) of each plugin, sorted by name.
fn plugins(from: &Path) -> Result<Vec<(String, Vec<u8>)>, InstallError> {
    let read = |path: &Path| {
        fs::read(path).map_err(|source| InstallError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let meta = fs::metadata(from).map_err(|source| InstallError::Read {
        path: from.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    if meta.is_dir() {
        let entries = fs::read_dir(from).map_err(|source| InstallError::Read {
            path: from.to_path_buf(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| InstallError::Read {
                path: from.to_path_buf(),
                source,
            })?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            // Follows symlinks: an image may link the plugin to its build.
            if name.starts_with('.') || !path.metadata().is_ok_and(|m| m.is_file()) {
                continue;
            }
            out.push((name, read(&path)?));
        }
        out.sort();
    } else {
        let name = from
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((name, read(from)?));
    }
    if out.is_empty() {
        return Err(InstallError::NoPlugins {
            path: from.to_path_buf(),
        });
    }
    Ok(out)
}

/// The conflist's bytes, after checking it is one (a broken config in the
/// conf dir would fail every pod on the node).
fn read_conflist(path: &Path) -> Result<Vec<u8>, InstallError> {
    let bytes = fs::read(path).map_err(|source| InstallError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| InstallError::BadConflist {
        path: path.to_path_buf(),
        reason,
    };
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    for key in ["cniVersion", "name"] {
        if !v.get(key).is_some_and(serde_json::Value::is_string) {
            return Err(bad(format!("\"{key}\" must be a string")));
        }
    }
    let plugins = v
        .get("plugins")
        .and_then(serde_json::Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| bad("\"plugins\" must be a non-empty list".into()))?;
    for (i, p) in plugins.iter().enumerate() {
        if !p.get("type").is_some_and(serde_json::Value::is_string) {
            return Err(bad(format!("plugins[{i}] has no \"type\"")));
        }
    }
    Ok(bytes)
}

/// Writes `bytes` as `dir/name` with `mode`, atomically; nothing is
/// written when the file already has them.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<Outcome, InstallError> {
    let target = dir.join(name);
    let err = |source| InstallError::Write {
        path: target.clone(),
        source,
    };
    if let (Ok(meta), Ok(old)) = (fs::metadata(&target), fs::read(&target)) {
        if meta.is_file() && meta.permissions().mode() & 0o7777 == mode && old == bytes {
            return Ok(Outcome::Unchanged(target));
        }
    }
    fs::create_dir_all(dir).map_err(err)?;
    // In the target directory, so the rename stays on one filesystem; a
    // leftover from a crash is a dot file no runtime picks up.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(&target).map_err(|e| err(e.error))?;
    // The rename itself survives a crash only once the directory is synced.
    File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
    Ok(Outcome::Installed(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFLIST: &str =
        r#"{"cniVersion":"1.0.0","name":"capstan","plugins":[{"type":"capstan"}]}"#;

    fn request(root: &Path) -> Request {
        let src = root.join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("capstan"), b"\x7fELF plugin").unwrap();
        fs::write(src.join(".hidden"), b"skip").unwrap();
        fs::write(root.join("conflist.json"), CONFLIST).unwrap();
        Request {
            from: src,
            bin_dir: root.join("opt/cni/bin"),
            conflist: Some(root.join("conflist.json")),
            conf_dir: root.join("etc/cni/net.d"),
            conflist_name: DEFAULT_CONFLIST_NAME.into(),
        }
    }

    #[test]
    fn installs_then_leaves_alone_then_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let req = request(dir.path());
        let plugin = req.bin_dir.join("capstan");
        let conf = req.conf_dir.join(DEFAULT_CONFLIST_NAME);
        assert_eq!(
            install(&req).unwrap(),
            vec![
                Outcome::Installed(plugin.clone()),
                Outcome::Installed(conf.clone())
            ]
        );
        assert_eq!(fs::read(&plugin).unwrap(), b"\x7fELF plugin");
        assert_eq!(
            fs::metadata(&plugin).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(fs::read_to_string(&conf).unwrap(), CONFLIST);
        assert!(!req.bin_dir.join(".hidden").exists());
        let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&plugin).unwrap());
        // Idempotent: same content, same file.
        assert_eq!(
            install(&req).unwrap(),
            vec![
                Outcome::Unchanged(plugin.clone()),
                Outcome::Unchanged(conf.clone())
            ]
        );
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(&plugin).unwrap()),
            inode
        );
        // A new build replaces the file (a new inode: a running plugin keeps its old one).
        fs::write(req.from.join("capstan"), b"\x7fELF plugin v2").unwrap();
        install(&req).unwrap();
        assert_eq!(fs::read(&plugin).unwrap(), b"\x7fELF plugin v2");
        assert_ne!(
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(&plugin).unwrap()),
            inode
        );
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(&req.bin_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["capstan"]);
    }

    #[test]
    fn a_single_file_installs_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut req = request(dir.path());
        req.from = req.from.join("capstan");
        req.conflist = None;
        assert_eq!(
            install(&req).unwrap(),
            vec![Outcome::Installed(req.bin_dir.join("capstan"))]
        );
    }

    #[test]
    fn bad_input_is_refused_before_any_write() {
        let dir = tempfile::tempdir().unwrap();
        let req = request(dir.path());
        for (text, needle) in [
            ("{", "not valid JSON"),
            (r#"{"name":"x","plugins":[{"type":"a"}]}"#, "cniVersion"),
            (
                r#"{"cniVersion":"1.0.0","name":"x","plugins":[]}"#,
                "plugins",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"x","plugins":[{}]}"#,
                "plugins[0]",
            ),
        ] {
            fs::write(req.conflist.as_ref().unwrap(), text).unwrap();
            let e = install(&req).unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("conflist.json"),
                "{e} should name {needle}"
            );
            assert!(!req.bin_dir.exists(), "nothing written on {e}");
        }
        let mut req = request(dir.path());
        req.from = dir.path().join("nowhere");
        let e = install(&req).unwrap_err().to_string();
        assert!(e.contains("nowhere"), "{e}");
        let empty = dir.path().join("empty");
        fs::create_dir_all(&empty).unwrap();
        req.from = empty;
        let e = install(&req).unwrap_err().to_string();
        assert!(e.contains("no plugin binaries"), "{e}");
    }
}
