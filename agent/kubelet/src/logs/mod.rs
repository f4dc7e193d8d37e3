//! Container logs: the CRI record format (`record`), the log driver the
//! shim runs (`driver`) and what the agent API may ask the runtime about a
//! container whose log it follows (`access`). File locations are in
//! `crate::paths`. Never touches containers.

pub mod access;
pub mod driver;
pub mod record;

pub use driver::{run_driver, DRIVER_ARG};
