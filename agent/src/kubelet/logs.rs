//! Container logs in the CRI format (`<RFC3339Nano> <stream> <P|F> <text>`),
//! one file per attempt at `<log dir>/<ns>_<name>_<uid>/<container>/<n>.log`.
//!
//! Why a log driver: containerd's shim writes raw bytes for `file://`
//! stdio, and FIFOs read by the agent would stall containers whenever the
//! agent restarts. The shim's `binary://` scheme instead starts this same
//! executable (`capstan-agent cri-log <path>`) as a child of the shim with
//! the container's stdout on fd 3, stderr on fd 4 and a ready pipe on fd 5:
//! it lives exactly as long as the container's output, independent of the
//! agent. This module never touches containers.

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const DRIVER_ARG: &str = "cri-log";
/// Longest line kept whole; longer ones are split into P ... F records.
const MAX_LINE: usize = 16 * 1024;

pub fn pod_log_dir(log_dir: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    log_dir.join(format!("{namespace}_{name}_{uid}"))
}

pub fn container_log_path(pod_dir: &Path, container: &str, restart: u32) -> PathBuf {
    pod_dir.join(container).join(format!("{restart}.log"))
}

/// One CRI log record.
pub fn record(timestamp: &str, stream: &str, partial: bool, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 48);
    out.extend_from_slice(timestamp.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// Splits what was read into records; returns the bytes still waiting for
/// their newline.
pub fn split_records(buf: &mut Vec<u8>, stream: &str, now: &dyn Fn() -> String, out: &mut Vec<u8>) {
    loop {
        match buf.iter().position(|b| *b == b'\n') {
            Some(nl) if nl <= MAX_LINE => {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                out.extend(record(&now(), stream, false, &line[..line.len() - 1]));
            }
            _ if buf.len() >= MAX_LINE => {
                let chunk: Vec<u8> = buf.drain(..MAX_LINE).collect();
                out.extend(record(&now(), stream, true, &chunk));
            }
            _ => return,
        }
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// Entry point of `capstan-agent cri-log <path>` (run by the shim).
pub fn run_driver(path: &Path) -> i32 {
    // SAFETY: fds 3-5 are handed to us by the shim for exactly this use; we
    // own them from here on.
    let (stdout, stderr, ready) = unsafe {
        (
            std::fs::File::from_raw_fd(3),
            std::fs::File::from_raw_fd(4),
            std::fs::File::from_raw_fd(5),
        )
    };
    // The shim sends SIGTERM when the task is deleted, after closing its
    // ends of the pipes: let EOF end us, so nothing buffered is lost.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => Arc::new(Mutex::new(f)),
        Err(e) => {
            eprintln!("cri-log: open {}: {e}", path.display());
            return 1;
        }
    };
    drop(ready);
    let copy = |mut src: std::fs::File, stream: &'static str, file: Arc<Mutex<std::fs::File>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 32 * 1024];
            loop {
                let n = match src.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                let mut out = Vec::new();
                split_records(&mut buf, stream, &now, &mut out);
                if !out.is_empty() {
                    if let Ok(mut f) = file.lock() {
                        let _ = f.write_all(&out);
                    }
                }
            }
            if !buf.is_empty() {
                if let Ok(mut f) = file.lock() {
                    let _ = f.write_all(&record(&now(), stream, false, &buf));
                }
            }
        })
    };
    let a = copy(stdout, "stdout", file.clone());
    let b = copy(stderr, "stderr", file);
    let _ = a.join();
    let _ = b.join();
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_full_and_partial_lines() {
        let ts = || "2026-01-01T00:00:00.5Z".to_string();
        let mut buf = b"hello\nwor".to_vec();
        let mut out = Vec::new();
        split_records(&mut buf, "stdout", &ts, &mut out);
        assert_eq!(out, b"2026-01-01T00:00:00.5Z stdout F hello\n");
        assert_eq!(buf, b"wor");
        let mut long = vec![b'x'; MAX_LINE + 3];
        long.push(b'\n');
        let mut out = Vec::new();
        split_records(&mut long, "stderr", &ts, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("2026-01-01T00:00:00.5Z stderr P xxx"));
        assert_eq!(lines[1], "2026-01-01T00:00:00.5Z stderr F xxx");
        assert_eq!(
            container_log_path(&pod_log_dir(Path::new("/l"), "ns", "p", "u"), "c", 2),
            Path::new("/l/ns_p_u/c/2.log")
        );
    }
}
