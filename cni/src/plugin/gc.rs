//! GC (1.1.0): release every reservation whose attachment the runtime no
//! longer lists in `cni.dev/valid-attachments`. Must never release anything
//! when the list is absent (that would free every live pod's address).

use std::collections::HashSet;

use crate::config::PluginConfig;
use crate::error::{Error, Result};
use crate::ipam::{Owner, Store};
use crate::protocol::dispatch::Request;

pub fn gc(req: &Request) -> Result<()> {
    let conf = PluginConfig::from_json(&req.raw, &req.header.name)?;
    let valid = req.header.valid_attachments.as_ref().ok_or_else(|| {
        Error::Config("GC needs \"cni.dev/valid-attachments\" (may be an empty list)".into())
    })?;
    let keep: HashSet<Owner> = valid
        .iter()
        .map(|a| Owner::new(&a.container_id, &a.ifname))
        .collect();
    if !conf.data_dir.exists() {
        return Ok(());
    }
    let released = Store::new(&conf.data_dir)
        .lock()?
        .release_all_except(&keep)?;
    tracing::info!(?released, kept = keep.len(), "garbage collected");
    Ok(())
}
