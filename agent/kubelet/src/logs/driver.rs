//! The log driver. Why: containerd's shim writes raw bytes for `file://`
//! stdio, and FIFOs read by the agent would stall containers whenever the
//! agent restarts. The shim's `binary://` scheme instead starts this same
//! executable (`capstan-agent cri-log <path>`) as a child of the shim with
//! the container's stdout on fd 3, stderr on fd 4 and a ready pipe on fd 5:
//! it lives exactly as long as the container's output, independent of the
//! agent. This module never touches containers.

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::logs::record::{now, record, split_records};

pub const DRIVER_ARG: &str = "cri-log";

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
