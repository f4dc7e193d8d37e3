//! Running kubectl (any build, any kubeconfig) in tests: one runner that
//! feeds stdin, captures both streams and turns the outcome into the three
//! shapes suites need (the output, stdout of a success, stderr of a failure).

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `cmd` to the end with `stdin` (if any) piped in.
pub fn run(mut cmd: Command, stdin: Option<&str>) -> Result<Output, String> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let line = crate::cmd::describe(&cmd);
    let mut child = cmd.spawn().map_err(|e| format!("spawn `{line}`: {e}"))?;
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().ok_or("no stdin pipe")?;
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("write stdin of `{line}`: {e}"))?;
    }
    child
        .wait_with_output()
        .map_err(|e| format!("wait for `{line}`: {e}"))
}

/// Stdout of a successful run, or one line naming the call with its stderr.
pub fn success(args: &[&str], out: Output) -> Result<String, String> {
    if !out.status.success() {
        return Err(format!(
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Stderr of a run that had to fail; a success is the error.
pub fn failure(args: &[&str], out: Output) -> Result<String, String> {
    if out.status.success() {
        return Err(format!(
            "kubectl {args:?} succeeded but should not: {}",
            String::from_utf8_lossy(&out.stdout).trim_end()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}
