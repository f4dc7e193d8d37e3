//! Rolls back a half-done ADD: removes the host veth (which takes the pod
//! end with it) and releases the reserved addresses. Runs on error and on
//! panic (Drop), so a failed ADD leaves nothing behind. Must never undo an
//! ADD that completed.

use crate::ipam::{Owner, Store};
use crate::netlink;

pub struct AddUndo<'a> {
    pub store: &'a Store,
    pub owner: &'a Owner,
    pub host_veth: &'a str,
    armed: bool,
}

impl<'a> AddUndo<'a> {
    pub fn new(store: &'a Store, owner: &'a Owner, host_veth: &'a str) -> Self {
        AddUndo {
            store,
            owner,
            host_veth,
            armed: true,
        }
    }

    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for AddUndo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let name = self.host_veth.to_string();
        if let Err(e) =
            netlink::run_here(|h| async move { netlink::link::delete_by_name(&h, &name).await })
        {
            tracing::error!(veth = self.host_veth, error = %e, "rollback: cannot delete host veth");
        }
        match self.store.lock().and_then(|l| l.release(self.owner)) {
            Ok(ips) => tracing::info!(owner = %self.owner, ?ips, "rollback: released addresses"),
            Err(e) => {
                tracing::error!(owner = %self.owner, error = %e, "rollback: cannot release addresses")
            }
        }
    }
}
