//! kubelet's AtomicWriter for configMap, secret, downwardAPI and projected
//! volumes. A new set of files is written into a fresh timestamped
//! directory (`..2025_01_02_15_04_05.<random>`), then the `..data` symlink
//! is swapped to it with one rename(2); the names a container sees are
//! symlinks through `..data` (`token -> ..data/token`). A reader of the
//! bind-mounted volume directory so sees the whole old set or the whole new
//! set, never a half-written or missing file. Owns only the target
//! directory it is given; writes nothing when nothing changed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// One file of a volume: its bytes and permission bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A volume's files by path relative to the volume's root.
pub type Payload = BTreeMap<String, FileProjection>;

const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";
const MAX_PATH_LENGTH: usize = 4096;
const MAX_FILE_NAME_LENGTH: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("invalid path {path:?}: {why}")]
    InvalidPath { path: String, why: &'static str },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError::Io { op, path, source }
}

/// kubelet's `validatePath`: relative, no `..` component, no leading
/// `..name` (those are the writer's own), bounded lengths.
fn validate(path: &str) -> Result<(), WriteError> {
    let bad = |why| {
        Err(WriteError::InvalidPath {
            path: path.to_string(),
            why,
        })
    };
    if path.is_empty() {
        return bad("must not be empty");
    }
    if path.starts_with('/') {
        return bad("must be a relative path");
    }
    if path.len() > MAX_PATH_LENGTH {
        return bad("must be at most 4096 characters");
    }
    let items: Vec<&str> = path.split('/').collect();
    if items.contains(&"..") {
        return bad("must not contain '..'");
    }
    if items.iter().any(|i| i.len() > MAX_FILE_NAME_LENGTH) {
        return bad("file names must be at most 255 characters");
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return bad("must not start with '..'");
    }
    Ok(())
}

/// `path.Clean` for the relative paths that passed `validate`.
fn clean(path: &str) -> String {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn validated(payload: &Payload) -> Result<Payload, WriteError> {
    let mut out = Payload::new();
    for (p, f) in payload {
        validate(p)?;
        out.insert(clean(p), f.clone());
    }
    Ok(out)
}

/// Every file and directory path (relative) below `dir`.
fn existing_paths(dir: &Path) -> Result<BTreeSet<String>, WriteError> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) -> Result<(), WriteError> {
        for entry in std::fs::read_dir(dir).map_err(io("read volume data dir", dir))? {
            let entry = entry.map_err(io("read volume data dir", dir))?;
            let p = entry.path();
            if let Ok(rel) = p.strip_prefix(root) {
                out.insert(rel.display().to_string());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &p, out)?;
            }
        }
        Ok(())
    }
    let mut out = BTreeSet::new();
    match std::fs::metadata(dir) {
        Ok(_) => walk(dir, dir, &mut out)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("read volume data dir", dir)(e)),
    }
    Ok(out)
}

/// The paths of the old set that the new one no longer has (a file's
/// parent directories count as the new set's too).
fn paths_to_remove(payload: &Payload, old: &Path) -> Result<BTreeSet<String>, WriteError> {
    let mut wanted = BTreeSet::new();
    for p in payload.keys() {
        let mut acc = String::new();
        for part in p.split('/') {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            wanted.insert(acc.clone());
        }
    }
    Ok(existing_paths(old)?
        .into_iter()
        .filter(|p| !wanted.contains(p))
        .collect())
}

/// Whether any file of `payload` differs (bytes or mode) from the old set.
fn differs(payload: &Payload, old: &Path) -> bool {
    payload.iter().any(|(rel, f)| {
        let p = old.join(rel);
        let mode = std::fs::symlink_metadata(&p)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.permissions().mode() & 0o7777);
        mode != Some(f.mode & 0o7777) || std::fs::read(&p).ok().as_deref() != Some(&f.data[..])
    })
}

/// A fresh `..<UTC timestamp>.<random>` directory, 0755 as kubelet's.
fn new_timestamp_dir(target: &Path) -> Result<PathBuf, WriteError> {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y_%m_%d_%H_%M_%S")
        .to_string();
    loop {
        let p = target.join(format!(
            "..{stamp}.{:09}",
            rand::random::<u32>() % 1_000_000_000
        ));
        match std::fs::create_dir(&p) {
            Ok(()) => {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                    .map_err(io("chmod volume data dir", &p))?;
                return Ok(p);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("create volume data dir", &p)(e)),
        }
    }
}

fn write_payload(payload: &Payload, dir: &Path) -> Result<(), WriteError> {
    for (rel, f) in payload {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io("create volume dir", parent))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(f.mode & 0o7777)
            .open(&p)
            .map_err(io("write volume file", &p))?;
        file.write_all(&f.data)
            .map_err(io("write volume file", &p))?;
        // The umask took bits off at open; the mode is the volume's.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode & 0o7777))
            .map_err(io("chmod volume file", &p))?;
    }
    Ok(())
}

/// `name -> ..data/name` for each top-level name of the payload. A plain
/// file or directory in its place (an older layout that wrote files
/// directly) is replaced.
fn create_user_visible(payload: &Payload, target: &Path) -> Result<(), WriteError> {
    let tops: BTreeSet<&str> = payload.keys().filter_map(|p| p.split('/').next()).collect();
    for top in tops {
        let visible = target.join(top);
        match std::fs::symlink_metadata(&visible) {
            Ok(m) if m.file_type().is_symlink() => continue,
            Ok(m) if m.is_dir() => {
                std::fs::remove_dir_all(&visible).map_err(io("replace volume path", &visible))?
            }
            Ok(_) => std::fs::remove_file(&visible).map_err(io("replace volume path", &visible))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("read volume path", &visible)(e)),
        }
        std::os::unix::fs::symlink(Path::new(DATA_DIR).join(top), &visible)
            .map_err(io("link volume path", &visible))?;
    }
    Ok(())
}

/// Makes `target` hold exactly `payload`, atomically for readers. Returns
/// whether a new set was written (false: it was already there).
pub fn write(target: &Path, payload: &Payload) -> Result<bool, WriteError> {
    let payload = validated(payload)?;
    std::fs::create_dir_all(target).map_err(io("create volume dir", target))?;
    let data = target.join(DATA_DIR);
    let old_ts = match std::fs::read_link(&data) {
        Ok(p) => Some(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        // `..data` as a plain file or directory: not ours to keep.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => None,
        Err(e) => return Err(io("read volume data link", &data)(e)),
    };
    let old_path = old_ts.as_ref().map(|t| target.join(t));
    let (remove, write) = match &old_path {
        Some(old) => {
            let remove = paths_to_remove(&payload, old)?;
            let write = !remove.is_empty() || differs(&payload, old);
            (remove, write)
        }
        None => (BTreeSet::new(), true),
    };
    if write {
        let ts = new_timestamp_dir(target)?;
        if let Err(e) = write_payload(&payload, &ts) {
            let _ = std::fs::remove_dir_all(&ts);
            return Err(e);
        }
        let ts_name = ts.file_name().map(PathBuf::from).unwrap_or_default();
        let tmp = target.join(DATA_DIR_TMP);
        let _ = std::fs::remove_file(&tmp);
        if let Err(e) = std::os::unix::fs::symlink(&ts_name, &tmp) {
            let _ = std::fs::remove_dir_all(&ts);
            return Err(io("link volume data dir", &tmp)(e));
        }
        if std::fs::symlink_metadata(&data).is_ok_and(|m| !m.file_type().is_symlink()) {
            std::fs::remove_dir_all(&data).map_err(io("replace volume data link", &data))?;
        }
        // The swap readers never see half of.
        if let Err(e) = std::fs::rename(&tmp, &data) {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_dir_all(&ts);
            return Err(io("swap volume data link", &data)(e));
        }
        for p in remove.iter().filter(|p| !p.contains('/')) {
            let visible = target.join(p);
            if std::fs::symlink_metadata(&visible).is_ok_and(|m| m.file_type().is_symlink()) {
                std::fs::remove_file(&visible).map_err(io("remove volume path", &visible))?;
            }
        }
        if let Some(old) = &old_path {
            std::fs::remove_dir_all(old).map_err(io("remove old volume data dir", old))?;
        }
    }
    create_user_visible(&payload, target)?;
    Ok(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files
            .iter()
            .map(|(p, d, m)| (p.to_string(), file(d, *m)))
            .collect()
    }

    fn timestamp_dirs(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|r| {
                r.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.starts_with("..2"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn files_are_symlinks_through_data_with_their_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().join("vol");
        let p = payload(&[("token", "t1", 0o600), ("a/b/c.txt", "deep", 0o640)]);
        assert!(write(&t, &p).unwrap());
        assert_eq!(
            std::fs::read_link(t.join("token")).unwrap(),
            Path::new("..data/token")
        );
        assert_eq!(
            std::fs::read_link(t.join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert_eq!(std::fs::read_to_string(t.join("token")).unwrap(), "t1");
        assert_eq!(
            std::fs::read_to_string(t.join("a/b/c.txt")).unwrap(),
            "deep"
        );
        let mode = |p: &str| std::fs::metadata(t.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!((mode("token"), mode("a/b/c.txt")), (0o600, 0o640));
        let ts = std::fs::read_link(t.join("..data")).unwrap();
        assert_eq!(timestamp_dirs(&t), vec![ts.display().to_string()]);
        assert_eq!(mode(&ts.display().to_string()), 0o755);
    }

    #[test]
    fn unchanged_payload_writes_nothing_and_a_change_swaps_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().join("vol");
        let p1 = payload(&[("token", "t1", 0o644), ("ca.crt", "ca", 0o644)]);
        write(&t, &p1).unwrap();
        let ts1 = std::fs::read_link(t.join("..data")).unwrap();
        assert!(!write(&t, &p1).unwrap());
        assert_eq!(std::fs::read_link(t.join("..data")).unwrap(), ts1);

        // A reader holding the old file keeps reading the old bytes; the
        // name now shows the new ones; the old directory is gone.
        let held = std::fs::File::open(t.join("token")).unwrap();
        let p2 = payload(&[("token", "t2", 0o644), ("ca.crt", "ca", 0o644)]);
        assert!(write(&t, &p2).unwrap());
        let ts2 = std::fs::read_link(t.join("..data")).unwrap();
        assert_ne!(ts1, ts2);
        assert_eq!(std::fs::read_to_string(t.join("token")).unwrap(), "t2");
        assert_eq!(
            std::io::read_to_string(held).unwrap(),
            "t1",
            "an open reader keeps the old set"
        );
        assert_eq!(timestamp_dirs(&t), vec![ts2.display().to_string()]);
        assert!(!t.join("..data_tmp").exists());

        // A mode change alone is a change.
        let p3 = payload(&[("token", "t2", 0o600), ("ca.crt", "ca", 0o644)]);
        assert!(write(&t, &p3).unwrap());
    }

    #[test]
    fn dropped_names_disappear_and_old_plain_files_are_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().join("vol");
        std::fs::create_dir_all(t.join("old-dir")).unwrap();
        std::fs::write(t.join("key"), "from an older layout").unwrap();
        write(&t, &payload(&[("key", "v1", 0o644), ("other", "o", 0o644)])).unwrap();
        assert!(std::fs::symlink_metadata(t.join("key"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(t.join("key")).unwrap(), "v1");
        write(&t, &payload(&[("key", "v1", 0o644)])).unwrap();
        assert!(std::fs::symlink_metadata(t.join("other")).is_err());
        // An empty payload (an optional object that is missing) is valid.
        write(&t, &Payload::new()).unwrap();
        assert!(std::fs::symlink_metadata(t.join("key")).is_err());
        assert!(t.join("..data").exists());
    }

    #[test]
    fn bad_paths_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["", "/abs", "a/../b", "..hidden", "..", &"x".repeat(256)] {
            let err = write(tmp.path(), &payload(&[(bad, "x", 0o644)])).err();
            assert!(
                matches!(err, Some(WriteError::InvalidPath { .. })),
                "{bad:?}: {err:?}"
            );
        }
        // `./a` and `a//b` are cleaned, `..` inside a name is fine.
        write(
            tmp.path(),
            &payload(&[
                ("./a", "1", 0o644),
                ("b//c", "2", 0o644),
                ("d..e", "3", 0o644),
            ]),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("b/c")).unwrap(),
            "2"
        );
        assert_eq!(std::fs::read_to_string(tmp.path().join("a")).unwrap(), "1");
    }
}
