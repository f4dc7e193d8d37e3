//! One error type for netlink work and the kernel's two idempotence rules
//! every reconcile loop here relies on: deleting what is already gone and
//! creating what already exists are both success.

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
    /// `map_err` for a request named `op`.
    pub fn request(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
        let op = op.into();
        move |source| NetlinkError::Request { op, source }
    }

    /// The errno the kernel refused the request with, if it did.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request { source, .. } => errno(source),
            _ => None,
        }
    }
}

/// The errno a netlink request was refused with, if it was.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) if msg.raw_code() != 0 => Some(-msg.raw_code()),
        _ => None,
    }
}

/// The errnos that mean "not there": no such file/process/device/address.
pub fn is_gone(e: &rtnetlink::Error) -> bool {
    matches!(
        errno(e),
        Some(libc::ENOENT | libc::ESRCH | libc::ENODEV | libc::EADDRNOTAVAIL)
    )
}

/// Deleting what is already gone is fine.
pub fn gone_ok(r: Result<(), rtnetlink::Error>) -> Result<(), rtnetlink::Error> {
    match r {
        Err(e) if is_gone(&e) => Ok(()),
        other => other,
    }
}

/// Creating what already exists is fine.
pub fn exists_ok(r: Result<(), rtnetlink::Error>) -> Result<(), rtnetlink::Error> {
    match r {
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        other => other,
    }
}
