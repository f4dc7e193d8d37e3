//! Running the proxy's helper programs (nft, conntrack) in the network
//! namespace the proxy serves, which need not be the caller's: tests sync
//! inside lab node namespaces. It must never fall back to the caller's
//! namespace when the given one cannot be entered.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a command runs: the current namespace or a named one.
#[derive(Debug, Clone, Default)]
pub struct Place {
    pub netns: Option<PathBuf>,
}

impl Place {
    pub fn current() -> Place {
        Place { netns: None }
    }

    pub fn netns(path: impl AsRef<Path>) -> Place {
        Place {
            netns: Some(path.as_ref().to_path_buf()),
        }
    }

    /// A command for `program` that enters the namespace between fork and exec.
    pub fn command(&self, program: &str) -> std::io::Result<Command> {
        let mut cmd = Command::new(program);
        if let Some(path) = &self.netns {
            let file = File::open(path)?;
            // SAFETY: only setns(2) runs between fork and exec, on a
            // descriptor the closure keeps open.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Ok(cmd)
    }

    /// Runs `f` on a fresh thread inside the namespace (sockets it opens
    /// stay there).
    pub fn run_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let file = match &self.netns {
            Some(p) => Some(File::open(p)?),
            None => None,
        };
        std::thread::spawn(move || {
            if let Some(file) = file {
                // SAFETY: plain syscall on a valid descriptor, on a thread
                // that is thrown away afterwards.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            f()
        })
        .join()
        .map_err(|_| std::io::Error::other("namespace thread panicked"))?
    }
}
