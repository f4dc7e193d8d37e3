//! `OverlayError`: why the overlay component stopped. Only errors that
//! retrying cannot fix end up here; transient store errors are retried.

use crate::backend::dataplane::DataplaneError;
use crate::backend::masquerade;
use crate::subnet::lease::StoreError;
use crate::subnet::manager::AcquireError;

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("underlay interface: {0}")]
    Underlay(#[source] DataplaneError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Acquire(#[from] AcquireError),
    #[error(transparent)]
    SubnetFile(#[from] capstan_subnet_file::SubnetFileError),
    #[error(transparent)]
    Masquerade(#[from] masquerade::MasqError),
    #[error("enable forwarding ({path}): {source}")]
    Forwarding {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
}
