//! The capstan plugin's commands (ADD, DEL, CHECK, GC, STATUS) behind the
//! protocol's `Plugin` trait. Each command lives in its own file; this file
//! only routes and converts errors. Must never print anything.

mod add;
mod attachment;
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
