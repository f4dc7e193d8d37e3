//! Netlink sockets served by one current-thread runtime on the calling
//! thread: one for the thread's own namespace, and optionally one opened
//! inside another namespace (a socket stays bound to the namespace it was
//! made in, so the thread goes home at once). Must never leave the thread
//! in another namespace.

use std::fs::File;
use std::future::Future;

use rtnetlink::Handle;

use crate::error::NetlinkError;
use crate::netns::{Kernel, NetnsGuard};

/// A netlink socket opened inside another network namespace.
pub struct ForeignSocket(rtnetlink::sys::Socket);

impl ForeignSocket {
    /// Enters `netns`, opens the socket and returns to the thread's own
    /// namespace. Call it before making any change: should the way back
    /// fail, the caller gets an error with nothing half-done.
    pub fn open_in(netns: &File) -> Result<Self, NetlinkError> {
        let setup = |what| move |source| NetlinkError::Setup { what, source };
        let guard = NetnsGuard::enter(&Kernel, netns).map_err(setup("setns"))?;
        let socket = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE);
        guard.leave().map_err(setup("setns back home"))?;
        let socket = socket.map_err(setup("netlink socket in netns"))?;
        socket
            .set_non_blocking(true)
            .map_err(setup("netlink socket in netns"))?;
        Ok(ForeignSocket(socket))
    }
}

/// Runs `work` with a netlink handle of the calling thread's namespace, on
/// a single-threaded runtime.
pub fn run_here<T, F, Fut>(work: F) -> Result<T, NetlinkError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    run_with_foreign(None, |node, _| work(node))
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
