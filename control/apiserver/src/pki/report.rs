//! What `init` did, file by file, for the command's output.

use std::path::PathBuf;

/// What `init` did, for the command's output.
#[derive(Debug, Default)]
pub struct InitReport {
    pub created: Vec<PathBuf>,
    pub kept: Vec<PathBuf>,
}
