//! Change trackers: event handlers only record here. For each service
//! touched since the last sync the tracker keeps the desired state it had
//! then ({previous}) and derives {current} at drain time; services whose
//! state came back to where it was drop out. It must never program anything.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::endpoints::SERVICE_NAME_LABEL;
use crate::model::{
    endpoints_from_slices, service_ports, Endpoint, Protocol, ServiceKey, ServicePortInfo,
    ServicePortName,
};

/// Everything the dataplane needs about one Service: its ports with their
/// endpoints. Empty when the service is gone (or has nothing to program).
pub type ServiceState = BTreeMap<ServicePortName, (ServicePortInfo, Vec<Endpoint>)>;

/// One EndpointSlice's endpoints by (port name, protocol).
type SliceEndpoints = BTreeMap<(String, Protocol), Vec<Endpoint>>;

/// Keeps the model derived from each object, not the object: a Service or
/// an EndpointSlice as k8s-openapi holds it is several times larger, and at
/// 10,000 services that was most of the proxy's memory.
#[derive(Default)]
pub struct Tracker {
    services: HashMap<ServiceKey, Vec<(ServicePortName, ServicePortInfo)>>,
    slices: HashMap<ServiceKey, BTreeMap<String, SliceEndpoints>>,
    /// {previous} per service changed since the last drain.
    pending: HashMap<ServiceKey, ServiceState>,
}

fn key_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    name: &str,
) -> ServiceKey {
    ServiceKey::new(meta.namespace.as_deref().unwrap_or("default"), name)
}

fn slice_service(slice: &EndpointSlice) -> Option<(ServiceKey, String)> {
    let svc = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    let name = slice.metadata.name.clone()?;
    Some((key_of(&slice.metadata, svc), name))
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    fn touch(&mut self, key: &ServiceKey) {
        if !self.pending.contains_key(key) {
            let previous = self.state(key);
            self.pending.insert(key.clone(), previous);
        }
    }

    pub fn service_applied(&mut self, svc: Service) {
        let Some(name) = svc.metadata.name.clone() else {
            return;
        };
        let key = key_of(&svc.metadata, &name);
        self.touch(&key);
        self.services.insert(key, service_ports(&svc));
    }

    pub fn service_deleted(&mut self, svc: &Service) {
        let Some(name) = svc.metadata.name.as_deref() else {
            return;
        };
        let key = key_of(&svc.metadata, name);
        self.touch(&key);
        self.services.remove(&key);
    }

    pub fn slice_applied(&mut self, slice: EndpointSlice) {
        let Some((key, name)) = slice_service(&slice) else {
            return;
        };
        self.touch(&key);
        let eps = endpoints_from_slices(std::iter::once(&slice));
        self.slices.entry(key).or_default().insert(name, eps);
    }

    pub fn slice_deleted(&mut self, slice: &EndpointSlice) {
        let Some((key, name)) = slice_service(slice) else {
            return;
        };
        self.touch(&key);
        if let Some(m) = self.slices.get_mut(&key) {
            m.remove(&name);
            if m.is_empty() {
                self.slices.remove(&key);
            }
        }
    }

    /// A re-list of every Service: applies them and deletes the ones the
    /// list no longer holds (a watch that restarted missed their deletes).
    pub fn replace_services(&mut self, list: Vec<Service>) {
        let keep: std::collections::HashSet<ServiceKey> = list
            .iter()
            .filter_map(|s| Some(key_of(&s.metadata, s.metadata.name.as_deref()?)))
            .collect();
        let gone: Vec<ServiceKey> = self
            .services
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.touch(&key);
            self.services.remove(&key);
        }
        for s in list {
            self.service_applied(s);
        }
    }

    /// A re-list of every EndpointSlice (see `replace_services`).
    pub fn replace_slices(&mut self, list: Vec<EndpointSlice>) {
        let keep: std::collections::HashSet<(ServiceKey, String)> =
            list.iter().filter_map(slice_service).collect();
        let mut gone = Vec::new();
        for (key, slices) in &self.slices {
            for name in slices.keys() {
                if !keep.contains(&(key.clone(), name.clone())) {
                    gone.push((key.clone(), name.clone()));
                }
            }
        }
        for (key, name) in gone {
            self.touch(&key);
            if let Some(m) = self.slices.get_mut(&key) {
                m.remove(&name);
                if m.is_empty() {
                    self.slices.remove(&key);
                }
            }
        }
        for s in list {
            self.slice_applied(s);
        }
    }

    /// The desired state of one service from the objects seen so far.
    pub fn state(&self, key: &ServiceKey) -> ServiceState {
        let Some(ports) = self.services.get(key) else {
            return ServiceState::new();
        };
        let slices = self.slices.get(key);
        ports
            .iter()
            .map(|(name, info)| {
                let port = (name.port_name.clone(), name.protocol);
                let mut list: Vec<Endpoint> = slices
                    .into_iter()
                    .flat_map(|m| m.values())
                    .filter_map(|eps| eps.get(&port))
                    .flatten()
                    .cloned()
                    .collect();
                // The same endpoint listed by two slices (e.g. while one
                // replaces the other) counts once, as endpoints_from_slices
                // does within one slice.
                list.sort();
                list.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
                (name.clone(), (info.clone(), list))
            })
            .collect()
    }

    /// Every service the tracker knows (for a full sync).
    pub fn all(&self) -> BTreeMap<ServiceKey, ServiceState> {
        self.services
            .keys()
            .map(|k| (k.clone(), self.state(k)))
            .collect()
    }

    /// The services whose desired state differs from what it was at the
    /// last drain, with {previous, current}; clears the record.
    pub fn drain(&mut self) -> Vec<(ServiceKey, ServiceState, ServiceState)> {
        let pending = std::mem::take(&mut self.pending);
        let mut out: Vec<_> = pending
            .into_iter()
            .filter_map(|(key, previous)| {
                let current = self.state(&key);
                (current != previous).then_some((key, previous, current))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint as SliceEndpoint, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub(crate) fn svc(name: &str, ip: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(vec![ServicePort {
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    pub(crate) fn slice(svc: &str, name: &str, ips: &[&str]) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), svc.to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: ips
                .iter()
                .map(|ip| SliceEndpoint {
                    addresses: vec![ip.to_string()],
                    ..Default::default()
                })
                .collect(),
            ports: Some(vec![EndpointPort {
                port: Some(8080),
                ..Default::default()
            }]),
        }
    }

    #[test]
    fn records_previous_and_current() {
        let mut t = Tracker::new();
        t.service_applied(svc("a", "10.96.0.1"));
        t.slice_applied(slice("a", "a-1", &["10.0.0.1"]));
        let changes = t.drain();
        assert_eq!(changes.len(), 1);
        let (key, prev, cur) = &changes[0];
        assert_eq!(key.to_string(), "ns/a");
        assert!(prev.is_empty());
        let (_, eps) = cur.values().next().unwrap();
        assert_eq!(eps.len(), 1);
        assert!(t.drain().is_empty());
    }

    #[test]
    fn change_and_revert_between_syncs_is_no_change() {
        let mut t = Tracker::new();
        t.service_applied(svc("a", "10.96.0.1"));
        t.drain();
        t.slice_applied(slice("a", "a-1", &["10.0.0.1"]));
        t.slice_deleted(&slice("a", "a-1", &[]));
        assert!(t.drain().is_empty());
    }

    #[test]
    fn relist_deletes_what_is_gone() {
        let mut t = Tracker::new();
        t.service_applied(svc("a", "10.96.0.1"));
        t.service_applied(svc("b", "10.96.0.2"));
        t.slice_applied(slice("a", "a-1", &["10.0.0.1"]));
        t.slice_applied(slice("a", "a-2", &["10.0.0.2"]));
        t.drain();
        t.replace_services(vec![svc("a", "10.96.0.1")]);
        t.replace_slices(vec![slice("a", "a-1", &["10.0.0.1"])]);
        let changes = t.drain();
        assert_eq!(changes.len(), 2);
        assert!(changes
            .iter()
            .any(|(k, _, cur)| k.name == "b" && cur.is_empty()));
        let a = &changes.iter().find(|(k, _, _)| k.name == "a").unwrap().2;
        assert_eq!(a.values().next().unwrap().1.len(), 1);
    }

    #[test]
    fn slice_before_service_and_delete() {
        let mut t = Tracker::new();
        t.slice_applied(slice("b", "b-1", &["10.0.0.9"]));
        assert!(
            t.drain().is_empty(),
            "endpoints without a service program nothing"
        );
        t.service_applied(svc("b", "10.96.0.2"));
        assert_eq!(t.drain().len(), 1);
        t.service_deleted(&svc("b", "10.96.0.2"));
        let changes = t.drain();
        assert!(changes[0].2.is_empty());
    }
}
