//! Kernel network configuration over rtnetlink: one socket per namespace,
//! opened on a thread that is already in that namespace. Owns the
//! thread/runtime plumbing and the link/address/route/sysctl operations;
//! must never decide *what* to configure (the plugin does).

pub mod addr;
pub mod link;
pub mod route;
pub mod sysctl;

use std::fs::File;
use std::future::Future;
use std::os::fd::AsFd;

use rtnetlink::Handle;

pub use link::LinkInfo;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink {op}: {source}")]
    Request {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("netlink {op}: {detail}")]
    Unexpected { op: String, detail: String },
    #[error("cannot set up netlink in {what}: {source}")]
    Setup {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl NetlinkError {
    pub fn request(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
        let op = op.into();
        move |source| NetlinkError::Request { op, source }
    }
}

/// The errno a netlink request was refused with, if it was.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) if msg.raw_code() != 0 => Some(-msg.raw_code()),
        _ => None,
    }
}

/// Runs `work` with a netlink handle of the calling thread's namespace, on a
/// single-threaded runtime (nothing else runs in this process).
pub fn run_here<T, F, Fut>(work: F) -> Result<T, NetlinkError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|source| NetlinkError::Setup {
            what: "tokio runtime",
            source,
        })?;
    rt.block_on(async move {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|source| NetlinkError::Setup {
                what: "netlink socket",
                source,
            })?;
        let conn = tokio::spawn(conn);
        let out = work(handle).await;
        conn.abort();
        out
    })
}

/// Runs `work` on a dedicated thread that has entered the network namespace
/// `netns` first: setns(2) changes only the calling thread, and tokio must
/// be started after it so the socket is opened inside.
pub fn run_in_netns<T, F, Fut>(netns: &File, work: F) -> Result<T, NetlinkError>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    std::thread::scope(|scope| {
        let joined = std::thread::Builder::new()
            .name("cni-netns".into())
            .spawn_scoped(scope, move || {
                nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(
                    |e| NetlinkError::Setup {
                        what: "setns",
                        source: e.into(),
                    },
                )?;
                run_here(work)
            })
            .map_err(|source| NetlinkError::Setup {
                what: "netns thread",
                source,
            })?
            .join();
        match joined {
            Ok(out) => out,
            // Re-raise so dispatch's catch_unwind reports it as a bug.
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
