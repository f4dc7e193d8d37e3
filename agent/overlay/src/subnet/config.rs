//! The cluster network configuration stored in etcd at `<prefix>/config`:
//! parsing and validation. Every error names the key it came from; this
//! module never talks to etcd itself.

use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::Deserialize;

use crate::types::Vni;

/// Default VXLAN UDP port (the Linux kernel's and flannel's).
pub const DEFAULT_VXLAN_PORT: u16 = 8472;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("network config {key} is missing: write it with `etcdctl put {key} '{{\"Network\":\"10.244.0.0/16\",\"SubnetLen\":24,\"Backend\":{{\"Type\":\"vxlan\"}}}}'`")]
    Missing { key: String },
    #[error("network config {key} is malformed: {reason}")]
    Malformed { key: String, reason: String },
}

/// Which dataplane carries traffic between nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// VXLAN tunnels; with `direct_routing`, plain routes to peers on the
    /// same underlay subnet.
    Vxlan {
        vni: Vni,
        port: u16,
        direct_routing: bool,
    },
    /// Plain routes via each peer's underlay IP (nodes must share a link).
    HostGw,
}

impl Backend {
    pub fn type_name(&self) -> &'static str {
        match self {
            Backend::Vxlan { .. } => "vxlan",
            Backend::HostGw => "host-gw",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    pub network: Ipv4Network,
    pub subnet_len: u8,
    /// Dual-stack: every node also gets a subnet of this network.
    pub ipv6_network: Option<Ipv6Network>,
    /// Length of each node's IPv6 subnet (default 64).
    pub ipv6_subnet_len: u8,
    pub backend: Backend,
}

/// Default IPv6 subnet length per node.
pub const DEFAULT_IPV6_SUBNET_LEN: u8 = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "Network")]
    network: String,
    #[serde(rename = "SubnetLen")]
    subnet_len: Option<u8>,
    #[serde(rename = "IPv6Network")]
    ipv6_network: Option<String>,
    #[serde(rename = "Backend")]
    backend: Option<RawBackend>,
    // Accepted for flannel compatibility, not used.
    #[serde(rename = "SubnetMin")]
    _subnet_min: Option<String>,
    #[serde(rename = "SubnetMax")]
    _subnet_max: Option<String>,
    #[serde(rename = "EnableIPv4")]
    _enable_ipv4: Option<bool>,
    #[serde(rename = "EnableIPv6")]
    _enable_ipv6: Option<bool>,
    #[serde(rename = "IPv6SubnetLen")]
    ipv6_subnet_len: Option<u8>,
}

#[derive(Deserialize)]
struct RawBackend {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "VNI")]
    vni: Option<u32>,
    #[serde(rename = "Port")]
    port: Option<u16>,
    #[serde(rename = "DirectRouting", default)]
    direct_routing: bool,
}

impl NetworkConfig {
    /// The IPv6 subnet that goes with the IPv4 subnet `v4` (dual-stack only).
    pub fn ipv6_of(&self, v4: Ipv4Network) -> Option<Ipv6Network> {
        let n6 = self.ipv6_network?;
        crate::subnet::arith::ipv6_for(self.network, v4, n6, self.ipv6_subnet_len)
    }

    /// Parses the JSON value found at `key`.
    pub fn parse(key: &str, bytes: &[u8]) -> Result<Self, ConfigError> {
        let bad = |reason: String| ConfigError::Malformed {
            key: key.to_string(),
            reason,
        };
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let network: Ipv4Network = raw
            .network
            .parse()
            .map_err(|e| bad(format!("Network {:?}: {e}", raw.network)))?;
        if network.network() != network.ip() {
            return Err(bad(format!(
                "Network {network} has host bits set (did you mean {}/{}?)",
                network.network(),
                network.prefix()
            )));
        }
        let subnet_len = raw.subnet_len.unwrap_or(24);
        if subnet_len <= network.prefix() || subnet_len > 30 {
            return Err(bad(format!(
                "SubnetLen {subnet_len} must be longer than the Network prefix /{} and at most 30",
                network.prefix()
            )));
        }
        let ipv6_network = raw
            .ipv6_network
            .map(|s| {
                s.parse::<Ipv6Network>()
                    .map_err(|e| bad(format!("IPv6Network {s:?}: {e}")))
            })
            .transpose()?;
        let ipv6_subnet_len = raw.ipv6_subnet_len.unwrap_or(DEFAULT_IPV6_SUBNET_LEN);
        if let Some(n6) = ipv6_network {
            if n6.network() != n6.ip() {
                return Err(bad(format!(
                    "IPv6Network {n6} has host bits set (did you mean {}/{}?)",
                    n6.network(),
                    n6.prefix()
                )));
            }
            // The CNI plugin needs room for a gateway and pods.
            if ipv6_subnet_len <= n6.prefix() || ipv6_subnet_len > 126 {
                return Err(bad(format!(
                    "IPv6SubnetLen {ipv6_subnet_len} must be longer than the IPv6Network prefix /{} and at most 126",
                    n6.prefix()
                )));
            }
            // A node's IPv6 subnet is derived from its IPv4 one (same index),
            // so there must be at least as many of them.
            if ipv6_subnet_len - n6.prefix() < subnet_len - network.prefix() {
                return Err(bad(format!(
                    "IPv6Network {n6} holds fewer /{ipv6_subnet_len} subnets than Network {network} holds /{subnet_len} subnets"
                )));
            }
        }
        let backend = match raw.backend {
            None => Backend::Vxlan {
                vni: Vni(1),
                port: DEFAULT_VXLAN_PORT,
                direct_routing: false,
            },
            Some(b) => match b.kind.as_str() {
                "vxlan" => {
                    let vni = b.vni.unwrap_or(1);
                    if vni == 0 || vni >= 1 << 24 {
                        return Err(bad(format!("Backend.VNI {vni} must be 1..16777215")));
                    }
                    let port = b.port.unwrap_or(DEFAULT_VXLAN_PORT);
                    if port == 0 {
                        return Err(bad("Backend.Port must not be 0".into()));
                    }
                    Backend::Vxlan {
                        vni: Vni(vni),
                        port,
                        direct_routing: b.direct_routing,
                    }
                }
                "host-gw" => Backend::HostGw,
                other => {
                    return Err(bad(format!(
                        "Backend.Type {other:?} is not supported (use \"vxlan\" or \"host-gw\")"
                    )))
                }
            },
        };
        Ok(NetworkConfig {
            network,
            subnet_len,
            ipv6_network,
            ipv6_subnet_len,
            backend,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "/capstan/network/config";

    #[test]
    fn parses_the_documented_example() {
        let c = NetworkConfig::parse(
            KEY,
            br#"{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1,"Port":8472,"DirectRouting":false}}"#,
        )
        .unwrap();
        assert_eq!(c.network, "10.244.0.0/16".parse().unwrap());
        assert_eq!(c.subnet_len, 24);
        assert_eq!(
            c.backend,
            Backend::Vxlan {
                vni: Vni(1),
                port: 8472,
                direct_routing: false
            }
        );
        assert_eq!(c.ipv6_network, None);
    }

    #[test]
    fn defaults_and_host_gw_and_ipv6() {
        let c = NetworkConfig::parse(
            KEY,
            br#"{"Network":"10.1.0.0/16","IPv6Network":"fd00::/56","Backend":{"Type":"host-gw"}}"#,
        )
        .unwrap();
        assert_eq!(c.subnet_len, 24);
        assert_eq!(c.backend, Backend::HostGw);
        assert!(c.ipv6_network.is_some());
        assert_eq!(c.ipv6_subnet_len, 64);
        let c = NetworkConfig::parse(
            KEY,
            br#"{"Network":"10.1.0.0/16","IPv6Network":"fd00:10:1::/48","IPv6SubnetLen":80}"#,
        )
        .unwrap();
        assert_eq!(c.ipv6_subnet_len, 80);
        let c = NetworkConfig::parse(KEY, br#"{"Network":"10.1.0.0/16"}"#).unwrap();
        assert_eq!(c.backend.type_name(), "vxlan");
    }

    #[test]
    fn errors_name_the_key_and_the_problem() {
        for (input, needle) in [
            (&b"not json"[..], "not valid JSON"),
            (br#"{"Network":"10.244.0.0/33"}"#, "Network"),
            (br#"{"Network":"10.244.1.0/16"}"#, "host bits"),
            (
                br#"{"Network":"10.244.0.0/16","SubnetLen":16}"#,
                "SubnetLen",
            ),
            (
                br#"{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}"#,
                "Backend.Type",
            ),
            (
                br#"{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":0}}"#,
                "VNI",
            ),
            (br#"{"SubnetLen":24}"#, "Network"),
            (br#"{"Network":"10.244.0.0/16","Bogus":1}"#, "Bogus"),
            (
                br#"{"Network":"10.244.0.0/16","IPv6Network":"fd00::1/56"}"#,
                "IPv6Network",
            ),
            (
                br#"{"Network":"10.244.0.0/16","IPv6Network":"fd00::/56","IPv6SubnetLen":127}"#,
                "IPv6SubnetLen",
            ),
            (
                br#"{"Network":"10.244.0.0/16","IPv6Network":"fd00::/60"}"#,
                "fewer /64 subnets",
            ),
        ] {
            let e = NetworkConfig::parse(KEY, input).unwrap_err().to_string();
            assert!(e.contains(KEY), "{e}");
            assert!(e.contains(needle), "{e} should mention {needle}");
        }
    }
}
