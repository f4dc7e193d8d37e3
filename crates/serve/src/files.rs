//! Writing credential files: created exclusively (never overwriting), with
//! the mode set at creation so a key is never readable by others, even for
//! an instant.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {source}", path.display())]
pub struct FileError {
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Creates `dir` (and parents) with mode 0700 if missing.
pub fn ensure_private_dir(dir: &Path) -> Result<(), FileError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| FileError {
            what: "create directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// Creates `path` with `mode` and writes `data`; fails if it exists. The
/// data goes to a temporary name first and is linked into place, so a crash
/// never leaves a half-written key behind that a re-run would keep.
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), FileError> {
    let io = |what| {
        move |source| FileError {
            what,
            path: path.to_path_buf(),
            source,
        }
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("create"))?;
    let written = f.write_all(data).and_then(|_| f.sync_all());
    drop(f);
    let linked = written.and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(io("write"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn never_overwrites_and_sets_the_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("pki");
        ensure_private_dir(&sub).expect("dir");
        let key = sub.join("a.key");
        write_new(&key, b"secret", 0o600).expect("write");
        let mode = std::fs::metadata(&key).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        assert!(write_new(&key, b"other", 0o600).is_err());
        assert_eq!(std::fs::read(&key).ok(), Some(b"secret".to_vec()));
        let left = std::fs::read_dir(&sub).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 1, "no temporary file left");
    }
}
