//! Finds the project's own binaries (capstan-agent, capstan-cni, ...) in the
//! cargo target directory the running test or tool was built into.

use std::path::PathBuf;

use crate::LabError;

/// Path of a workspace binary built in the same profile as the caller.
/// `CAPSTAN_BIN_DIR` overrides the search (installed binaries, CI images).
pub fn path(name: &str) -> Result<PathBuf, LabError> {
    let mut candidates = Vec::new();
    if let Ok(dir) = std::env::var("CAPSTAN_BIN_DIR") {
        candidates.push(PathBuf::from(dir).join(name));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/<bin> or target/<profile>/deps/<test>-<hash>
        for dir in exe.ancestors().skip(1).take(2) {
            candidates.push(dir.join(name));
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| LabError::MissingBinary {
            name: name.to_string(),
            searched: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}
