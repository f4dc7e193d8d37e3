//! The lease schema (`<prefix>/subnets/<a.b.c.d>-<len>` → JSON attributes),
//! the events a lease watch delivers and the store errors every subnet
//! manager reports. The etcd key-value side lives in `etcd/lease_store.rs`;
//! this module does no I/O.

use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};

use crate::subnet::config::ConfigError;
use crate::types::{NodeIp, VtepMac};

/// The value stored at a subnet key (flannel's field names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseAttrs {
    #[serde(rename = "PublicIP")]
    pub public_ip: NodeIp,
    #[serde(rename = "BackendType")]
    pub backend_type: String,
    #[serde(rename = "BackendData", default)]
    pub backend_data: BackendData,
    #[serde(rename = "NodeName", default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// Dual-stack: the node's IPv6 pod subnet (the key stays the IPv4 one,
    /// whose put-if-absent makes both unique: the v6 one is derived).
    #[serde(
        rename = "IPv6Subnet",
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_ipv6_net"
    )]
    pub ipv6_subnet: Option<Ipv6Network>,
    /// The VTEP that carries IPv6 (flannel's field); absent means the
    /// IPv4 one (`BackendData`) carries both families.
    #[serde(
        rename = "BackendV6Data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub backend_v6_data: Option<BackendData>,
}

/// `Option<Ipv6Network>` as its text form (the workspace builds ipnetwork
/// without its serde feature).
mod opt_ipv6_net {
    use ipnetwork::Ipv6Network;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Ipv6Network>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.collect_str(n),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv6Network>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| t.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendData {
    #[serde(rename = "VtepMAC", default, skip_serializing_if = "Option::is_none")]
    pub vtep_mac: Option<VtepMac>,
}

/// Store-side identity of a lease (an etcd lease ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaseId(pub i64);

/// One node's subnet lease as read from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub subnet: Ipv4Network,
    pub attrs: LeaseAttrs,
    pub id: LeaseId,
    pub mod_revision: i64,
}

/// Every lease at one store revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseList {
    pub leases: Vec<Lease>,
    pub revision: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseEvent {
    Put(Lease),
    /// Deleted or expired.
    Delete(Ipv4Network),
}

/// What a watch delivers: incremental events, or (after the watch fell
/// below the store's compaction) a fresh full list to diff against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    Events {
        events: Vec<LeaseEvent>,
        revision: i64,
    },
    Resync(LeaseList),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("etcd unavailable during {op}: {source}")]
    Unavailable {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("lease {key} holds a malformed value: {reason}")]
    BadLease { key: String, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_value_uses_the_documented_json() {
        let a = LeaseAttrs {
            public_ip: NodeIp("192.168.250.11".parse().unwrap()),
            backend_type: "vxlan".into(),
            backend_data: BackendData {
                vtep_mac: Some("02:00:00:00:00:01".parse().unwrap()),
            },
            node_name: "node-1".into(),
            ipv6_subnet: None,
            backend_v6_data: None,
        };
        let j = serde_json::to_string(&a).unwrap();
        assert_eq!(
            j,
            r#"{"PublicIP":"192.168.250.11","BackendType":"vxlan","BackendData":{"VtepMAC":"02:00:00:00:00:01"},"NodeName":"node-1"}"#
        );
        let back: LeaseAttrs = serde_json::from_str(&j).unwrap();
        assert_eq!(back, a);
        let dual = LeaseAttrs {
            ipv6_subnet: Some("fd00:10:244:1::/64".parse().unwrap()),
            backend_v6_data: Some(a.backend_data.clone()),
            ..a.clone()
        };
        let j = serde_json::to_string(&dual).unwrap();
        assert!(
            j.ends_with(r#""IPv6Subnet":"fd00:10:244:1::/64","BackendV6Data":{"VtepMAC":"02:00:00:00:00:01"}}"#),
            "{j}"
        );
        assert_eq!(serde_json::from_str::<LeaseAttrs>(&j).unwrap(), dual);
        let flannel: LeaseAttrs =
            serde_json::from_str(r#"{"PublicIP":"10.0.0.1","BackendType":"host-gw"}"#).unwrap();
        assert_eq!(flannel.backend_data, BackendData::default());
    }
}
