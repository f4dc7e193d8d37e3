//! Kernel network configuration over rtnetlink: one socket per namespace,
//! all served by one current-thread runtime on the calling thread (a socket
//! for another netns is opened there by a brief setns, see `ForeignSocket`).
//! Owns that plumbing and the link/address/route/sysctl operations; must
//! never decide *what* to configure (the plugin does).

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
    run_with_foreign(None, |node, _| work(node))
}

/// A netlink socket opened inside another network namespace. A socket stays
/// bound to the namespace it was created in, so the thread can go back home
/// at once and still configure the other namespace through it; no extra
/// thread or runtime is needed.
pub struct ForeignSocket(rtnetlink::sys::Socket);

impl ForeignSocket {
    /// Enters `netns`, opens the socket and returns to the thread's own
    /// namespace. Call it before making any change: should the way back
    /// fail, the caller gets an error with nothing half-done.
    pub fn open_in(netns: &File) -> Result<Self, NetlinkError> {
        use nix::sched::{setns, CloneFlags};
        let setup = |what| move |source| NetlinkError::Setup { what, source };
        let home = File::open("/proc/thread-self/ns/net").map_err(setup("open own netns"))?;
        setns(netns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| setup("setns")(e.into()))?;
        let socket = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE);
        setns(home.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| setup("setns back home")(e.into()))?;
        let socket = socket.map_err(setup("netlink socket in netns"))?;
        socket
            .set_non_blocking(true)
            .map_err(setup("netlink socket in netns"))?;
        Ok(ForeignSocket(socket))
    }
}

/// Like `run_here`, plus a handle on `foreign` (a socket in another netns),
/// both served by the same runtime on this thread.
pub fn run_with_foreign<T, F, Fut>(
    foreign: Option<ForeignSocket>,
    work: F,
) -> Result<T, NetlinkError>
where
    F: FnOnce(Handle, Option<Handle>) -> Fut,
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
        let mut conns = vec![tokio::spawn(conn)];
        let foreign = match foreign {
            Some(ForeignSocket(socket)) => {
                use std::os::fd::{FromRawFd, IntoRawFd};
                // SAFETY: the descriptor comes from a socket we own and give
                // up here; it is non-blocking already, and we are inside the
                // runtime, where from_raw_fd registers it.
                let tokio_socket =
                    unsafe { rtnetlink::sys::TokioSocket::from_raw_fd(socket.into_raw_fd()) };
                let (conn, h, _) = rtnetlink::from_socket(tokio_socket);
                conns.push(tokio::spawn(conn));
                Some(h)
            }
            None => None,
        };
        let out = work(handle, foreign).await;
        for c in conns {
            c.abort();
        }
        out
    })
}
