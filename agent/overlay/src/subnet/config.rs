//! The cluster network configuration (flannel's net-conf.json format),
//! stored in etcd at `<prefix>/config` or in a file in kube mode: parsing
//! and validation. Every key of flannel's file is accepted; the ones
//! Capstan does not use, and unknown ones, are warned about, not rejected.
//! Every error names the key or file it came from; this module never
//! reads etcd or files itself.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{Ipv4Network, Ipv6Network};

pub use crate::subnet::config_keys::Ignored;
use crate::subnet::config_keys::Keys;
use crate::types::Vni;

/// Default VXLAN UDP port (the Linux kernel's and flannel's).
pub const DEFAULT_VXLAN_PORT: u16 = 8472;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("network config {key} is missing: write it with `etcdctl put {key} '{{\"Network\":\"10.244.0.0/16\",\"SubnetLen\":24,\"Backend\":{{\"Type\":\"vxlan\"}}}}'`")]
    Missing { key: String },
    #[error("network config file {path} does not exist: mount the ConfigMap's net-conf.json there or pass --net-conf-file")]
    MissingFile { path: String },
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

/// The keys Capstan acts on, type-checked; the rest went to `ignored`.
struct RawConfig {
    network: Option<String>,
    subnet_len: Option<u8>,
    ipv6_network: Option<String>,
    ipv6_subnet_len: Option<u8>,
    enable_ipv4: Option<bool>,
    enable_ipv6: Option<bool>,
    backend: Option<RawBackend>,
}

struct RawBackend {
    kind: String,
    vni: Option<u32>,
    port: Option<u16>,
    direct_routing: Option<bool>,
}

impl RawConfig {
    /// Every key of flannel's `Config` (pkg/subnet/config.go) and its
    /// vxlan backend's options, with their types.
    fn take(v: serde_json::Value, ignored: &mut Vec<Ignored>) -> Result<RawConfig, String> {
        let mut k = Keys::of(v, "", "the network config")?;
        let raw = RawConfig {
            network: k.take("Network")?,
            subnet_len: k.take("SubnetLen")?,
            ipv6_network: k.take("IPv6Network")?,
            ipv6_subnet_len: k.take("IPv6SubnetLen")?,
            enable_ipv4: k.take("EnableIPv4")?,
            enable_ipv6: k.take("EnableIPv6")?,
            backend: k
                .take_value("Backend")
                .map(|b| RawBackend::take(b, ignored))
                .transpose()?,
        };
        // Subnet ranges: the control plane assigns podCIDRs in kube mode;
        // in etcd mode Capstan leases from the whole Network.
        k.unused::<Ipv4Addr>("SubnetMin", ignored)?;
        k.unused::<Ipv4Addr>("SubnetMax", ignored)?;
        k.unused::<Ipv6Addr>("IPv6SubnetMin", ignored)?;
        k.unused::<Ipv6Addr>("IPv6SubnetMax", ignored)?;
        // Capstan always programs nftables; multi-network is flannel's only.
        k.unused::<bool>("EnableNFTables", ignored)?;
        k.unused::<Vec<String>>("Networks", ignored)?;
        k.unused::<Vec<String>>("IPv6Networks", ignored)?;
        k.rest(ignored);
        Ok(raw)
    }
}

impl RawBackend {
    fn take(v: serde_json::Value, ignored: &mut Vec<Ignored>) -> Result<RawBackend, String> {
        let mut k = Keys::of(v, "Backend.", "Backend")?;
        let Some(kind) = k.take::<String>("Type")? else {
            return Err("Backend.Type is missing (\"vxlan\" or \"host-gw\")".into());
        };
        let vxlan = kind == "vxlan";
        let mut b = RawBackend {
            kind,
            vni: None,
            port: None,
            direct_routing: None,
        };
        if vxlan {
            b.vni = k.take("VNI")?;
            b.port = k.take("Port")?;
            b.direct_routing = k.take("DirectRouting")?;
        } else {
            k.unused::<u32>("VNI", ignored)?;
            k.unused::<u16>("Port", ignored)?;
            k.unused::<bool>("DirectRouting", ignored)?;
        }
        // The VXLAN device's MTU follows the underlay's; its MAC is random
        // and kept across restarts; no group policy or kernel learning.
        k.unused::<u32>("MTU", ignored)?;
        k.unused::<String>("MacPrefix", ignored)?;
        k.unused::<bool>("GBP", ignored)?;
        k.unused::<bool>("Learning", ignored)?;
        k.rest(ignored);
        Ok(b)
    }
}

impl NetworkConfig {
    /// The IPv6 subnet that goes with the IPv4 subnet `v4` (dual-stack only).
    pub fn ipv6_of(&self, v4: Ipv4Network) -> Option<Ipv6Network> {
        let n6 = self.ipv6_network?;
        crate::subnet::arith::ipv6_for(self.network, v4, n6, self.ipv6_subnet_len)
    }

    /// Parses the JSON value found at `key`, logging one warning per key
    /// it ignores (flannel's keys Capstan does not use, unknown keys).
    pub fn parse(key: &str, bytes: &[u8]) -> Result<Self, ConfigError> {
        let (cfg, ignored) = Self::parse_quiet(key, bytes)?;
        for i in &ignored {
            tracing::warn!(config = key, key = %i.key, "network config key ignored: {}", i.why);
        }
        Ok(cfg)
    }

    /// As `parse`, returning the ignored keys instead of logging them.
    pub fn parse_quiet(key: &str, bytes: &[u8]) -> Result<(Self, Vec<Ignored>), ConfigError> {
        let bad = |reason: String| ConfigError::Malformed {
            key: key.to_string(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let mut ignored = Vec::new();
        let raw = RawConfig::take(value, &mut ignored).map_err(bad)?;
        let cfg = Self::validate(raw).map_err(bad)?;
        Ok((cfg, ignored))
    }

    fn validate(raw: RawConfig) -> Result<Self, String> {
        if raw.enable_ipv4 == Some(false) {
            return Err(
                "EnableIPv4 false (an IPv6-only network) is not supported: Capstan's pod network is IPv4 or dual-stack".into(),
            );
        }
        let Some(network) = raw.network else {
            return Err("Network is missing (like \"10.244.0.0/16\")".into());
        };
        let network: Ipv4Network = network
            .parse()
            .map_err(|e| format!("Network {network:?}: {e}"))?;
        if network.network() != network.ip() {
            return Err(format!(
                "Network {network} has host bits set (did you mean {}/{}?)",
                network.network(),
                network.prefix()
            ));
        }
        let subnet_len = raw.subnet_len.unwrap_or(24);
        if subnet_len <= network.prefix() || subnet_len > 30 {
            return Err(format!(
                "SubnetLen {subnet_len} must be longer than the Network prefix /{} and at most 30",
                network.prefix()
            ));
        }
        if raw.enable_ipv6 == Some(true) && raw.ipv6_network.is_none() {
            return Err("EnableIPv6 is true but IPv6Network is missing".into());
        }
        // flannel uses IPv6Network only with EnableIPv6; Capstan also when
        // EnableIPv6 is absent (its configs before flannel's key), not when
        // it is false.
        let ipv6_network = raw
            .ipv6_network
            .filter(|_| raw.enable_ipv6 != Some(false))
            .map(|s| {
                s.parse::<Ipv6Network>()
                    .map_err(|e| format!("IPv6Network {s:?}: {e}"))
            })
            .transpose()?;
        let ipv6_subnet_len = raw.ipv6_subnet_len.unwrap_or(DEFAULT_IPV6_SUBNET_LEN);
        if let Some(n6) = ipv6_network {
            if n6.network() != n6.ip() {
                return Err(format!(
                    "IPv6Network {n6} has host bits set (did you mean {}/{}?)",
                    n6.network(),
                    n6.prefix()
                ));
            }
            // The CNI plugin needs room for a gateway and pods.
            if ipv6_subnet_len <= n6.prefix() || ipv6_subnet_len > 126 {
                return Err(format!(
                    "IPv6SubnetLen {ipv6_subnet_len} must be longer than the IPv6Network prefix /{} and at most 126",
                    n6.prefix()
                ));
            }
            // A node's IPv6 subnet is derived from its IPv4 one (same index),
            // so there must be at least as many of them.
            if ipv6_subnet_len - n6.prefix() < subnet_len - network.prefix() {
                return Err(format!(
                    "IPv6Network {n6} holds fewer /{ipv6_subnet_len} subnets than Network {network} holds /{subnet_len} subnets"
                ));
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
                        return Err(format!("Backend.VNI {vni} must be 1..16777215"));
                    }
                    let port = b.port.unwrap_or(DEFAULT_VXLAN_PORT);
                    if port == 0 {
                        return Err("Backend.Port must not be 0".into());
                    }
                    Backend::Vxlan {
                        vni: Vni(vni),
                        port,
                        direct_routing: b.direct_routing.unwrap_or(false),
                    }
                }
                "host-gw" => Backend::HostGw,
                other => {
                    return Err(format!(
                        "Backend.Type {other:?} is not supported (use \"vxlan\" or \"host-gw\")"
                    ))
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
            (br#"{"SubnetLen":24}"#, "Network is missing"),
            (
                br#"{"Network":"10.244.0.0/16","SubnetLen":"24"}"#,
                "SubnetLen \"24\"",
            ),
            (br#"{"Network":24}"#, "Network 24"),
            (br#"[1,2]"#, "must be a JSON object"),
            (
                br#"{"Network":"10.244.0.0/16","Backend":"vxlan"}"#,
                "Backend must be a JSON object",
            ),
            (
                br#"{"Network":"10.244.0.0/16","Backend":{"VNI":1}}"#,
                "Backend.Type is missing",
            ),
            (
                br#"{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Port":70000}}"#,
                "Backend.Port 70000",
            ),
            (
                br#"{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","MTU":"big"}}"#,
                "Backend.MTU",
            ),
            (
                br#"{"Network":"10.244.0.0/16","SubnetMin":"10.244.300.0"}"#,
                "SubnetMin",
            ),
            (
                br#"{"Network":"10.244.0.0/16","EnableNFTables":"yes"}"#,
                "EnableNFTables",
            ),
            (
                br#"{"Network":"10.244.0.0/16","EnableIPv4":false}"#,
                "EnableIPv4",
            ),
            (
                br#"{"Network":"10.244.0.0/16","EnableIPv6":true}"#,
                "EnableIPv6",
            ),
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

    /// flannel's kube-flannel.yml net-conf.json and every key its Config
    /// and vxlan backend know: accepted, the unused ones reported by name.
    #[test]
    fn accepts_every_flannel_key_and_names_the_unused_ones() {
        let (c, ignored) = NetworkConfig::parse_quiet(
            KEY,
            br#"{
              "EnableIPv4": true, "EnableIPv6": true, "EnableNFTables": false,
              "Network": "10.244.0.0/16", "SubnetLen": 24,
              "SubnetMin": "10.244.10.0", "SubnetMax": "10.244.200.0",
              "IPv6Network": "fd00:10:244::/56", "IPv6SubnetLen": 64,
              "IPv6SubnetMin": "fd00:10:244:1::", "IPv6SubnetMax": "fd00:10:244:ff::",
              "Networks": [], "IPv6Networks": [],
              "Backend": {"Type": "vxlan", "VNI": 4096, "Port": 4789, "MTU": 1400,
                          "DirectRouting": true, "GBP": false, "Learning": false,
                          "MacPrefix": "0E:2A", "Future": 1},
              "Extra": "x"
            }"#,
        )
        .unwrap();
        assert_eq!(
            c.backend,
            Backend::Vxlan {
                vni: Vni(4096),
                port: 4789,
                direct_routing: true
            }
        );
        assert_eq!(c.ipv6_network, Some("fd00:10:244::/56".parse().unwrap()));
        let keys: Vec<&str> = ignored.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "Backend.MTU",
                "Backend.MacPrefix",
                "Backend.GBP",
                "Backend.Learning",
                "Backend.Future",
                "SubnetMin",
                "SubnetMax",
                "IPv6SubnetMin",
                "IPv6SubnetMax",
                "EnableNFTables",
                "Networks",
                "IPv6Networks",
                "Extra",
            ]
        );
        assert_eq!(ignored[4].why, crate::subnet::config_keys::UNKNOWN);
        assert_eq!(ignored[0].why, crate::subnet::config_keys::UNUSED);
        // kube-flannel.yml's net-conf.json: one warning, for EnableNFTables.
        let (_, none) = NetworkConfig::parse_quiet(
            KEY,
            br#"{"Network":"10.244.0.0/16","EnableNFTables":false,"Backend":{"Type":"vxlan"}}"#,
        )
        .unwrap();
        assert_eq!(none.len(), 1, "{none:?}");
    }

    #[test]
    fn ipv6_follows_enable_ipv6_and_host_gw_ignores_vxlan_options() {
        // EnableIPv6 false: IPv6Network is flannel's to ignore, and so ours.
        let (c, _) = NetworkConfig::parse_quiet(
            KEY,
            br#"{"Network":"10.1.0.0/16","EnableIPv6":false,"IPv6Network":"fd00::/56"}"#,
        )
        .unwrap();
        assert_eq!(c.ipv6_network, None);
        let (c, ignored) = NetworkConfig::parse_quiet(
            KEY,
            br#"{"Network":"10.1.0.0/16","Backend":{"Type":"host-gw","VNI":3,"DirectRouting":true}}"#,
        )
        .unwrap();
        assert_eq!(c.backend, Backend::HostGw);
        let keys: Vec<&str> = ignored.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["Backend.VNI", "Backend.DirectRouting"]);
    }
}
