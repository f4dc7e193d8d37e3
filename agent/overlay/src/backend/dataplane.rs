//! The kernel state the overlay owns (one VXLAN device, its addresses, and
//! per-peer routes, neighbours and FDB entries) and the narrow `Dataplane`
//! trait that reads it and applies one change at a time. No decisions here.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;

use crate::types::{NodeIp, Vni, VtepMac};

/// The VXLAN device as the overlay wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanLink {
    pub name: String,
    pub vni: Vni,
    pub port: u16,
    pub local: NodeIp,
    pub underlay_index: u32,
    pub mac: VtepMac,
    pub mtu: u32,
}

/// The VXLAN device as the kernel has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    /// `None` when a link of that name exists but is not VXLAN.
    pub vni: Option<Vni>,
    pub port: Option<u16>,
    pub local: Option<Ipv4Addr>,
    pub underlay_index: Option<u32>,
    pub learning: bool,
    pub mac: Option<VtepMac>,
    pub mtu: u32,
    pub up: bool,
}

/// A route to a peer's pod subnet, in the main table, tagged with
/// [`ROUTE_PROTOCOL`] so the overlay only ever removes its own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub dst: IpNetwork,
    pub gateway: IpAddr,
    pub dev: String,
    pub onlink: bool,
}

/// Route protocol number marking the overlay's routes (`ip route ... proto 67`).
pub const ROUTE_PROTOCOL: u8 = 67;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Neigh {
    pub dev: String,
    pub ip: IpAddr,
    pub mac: VtepMac,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fdb {
    pub dev: String,
    pub mac: VtepMac,
    pub dst: NodeIp,
}

/// What the overlay wants in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub vxlan: Option<VxlanLink>,
    /// Addresses on the VXLAN device (both families).
    pub addresses: BTreeSet<IpNetwork>,
    pub routes: BTreeMap<IpNetwork, Route>,
    /// Permanent neighbours on the VXLAN device (both families).
    pub neighs: BTreeMap<IpAddr, VtepMac>,
    /// FDB entries on the VXLAN device.
    pub fdb: BTreeMap<VtepMac, NodeIp>,
}

/// What the kernel has, restricted to what the overlay owns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actual {
    pub vxlan: Option<LinkState>,
    /// Global addresses (link-local ones are the kernel's, not ours).
    pub addresses: BTreeSet<IpNetwork>,
    /// Main-table routes carrying [`ROUTE_PROTOCOL`], both families.
    pub routes: BTreeMap<IpNetwork, Route>,
    pub neighs: BTreeMap<IpAddr, VtepMac>,
    pub fdb: BTreeSet<(VtepMac, NodeIp)>,
    /// Other VXLAN devices named `capstan.<n>` (left by an earlier VNI):
    /// the overlay owns that name space, so they go.
    pub stale_links: BTreeSet<String>,
}

/// Whether `name` is in the overlay's device name space (`capstan.<n>`).
pub fn owned_link_name(name: &str) -> bool {
    name.strip_prefix("capstan.")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// One step the kernel must take; `plan` produces them in a safe order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    CreateVxlan(VxlanLink),
    DeleteLink {
        name: String,
    },
    SetMtu {
        name: String,
        mtu: u32,
    },
    SetUp {
        name: String,
    },
    AddAddress {
        dev: String,
        addr: IpNetwork,
    },
    DelAddress {
        dev: String,
        addr: IpNetwork,
    },
    AddFdb(Fdb),
    DelFdb(Fdb),
    /// Add or replace (atomically) the neighbour for `ip`.
    SetNeigh(Neigh),
    DelNeigh(Neigh),
    /// Add or replace (atomically) the route to `dst`.
    SetRoute(Route),
    DelRoute(Route),
}

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("open netlink socket: {0}")]
    Open(#[source] std::io::Error),
    #[error("no link named {name}")]
    NoSuchLink { name: String },
    #[error("read {what}: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("create vxlan device {name} (vni {vni}): {source}")]
    CreateVxlan {
        name: String,
        vni: Vni,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("change link {name}: {source}")]
    SetLink {
        name: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("delete link {name}: {source}")]
    DeleteLink {
        name: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{op} address {addr} on {dev}: {source}")]
    Address {
        op: &'static str,
        dev: String,
        addr: IpNetwork,
        #[source]
        source: Box<rtnetlink::Error>,
    },
    #[error("{op} route to {dst}: {source}")]
    Route {
        op: &'static str,
        dst: IpNetwork,
        #[source]
        source: Box<rtnetlink::Error>,
    },
    #[error("{op} neighbour {ip} on {dev}: {source}")]
    Neigh {
        op: &'static str,
        dev: String,
        ip: IpAddr,
        #[source]
        source: Box<rtnetlink::Error>,
    },
    #[error("add fdb entry {vtep} -> {dst}: {source}")]
    AddFdb {
        vtep: VtepMac,
        dst: NodeIp,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("delete fdb entry {vtep} -> {dst}: {source}")]
    DelFdb {
        vtep: VtepMac,
        dst: NodeIp,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{0}")]
    Injected(String),
}

/// The kernel, narrowly: read what the overlay owns, apply one change.
pub trait Dataplane: Send + Sync {
    /// Reads the state of the VXLAN device `vxlan_name` (may be absent) and
    /// of the overlay's routes.
    fn read(&self, vxlan_name: &str)
        -> impl Future<Output = Result<Actual, DataplaneError>> + Send;
    fn apply(&self, change: &Change) -> impl Future<Output = Result<(), DataplaneError>> + Send;
}

impl<T: Dataplane> Dataplane for std::sync::Arc<T> {
    fn read(
        &self,
        vxlan_name: &str,
    ) -> impl Future<Output = Result<Actual, DataplaneError>> + Send {
        (**self).read(vxlan_name)
    }
    fn apply(&self, change: &Change) -> impl Future<Output = Result<(), DataplaneError>> + Send {
        (**self).apply(change)
    }
}

/// A recording fake: keeps an `Actual` in memory, applies changes to it the
/// way the kernel would, and remembers every call.
#[cfg(test)]
pub mod fake {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    pub struct FakeDataplane {
        pub state: Mutex<Actual>,
        pub calls: Mutex<Vec<Change>>,
        /// Changes for which `apply` fails (matched by equality).
        pub fail: Mutex<Vec<Change>>,
    }

    impl FakeDataplane {
        pub fn take_calls(&self) -> Vec<Change> {
            std::mem::take(&mut *self.calls.lock().unwrap())
        }
    }

    impl Dataplane for FakeDataplane {
        async fn read(&self, _vxlan_name: &str) -> Result<Actual, DataplaneError> {
            Ok(self.state.lock().unwrap().clone())
        }

        async fn apply(&self, change: &Change) -> Result<(), DataplaneError> {
            self.calls.lock().unwrap().push(change.clone());
            if self.fail.lock().unwrap().contains(change) {
                return Err(DataplaneError::Injected(format!("{change:?}")));
            }
            let mut s = self.state.lock().unwrap();
            match change.clone() {
                Change::CreateVxlan(l) => {
                    s.vxlan = Some(LinkState {
                        index: 7,
                        vni: Some(l.vni),
                        port: Some(l.port),
                        local: Some(l.local.0),
                        underlay_index: Some(l.underlay_index),
                        learning: false,
                        mac: Some(l.mac),
                        mtu: l.mtu,
                        up: false,
                    })
                }
                Change::DeleteLink { name } if s.stale_links.remove(&name) => {
                    s.routes.retain(|_, r| r.dev != name);
                }
                Change::DeleteLink { name } => {
                    s.vxlan = None;
                    s.addresses.clear();
                    s.neighs.clear();
                    s.fdb.clear();
                    s.routes.retain(|_, r| r.dev != name);
                }
                Change::SetMtu { mtu, .. } => {
                    if let Some(l) = s.vxlan.as_mut() {
                        l.mtu = mtu
                    }
                }
                Change::SetUp { .. } => {
                    if let Some(l) = s.vxlan.as_mut() {
                        l.up = true
                    }
                }
                Change::AddAddress { addr, .. } => {
                    s.addresses.insert(addr);
                }
                Change::DelAddress { addr, .. } => {
                    s.addresses.remove(&addr);
                }
                Change::AddFdb(f) => {
                    s.fdb.insert((f.mac, f.dst));
                }
                Change::DelFdb(f) => {
                    s.fdb.remove(&(f.mac, f.dst));
                }
                Change::SetNeigh(n) => {
                    s.neighs.insert(n.ip, n.mac);
                }
                Change::DelNeigh(n) => {
                    s.neighs.remove(&n.ip);
                }
                Change::SetRoute(r) => {
                    s.routes.insert(r.dst, r);
                }
                Change::DelRoute(r) => {
                    s.routes.remove(&r.dst);
                }
            }
            Ok(())
        }
    }
}
