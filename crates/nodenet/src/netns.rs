//! Entering network namespaces. `NetnsGuard` switches the calling thread
//! and always returns it home (explicitly with `leave`, or on drop); the
//! kernel call sits behind the narrow `Setns` trait so the enter/leave
//! logic is tested with a recording fake, without root. `Place` runs a
//! program or a closure in a namespace. Must never fall back to the
//! caller's namespace when the given one cannot be entered.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The one kernel operation namespace switching needs.
pub trait Setns {
    /// The calling thread's current network namespace, to come back to.
    fn current(&self) -> io::Result<File>;
    /// Moves the calling thread into the network namespace `ns`.
    fn setns(&self, ns: BorrowedFd<'_>) -> io::Result<()>;
}

/// The real kernel.
pub struct Kernel;

impl Setns for Kernel {
    fn current(&self) -> io::Result<File> {
        File::open("/proc/thread-self/ns/net")
    }

    fn setns(&self, ns: BorrowedFd<'_>) -> io::Result<()> {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
    }
}

/// The calling thread inside another network namespace until `leave` or
/// drop brings it home.
pub struct NetnsGuard<'a, S: Setns> {
    ops: &'a S,
    home: Option<File>,
}

impl<'a, S: Setns> NetnsGuard<'a, S> {
    /// Remembers the current namespace, then enters `target`. On error the
    /// thread has not moved.
    pub fn enter(ops: &'a S, target: &File) -> io::Result<Self> {
        let home = ops.current()?;
        ops.setns(target.as_fd())?;
        Ok(NetnsGuard {
            ops,
            home: Some(home),
        })
    }

    /// Returns home, reporting a failure (the caller can then refuse to go
    /// on instead of working in the wrong namespace).
    pub fn leave(mut self) -> io::Result<()> {
        match self.home.take() {
            Some(home) => self.ops.setns(home.as_fd()),
            None => Ok(()),
        }
    }
}

impl<S: Setns> Drop for NetnsGuard<'_, S> {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            if self.ops.setns(home.as_fd()).is_err() {
                // A thread stuck in a foreign namespace would configure the
                // wrong node; nothing safe is left to do in this process.
                eprintln!("capstan-nodenet: cannot return the thread to its network namespace");
                std::process::abort();
            }
        }
    }
}

/// Where a command or closure runs: the current namespace or a named one.
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
    pub fn command(&self, program: &str) -> io::Result<Command> {
        let mut cmd = Command::new(program);
        if let Some(path) = &self.netns {
            let file = File::open(path)?;
            // SAFETY: only setns(2) runs between fork and exec, on a
            // descriptor the closure keeps open.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Ok(cmd)
    }

    /// Runs `f` on a fresh thread inside the namespace (sockets it opens
    /// stay there); the thread is thrown away afterwards.
    pub fn run_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let file = match &self.netns {
            Some(p) => Some(File::open(p)?),
            None => None,
        };
        std::thread::spawn(move || {
            if let Some(file) = file {
                Kernel.setns(file.as_fd())?;
            }
            f()
        })
        .join()
        .map_err(|_| io::Error::other("namespace thread panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::os::fd::AsRawFd;

    /// Records which descriptor each setns got; can be told to fail.
    struct Recorder {
        home: File,
        calls: RefCell<Vec<i32>>,
        fail_on: Option<usize>,
    }

    impl Recorder {
        fn new(fail_on: Option<usize>) -> Self {
            Recorder {
                home: File::open("/dev/null").expect("a file"),
                calls: RefCell::new(Vec::new()),
                fail_on,
            }
        }
    }

    impl Setns for Recorder {
        fn current(&self) -> io::Result<File> {
            self.home.try_clone()
        }
        fn setns(&self, ns: BorrowedFd<'_>) -> io::Result<()> {
            let n = self.calls.borrow().len();
            self.calls.borrow_mut().push(ns.as_raw_fd());
            if self.fail_on == Some(n) {
                return Err(io::Error::other("refused"));
            }
            Ok(())
        }
    }

    #[test]
    fn enters_then_always_returns_home() {
        let target = File::open("/dev/zero").expect("a file");
        let fake = Recorder::new(None);
        {
            let _g = NetnsGuard::enter(&fake, &target).expect("enter");
        }
        assert_eq!(fake.calls.borrow().len(), 2, "enter, then home on drop");
        assert_eq!(fake.calls.borrow()[0], target.as_raw_fd());
        let fake = Recorder::new(None);
        NetnsGuard::enter(&fake, &target)
            .expect("enter")
            .leave()
            .expect("leave");
        assert_eq!(fake.calls.borrow().len(), 2, "leave goes home once");
    }

    #[test]
    fn a_refused_enter_leaves_nothing_to_undo_and_a_refused_leave_is_reported() {
        let target = File::open("/dev/zero").expect("a file");
        let fake = Recorder::new(Some(0));
        assert!(NetnsGuard::enter(&fake, &target).is_err());
        assert_eq!(fake.calls.borrow().len(), 1, "no way back attempted");
        let fake = Recorder::new(Some(1));
        let g = NetnsGuard::enter(&fake, &target).expect("enter");
        assert!(g.leave().is_err());
    }

    #[test]
    fn a_missing_namespace_is_an_error_not_the_callers_namespace() {
        let p = Place::netns("/nonexistent/netns");
        assert!(p.command("true").is_err());
        assert!(p.run_in(|| Ok(())).is_err());
    }
}
