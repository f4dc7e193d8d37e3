//! Running helper programs (ip, ctr, etcdctl) with errors that carry the
//! command line and its stderr, so a failing lab step says what went wrong.

use std::process::{Command, Output};

use crate::LabError;

/// Runs `cmd` to completion; non-zero exit is an error carrying stderr.
pub fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let line = describe(cmd);
    let out = cmd.output().map_err(|source| LabError::Io {
        what: format!("spawn `{line}`"),
        source,
    })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// Runs `cmd` and returns its stdout as text.
pub fn stdout(cmd: &mut Command) -> Result<String, LabError> {
    let out = run(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
