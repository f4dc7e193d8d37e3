//! The capstan plugin's commands (ADD, DEL, CHECK, GC, STATUS) behind the
//! protocol's `Plugin` trait. Each command lives in its own file; this file
//! only routes and converts errors. Must never print anything.

mod add;
mod check;
mod del;
mod gc;
pub mod masquerade;
mod names;
mod result;
mod status;
mod undo;

pub use names::host_veth_name;

use crate::protocol::dispatch::Request;
use crate::protocol::{CniError, CniResult, Plugin};

/// The plugin `type: capstan`.
#[derive(Debug, Default)]
pub struct Capstan;

impl Plugin for Capstan {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        add::add(req).map_err(CniError::from)
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        del::del(req).map_err(CniError::from)
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        check::check(req).map_err(CniError::from)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        gc::gc(req).map_err(CniError::from)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        status::status(req)
    }
}

/// The (container ID, ifname) pair the environment carries for ADD, DEL
/// and CHECK; dispatch has already checked they are present.
fn attachment(req: &Request) -> crate::error::Result<(String, String)> {
    let inv = &req.invocation;
    match (&inv.container_id, &inv.ifname) {
        (Some(id), Some(ifname)) => Ok((id.as_str().to_string(), ifname.as_str().to_string())),
        _ => Err(crate::error::Error::Config(
            "CNI_CONTAINERID and CNI_IFNAME are required for this command".into(),
        )),
    }
}
