//! rtnetlink error codes, and "deleting what is already gone is fine":
//! the one place the netlink dataplane turns an errno into success.
//! Nothing else here; the shared node-networking crate replaces it.

pub(super) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Deleting what is already gone is fine.
pub(super) fn gone_ok(r: Result<(), rtnetlink::Error>) -> Result<(), rtnetlink::Error> {
    match r {
        Err(e)
            if matches!(
                errno(&e),
                Some(libc::ENOENT | libc::ESRCH | libc::ENODEV | libc::EADDRNOTAVAIL)
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}
