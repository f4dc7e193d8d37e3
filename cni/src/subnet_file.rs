//! Reads the node's subnet file (flannel-style `KEY=VALUE`) that the agent's
//! overlay writes. Owns only parsing; must never write the file, which
//! belongs to the agent.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;

#[derive(Debug, thiserror::Error)]
pub enum SubnetFileError {
    #[error("cannot read subnet file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("subnet file {path} line {line}: {reason}")]
    Invalid {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("subnet file {path} has no CAPSTAN_SUBNET line")]
    NoSubnet { path: PathBuf },
}

/// A gateway address together with the prefix of the subnet it serves,
/// e.g. `10.244.1.1/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayPrefix(pub IpNetwork);

impl GatewayPrefix {
    pub fn gateway(self) -> IpAddr {
        self.0.ip()
    }

    pub fn prefix(self) -> u8 {
        self.0.prefix()
    }

    /// The subnet itself (host bits cleared).
    pub fn subnet(self) -> IpNetwork {
        IpNetwork::new(self.0.network(), self.0.prefix()).unwrap_or(self.0)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubnetFile {
    pub network: Option<IpNetwork>,
    pub subnet: Option<GatewayPrefix>,
    pub ipv6_network: Option<IpNetwork>,
    pub ipv6_subnet: Option<GatewayPrefix>,
    pub mtu: Option<u32>,
    pub ip_masq: Option<bool>,
}

impl SubnetFile {
    pub fn read(path: &Path) -> Result<Self, SubnetFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| SubnetFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file = Self::parse(&text).map_err(|(line, reason)| SubnetFileError::Invalid {
            path: path.to_path_buf(),
            line,
            reason,
        })?;
        if file.subnet.is_none() && file.ipv6_subnet.is_none() {
            return Err(SubnetFileError::NoSubnet {
                path: path.to_path_buf(),
            });
        }
        Ok(file)
    }

    /// Parses the text; an error names the 1-based line and what is wrong.
    /// Unknown keys are ignored so the agent can add some later.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut out = SubnetFile::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| (i + 1, reason);
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("expected KEY=VALUE, got {line:?}")))?;
            let value = value.trim().trim_matches('"');
            let net = |v: &str| {
                v.parse::<IpNetwork>()
                    .map_err(|e| bad(format!("{key}: {v:?} is not an address/prefix: {e}")))
            };
            match key.trim() {
                "CAPSTAN_NETWORK" => out.network = Some(net(value)?),
                "CAPSTAN_SUBNET" => out.subnet = Some(GatewayPrefix(net(value)?)),
                "CAPSTAN_IPV6_NETWORK" => out.ipv6_network = Some(net(value)?),
                "CAPSTAN_IPV6_SUBNET" => out.ipv6_subnet = Some(GatewayPrefix(net(value)?)),
                "CAPSTAN_MTU" => {
                    out.mtu = Some(
                        value
                            .parse()
                            .map_err(|_| bad(format!("CAPSTAN_MTU: {value:?} is not a number")))?,
                    )
                }
                "CAPSTAN_IPMASQ" => {
                    out.ip_masq =
                        Some(value.parse().map_err(|_| {
                            bad(format!("CAPSTAN_IPMASQ: {value:?} is not true/false"))
                        })?)
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flannel_style_file() {
        let f = SubnetFile::parse(
            "CAPSTAN_NETWORK=10.244.0.0/16\nCAPSTAN_SUBNET=10.244.1.1/24\nCAPSTAN_MTU=1450\nCAPSTAN_IPMASQ=true\nCAPSTAN_IPV6_SUBNET=fd00:10:244:1::1/64\n",
        )
        .expect("valid file");
        let subnet = f.subnet.expect("subnet");
        assert_eq!(subnet.gateway().to_string(), "10.244.1.1");
        assert_eq!(subnet.subnet().to_string(), "10.244.1.0/24");
        assert_eq!(f.mtu, Some(1450));
        assert_eq!(f.ip_masq, Some(true));
        assert!(f.ipv6_subnet.is_some());
    }

    #[test]
    fn names_the_bad_line() {
        let err = SubnetFile::parse("CAPSTAN_NETWORK=10.244.0.0/16\nCAPSTAN_MTU=big\n").err();
        assert_eq!(err.map(|e| e.0), Some(2));
    }
}
