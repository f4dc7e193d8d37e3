//! The kinds the garbage collector watches, and which of them own
//! dependents it collects: the API server gives only those the
//! orphan/foreground finalizers. Plain data; no API client, no storage.

/// A kind the collector sees.
#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    /// Whether dependents of this kind's objects are collected, and so
    /// whether the API server gives it the orphan/foreground finalizers.
    pub owner: bool,
}

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn k(group: &'static str, kind: &'static str, plural: &'static str, owner: bool) -> Kind {
    Kind {
        group,
        version: "v1",
        kind,
        plural,
        owner,
    }
}

pub const POD: Kind = k("", "Pod", "pods", false);
pub const REPLICA_SET: Kind = k("apps", "ReplicaSet", "replicasets", true);
pub const DEPLOYMENT: Kind = k("apps", "Deployment", "deployments", true);
pub const DAEMON_SET: Kind = k("apps", "DaemonSet", "daemonsets", true);
pub const REPLICATION_CONTROLLER: Kind =
    k("", "ReplicationController", "replicationcontrollers", true);
pub const SERVICE: Kind = k("", "Service", "services", true);
pub const ENDPOINT_SLICE: Kind = k("discovery.k8s.io", "EndpointSlice", "endpointslices", false);

/// The kinds whose objects own dependents the collector handles.
pub const OWNERS: &[&Kind] = &[
    &REPLICA_SET,
    &DEPLOYMENT,
    &DAEMON_SET,
    &REPLICATION_CONTROLLER,
    &SERVICE,
];

/// Whether the collector handles dependents of this kind's objects.
pub fn tracks_owner(api_version: &str, kind: &str) -> bool {
    OWNERS
        .iter()
        .any(|k| k.kind == kind && k.api_version() == api_version)
}
