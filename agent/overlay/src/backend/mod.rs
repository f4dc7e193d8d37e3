//! The dataplane (flannel's `pkg/backend`): the `Dataplane` trait, the
//! desired VXLAN/host-gw state, plan and reconcile, the netlink
//! implementation, masquerade and kernel change events. It decides nothing
//! about subnets (leases come in, kernel changes go out) and never imports
//! `component`.

pub mod dataplane;
pub mod kernel_events;
pub mod masquerade;
pub mod netlink;
pub mod plan;
pub mod reconcile;
pub mod vxlan;

pub use dataplane::{Dataplane, DataplaneError};
pub use netlink::NetlinkDataplane;
pub use reconcile::Reconciler;
pub use vxlan::{Local, Underlay};
