//! The attachment a command acts on, from the invocation's environment.

use crate::protocol::dispatch::Request;

/// The (container ID, ifname) pair the environment carries for ADD, DEL
/// and CHECK; dispatch has already checked they are present.
pub(super) fn attachment(req: &Request) -> crate::error::Result<(String, String)> {
    let inv = &req.invocation;
    match (&inv.container_id, &inv.ifname) {
        (Some(id), Some(ifname)) => Ok((id.as_str().to_string(), ifname.as_str().to_string())),
        _ => Err(crate::error::Error::Config(
            "CNI_CONTAINERID and CNI_IFNAME are required for this command".into(),
        )),
    }
}
