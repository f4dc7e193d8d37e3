//! The real `Dataplane`: rtnetlink messages on one netlink socket in the
//! agent's own network namespace. Reads only what the overlay owns; deleting
//! something already gone is success, so every change is idempotent.
//! This file is the index and the trait's two-line facade.

mod apply;
mod parse;
mod read;
mod socket;
mod underlay;

pub use socket::NetlinkDataplane;

use crate::backend::dataplane::{Actual, Change, Dataplane, DataplaneError};

impl Dataplane for NetlinkDataplane {
    async fn read(&self, vxlan_name: &str) -> Result<Actual, DataplaneError> {
        self.read_owned(vxlan_name).await
    }

    async fn apply(&self, change: &Change) -> Result<(), DataplaneError> {
        self.apply_change(change).await
    }
}
