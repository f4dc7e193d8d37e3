//! Writing credential files: created exclusively (never overwriting), with
//! the mode set at creation so a key is never readable by others, even for
//! an instant.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::error::Error;

pub(super) fn ensure_dir(dir: &Path) -> Result<(), Error> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Io {
            what: "create directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// Creates `path` with `mode` and writes `data`; fails if it exists. The
/// data goes to a temporary name first and is linked into place, so a crash
/// never leaves a half-written key behind that a re-run would keep.
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    let io = |what| {
        move |source| Error::Io {
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
