//! The lab's error type: every variant names the thing that failed, so a
//! broken test environment explains itself in one line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("network namespace {0} does not exist")]
    NoNetns(String),
    #[error("a thread inside netns {0} panicked")]
    ThreadPanicked(String),
    #[error("binary {name} not found (searched {searched}); run `cargo build --workspace` first")]
    MissingBinary { name: String, searched: String },
    #[error("{daemon} exited before it was ready; last log lines:\n{log_tail}")]
    DaemonDied { daemon: String, log_tail: String },
    #[error("{daemon} not ready after {seconds} s; last log lines:\n{log_tail}")]
    DaemonTimeout {
        daemon: String,
        seconds: u64,
        log_tail: String,
    },
    #[error("lab state {path}: {detail}")]
    State { path: PathBuf, detail: String },
    #[error("no node named {0} in this lab")]
    NoNode(String),
    #[error("{0}")]
    Other(String),
}

impl LabError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
        let what = what.into();
        move |source| LabError::Io { what, source }
    }
}
