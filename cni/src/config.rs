//! The capstan network config keys and their resolution, with the subnet
//! file, into one `Network` the plugin acts on. Pure apart from reading the
//! subnet file; must never touch the kernel or the IPAM store.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::subnet_file::{GatewayPrefix, SubnetFile};

pub const DEFAULT_SUBNET_FILE: &str = "/run/capstan/subnet.env";
pub const DEFAULT_BRIDGE: &str = "capstan0";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
pub const DEFAULT_MTU: u32 = 1500;

/// `subnet` is one gateway/prefix or a list (one per family).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Keys {
    subnet_file: Option<PathBuf>,
    subnet: Option<OneOrMany>,
    bridge: Option<String>,
    mtu: Option<u32>,
    data_dir: Option<PathBuf>,
    ip_masq: Option<bool>,
    hairpin_mode: Option<bool>,
    is_default_gateway: Option<bool>,
    log_file: Option<PathBuf>,
    log_level: Option<String>,
}

/// The config as written, before the subnet file is read.
#[derive(Clone, Debug)]
pub struct PluginConfig {
    pub name: String,
    pub subnet_file: PathBuf,
    pub inline_subnets: Vec<GatewayPrefix>,
    pub bridge: String,
    pub mtu: Option<u32>,
    pub data_dir: PathBuf,
    pub ip_masq: Option<bool>,
    pub hairpin_mode: bool,
    pub is_default_gateway: bool,
    pub log_file: Option<PathBuf>,
    pub log_level: Option<String>,
}

/// One address family the pod gets an address in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family {
    /// Gateway (the bridge's address) with the subnet's prefix.
    pub gateway: GatewayPrefix,
    /// The whole cluster network, when known (for the non-default route).
    pub cluster: Option<IpNetwork>,
}

impl Family {
    pub fn gateway_ip(&self) -> IpAddr {
        self.gateway.gateway()
    }
}

/// Everything ADD needs to know about the network, resolved.
#[derive(Clone, Debug)]
pub struct Network {
    pub families: Vec<Family>,
    pub mtu: u32,
    pub ip_masq: bool,
}

impl PluginConfig {
    pub fn from_json(raw: &Value, name: &str) -> Result<Self> {
        let keys: Keys =
            serde_json::from_value(raw.clone()).map_err(|e| Error::Config(e.to_string()))?;
        let inline = match keys.subnet {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => vec![s],
            Some(OneOrMany::Many(v)) => v,
        };
        let inline_subnets = inline
            .iter()
            .map(|s| {
                s.parse::<IpNetwork>().map(GatewayPrefix).map_err(|e| {
                    Error::Config(format!(
                        "\"subnet\": {s:?} is not gateway/prefix like 10.244.1.1/24: {e}"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for s in &inline_subnets {
            validate_gateway(*s)?;
        }
        let bridge = keys.bridge.unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
        if bridge.is_empty() || bridge.len() > 15 || bridge.contains(['/', ':', ' ']) {
            return Err(Error::Config(format!(
                "\"bridge\": {bridge:?} is not a valid interface name"
            )));
        }
        if let Some(mtu) = keys.mtu {
            if !(576..=65535).contains(&mtu) {
                return Err(Error::Config(format!(
                    "\"mtu\": {mtu} is outside 576..65535"
                )));
            }
        }
        if name.is_empty() || name.contains('/') {
            return Err(Error::Config(format!(
                "\"name\": {name:?} must be non-empty and without '/'"
            )));
        }
        Ok(PluginConfig {
            name: name.to_string(),
            subnet_file: keys
                .subnet_file
                .unwrap_or_else(|| DEFAULT_SUBNET_FILE.into()),
            inline_subnets,
            bridge,
            mtu: keys.mtu,
            data_dir: keys
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR).join(name)),
            ip_masq: keys.ip_masq,
            hairpin_mode: keys.hairpin_mode.unwrap_or(false),
            is_default_gateway: keys.is_default_gateway.unwrap_or(true),
            log_file: keys.log_file,
            log_level: keys.log_level,
        })
    }

    /// Where DEL finds the IPAM store. DEL must not fail because the config
    /// was edited into something invalid since ADD, so only `dataDir` is
    /// read, leniently.
    pub fn cleanup_data_dir(raw: &Value, name: &str) -> PathBuf {
        match Self::from_json(raw, name) {
            Ok(c) => c.data_dir,
            Err(e) => {
                tracing::warn!(error = %e, "config invalid; cleaning up with its dataDir only");
                raw.get("dataDir")
                    .and_then(Value::as_str)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR).join(name))
            }
        }
    }

    /// Inline `subnet` wins; otherwise the subnet file decides.
    pub fn resolve(&self) -> Result<Network> {
        if !self.inline_subnets.is_empty() {
            let families = self
                .inline_subnets
                .iter()
                .map(|g| Family {
                    gateway: *g,
                    cluster: None,
                })
                .collect();
            return Ok(Network {
                families,
                mtu: self.mtu.unwrap_or(DEFAULT_MTU),
                ip_masq: self.ip_masq.unwrap_or(false),
            });
        }
        let file = SubnetFile::read(&self.subnet_file)?;
        let mut families = Vec::new();
        if let Some(g) = file.subnet {
            validate_gateway(g)?;
            families.push(Family {
                gateway: g,
                cluster: file.network,
            });
        }
        if let Some(g) = file.ipv6_subnet {
            validate_gateway(g)?;
            families.push(Family {
                gateway: g,
                cluster: file.ipv6_network,
            });
        }
        Ok(Network {
            families,
            mtu: self.mtu.or(file.mtu).unwrap_or(DEFAULT_MTU),
            ip_masq: self.ip_masq.unwrap_or(false),
        })
    }
}

/// The gateway must be a host address inside its subnet with room for pods.
fn validate_gateway(g: GatewayPrefix) -> Result<()> {
    let max = if g.0.is_ipv4() { 30 } else { 126 };
    if g.prefix() > max {
        return Err(Error::Config(format!(
            "subnet {} is too small for pods (prefix longer than /{max})",
            g.0
        )));
    }
    let subnet = g.subnet();
    if g.gateway() == subnet.network()
        || matches!(subnet, IpNetwork::V4(n) if IpAddr::V4(n.broadcast()) == g.gateway())
    {
        return Err(Error::Config(format!(
            "subnet {} must name the gateway address (e.g. {}/{} with the .1 host), not the network or broadcast address",
            g.0,
            subnet.network(),
            g.prefix()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_issue() {
        let raw = serde_json::json!({"cniVersion":"1.1.0","name":"podnet","type":"capstan"});
        let c = PluginConfig::from_json(&raw, "podnet").expect("valid");
        assert_eq!(c.bridge, "capstan0");
        assert_eq!(c.subnet_file, PathBuf::from("/run/capstan/subnet.env"));
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/cni/networks/podnet"));
        assert!(c.is_default_gateway);
    }

    #[test]
    fn inline_subnet_wins_and_validates() {
        let raw =
            serde_json::json!({"subnet": "10.9.0.1/24", "mtu": 1400, "subnetFile": "/nonexistent"});
        let n = PluginConfig::from_json(&raw, "n")
            .and_then(|c| c.resolve())
            .expect("valid");
        assert_eq!(n.mtu, 1400);
        assert_eq!(n.families[0].gateway_ip().to_string(), "10.9.0.1");
        let raw = serde_json::json!({"subnet": "10.9.0.0/24"});
        assert!(PluginConfig::from_json(&raw, "n").is_err());
        let raw = serde_json::json!({"subnet": "nope"});
        assert!(PluginConfig::from_json(&raw, "n").is_err());
    }
}
