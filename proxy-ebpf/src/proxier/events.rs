//! What a source (a kube watcher, a test) feeds the proxy.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::Proxy;

/// Events a source (a kube watcher, a test) feeds in.
#[derive(Debug, Clone)]
pub enum ProxyEvent {
    ServiceApplied(Service),
    ServiceDeleted(Service),
    SliceApplied(EndpointSlice),
    SliceDeleted(EndpointSlice),
    /// A complete re-list of Services (deletes the ones not in it).
    ServicesReplaced(Vec<Service>),
    /// A complete re-list of EndpointSlices.
    SlicesReplaced(Vec<EndpointSlice>),
    /// The source has delivered its initial list: syncing may start.
    InitDone,
}

impl Proxy {
    pub fn handle(&mut self, ev: ProxyEvent) {
        match ev {
            ProxyEvent::ServiceApplied(s) => self.tracker.service_applied(s),
            ProxyEvent::ServiceDeleted(s) => self.tracker.service_deleted(&s),
            ProxyEvent::SliceApplied(s) => self.tracker.slice_applied(s),
            ProxyEvent::SliceDeleted(s) => self.tracker.slice_deleted(&s),
            ProxyEvent::ServicesReplaced(l) => self.tracker.replace_services(l),
            ProxyEvent::SlicesReplaced(l) => self.tracker.replace_slices(l),
            ProxyEvent::InitDone => self.ready = true,
        }
    }

    /// Whether the initial state is known (nothing is written before: a
    /// restarted agent leaves the old rules in place until then).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    pub fn has_pending(&self) -> bool {
        self.tracker.has_pending()
    }
}
