//! Where every lab keeps its files: a leaf, so the modules that find labs
//! on disk (state, mount namespaces) need not import each other.

use std::path::PathBuf;

/// Root of every lab's files (`CAPSTAN_LAB_DIR` overrides).
pub fn base_dir() -> PathBuf {
    std::env::var_os("CAPSTAN_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/capstan-lab"))
}
