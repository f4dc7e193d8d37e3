//! STATUS (1.1.0): ready when the network resolves (subnet file present and
//! valid, or an inline subnet) and the IPAM store can be locked. Answers
//! code 50 otherwise; must never change any state beyond creating dataDir.

use crate::config::PluginConfig;
use crate::ipam::Store;
use crate::protocol::dispatch::Request;
use crate::protocol::{CniError, ErrorCode};

pub fn status(req: &Request) -> Result<(), CniError> {
    let not_ready = |e: crate::error::Error| {
        let inner = CniError::from(e);
        CniError::new(
            ErrorCode::NOT_AVAILABLE,
            format!("capstan is not ready: {}", inner.msg),
            inner.details,
        )
    };
    let conf = PluginConfig::from_json(&req.raw, &req.header.name).map_err(CniError::from)?;
    conf.resolve().map_err(not_ready)?;
    Store::new(&conf.data_dir)
        .lock()
        .map(drop)
        .map_err(|e| not_ready(e.into()))
}
