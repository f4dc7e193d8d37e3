//! The plugin's own failures (config, subnet file, netns, IPAM, netlink) and
//! the one place that maps each to a CNI error code. Must never format the
//! wire JSON itself; `protocol::CniError` does that.

use std::path::PathBuf;

use crate::ipam::IpamError;
use crate::netlink::NetlinkError;
use crate::protocol::{CniError, ErrorCode};
use crate::subnet_file::SubnetFileError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid network configuration: {0}")]
    Config(String),
    #[error(transparent)]
    SubnetFile(#[from] SubnetFileError),
    #[error("network namespace {path} is not reachable: {source}")]
    Netns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("CHECK failed: {0}")]
    Check(String),
    /// Already a wire error (e.g. an unreadable prevResult).
    #[error("{}", .0.msg)]
    Protocol(CniError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    fn code(&self) -> ErrorCode {
        match self {
            Error::Config(_) => ErrorCode::INVALID_NETWORK_CONFIG,
            Error::SubnetFile(SubnetFileError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                ErrorCode::TRY_AGAIN_LATER
            }
            Error::SubnetFile(SubnetFileError::Read { .. }) => ErrorCode::IO_FAILURE,
            Error::SubnetFile(_) => ErrorCode::INVALID_NETWORK_CONFIG,
            Error::Netns { .. } => ErrorCode::UNKNOWN_CONTAINER,
            Error::Ipam(IpamError::Exhausted { .. }) => ErrorCode::ADDRESSES_EXHAUSTED,
            Error::Ipam(_) => ErrorCode::IO_FAILURE,
            Error::Netlink(_) => ErrorCode::IO_FAILURE,
            Error::Check(_) => ErrorCode::CHECK_FAILED,
            Error::Io { .. } => ErrorCode::IO_FAILURE,
            Error::Protocol(e) => e.code,
        }
    }

    /// What a person should do about it.
    fn hint(&self) -> String {
        match self {
            Error::Config(_) => "fix the network config in /etc/cni/net.d".into(),
            Error::SubnetFile(SubnetFileError::Read { .. }) => {
                "capstan-agent writes this file once the node has a subnet lease; check that the agent runs, or set \"subnet\" in the config".into()
            }
            Error::SubnetFile(_) => "the subnet file is written by capstan-agent; fix or regenerate it".into(),
            Error::Netns { .. } => "the container's network namespace must exist when ADD/CHECK run; was the sandbox already removed?".into(),
            Error::Ipam(IpamError::Exhausted { .. }) => {
                "every address in the node's subnet is reserved; delete pods, run CNI GC, or give the node a larger subnet".into()
            }
            Error::Ipam(_) => "check that the IPAM dataDir is writable by root".into(),
            Error::Netlink(_) => "the kernel refused a network change; see the plugin log for the operation".into(),
            Error::Check(_) => "the attachment no longer matches what ADD made; recreate the pod".into(),
            Error::Io { .. } => "check permissions and free space".into(),
            Error::Protocol(e) => e.details.clone(),
        }
    }
}

impl From<Error> for CniError {
    fn from(e: Error) -> Self {
        if let Error::Protocol(inner) = e {
            return inner;
        }
        let hint = e.hint();
        CniError::new(e.code(), e.to_string(), hint)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
