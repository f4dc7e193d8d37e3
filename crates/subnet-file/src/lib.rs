//! The node's subnet file (`KEY=VALUE` lines, flannel's `subnet.env` with
//! `CAPSTAN_` keys): written by the overlay, read by the CNI plugin. The
//! key names and value forms live only here. Owns the format and atomic
//! writing; must never decide what a node's subnet is.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;

pub const DEFAULT_PATH: &str = "/run/capstan/subnet.env";

/// The keys, in the order they are written.
pub const NETWORK: &str = "CAPSTAN_NETWORK";
pub const SUBNET: &str = "CAPSTAN_SUBNET";
pub const MTU: &str = "CAPSTAN_MTU";
pub const IPMASQ: &str = "CAPSTAN_IPMASQ";
pub const IPV6_NETWORK: &str = "CAPSTAN_IPV6_NETWORK";
pub const IPV6_SUBNET: &str = "CAPSTAN_IPV6_SUBNET";

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
    #[error("subnet file {path} has no {SUBNET} line")]
    NoSubnet { path: PathBuf },
    #[error("write subnet file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A gateway address together with the prefix of the subnet it serves,
/// e.g. `10.244.1.1/24`: how subnets are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayPrefix(pub IpNetwork);

impl GatewayPrefix {
    /// The subnet's first address after the network address, with its prefix.
    pub fn of_subnet(subnet: IpNetwork) -> Self {
        let gw = match subnet.network() {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(1))),
        };
        GatewayPrefix(IpNetwork::new(gw, subnet.prefix()).unwrap_or(subnet))
    }

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

/// The file's content. Every field is optional on reading (unknown keys
/// are ignored, so the writer can add some later); a file without either
/// subnet is refused by `read`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubnetFile {
    pub network: Option<IpNetwork>,
    pub subnet: Option<GatewayPrefix>,
    pub mtu: Option<u32>,
    pub ip_masq: Option<bool>,
    pub ipv6_network: Option<IpNetwork>,
    pub ipv6_subnet: Option<GatewayPrefix>,
}

impl SubnetFile {
    /// The text, one `KEY=VALUE` line per field that is set.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut line = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                s.push_str(&format!("{k}={v}\n"));
            }
        };
        line(NETWORK, self.network.map(|n| n.to_string()));
        line(SUBNET, self.subnet.map(|g| g.0.to_string()));
        line(MTU, self.mtu.map(|m| m.to_string()));
        line(IPMASQ, self.ip_masq.map(|m| m.to_string()));
        line(IPV6_NETWORK, self.ipv6_network.map(|n| n.to_string()));
        line(IPV6_SUBNET, self.ipv6_subnet.map(|g| g.0.to_string()));
        s
    }

    /// Parses the text; an error names the 1-based line and what is wrong.
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
            let key = key.trim();
            let value = value.trim().trim_matches('"');
            let net = |v: &str| {
                v.parse::<IpNetwork>()
                    .map_err(|e| bad(format!("{key}: {v:?} is not an address/prefix: {e}")))
            };
            match key {
                NETWORK => out.network = Some(net(value)?),
                SUBNET => out.subnet = Some(GatewayPrefix(net(value)?)),
                IPV6_NETWORK => out.ipv6_network = Some(net(value)?),
                IPV6_SUBNET => out.ipv6_subnet = Some(GatewayPrefix(net(value)?)),
                MTU => {
                    out.mtu = Some(
                        value
                            .parse()
                            .map_err(|_| bad(format!("{MTU}: {value:?} is not a number")))?,
                    )
                }
                IPMASQ => {
                    out.ip_masq = Some(
                        value
                            .parse()
                            .map_err(|_| bad(format!("{IPMASQ}: {value:?} is not true/false")))?,
                    )
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Reads and parses `path`; a file naming no subnet at all is an error.
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

    /// Writes the file atomically (temp file in the same directory, fsync,
    /// rename), so a reader never sees half a file; unchanged content is
    /// not rewritten.
    pub fn write(&self, path: &Path) -> Result<(), SubnetFileError> {
        let err = |source| SubnetFileError::Write {
            path: path.to_path_buf(),
            source,
        };
        let content = self.render();
        if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(content.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })
    }
}

/// The IPv4 subnet recorded in an existing file, if it is readable: the
/// overlay prefers it when it acquires a lease again.
pub fn previous_subnet(path: &Path) -> Option<IpNetwork> {
    let text = std::fs::read_to_string(path).ok()?;
    let file = SubnetFile::parse(&text).ok()?;
    file.subnet.map(GatewayPrefix::subnet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().expect("network")
    }

    fn file() -> SubnetFile {
        SubnetFile {
            network: Some(net("10.244.0.0/16")),
            subnet: Some(GatewayPrefix::of_subnet(net("10.244.1.0/24"))),
            mtu: Some(1450),
            ip_masq: Some(true),
            ipv6_network: None,
            ipv6_subnet: None,
        }
    }

    #[test]
    fn renders_the_documented_format() {
        assert_eq!(
            file().render(),
            "CAPSTAN_NETWORK=10.244.0.0/16\nCAPSTAN_SUBNET=10.244.1.1/24\nCAPSTAN_MTU=1450\nCAPSTAN_IPMASQ=true\n"
        );
        let mut f = file();
        f.ipv6_network = Some(net("fd00::/56"));
        f.ipv6_subnet = Some(GatewayPrefix::of_subnet(net("fd00:0:0:1::/64")));
        assert!(
            f.render().ends_with(
                "CAPSTAN_IPMASQ=true\nCAPSTAN_IPV6_NETWORK=fd00::/56\nCAPSTAN_IPV6_SUBNET=fd00:0:0:1::1/64\n"
            ),
            "{}",
            f.render()
        );
    }

    /// What the writer writes, the reader reads back unchanged.
    #[test]
    fn writer_and_reader_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run/capstan/subnet.env");
        let mut f = file();
        f.ipv6_network = Some(net("fd00:10:244::/56"));
        f.ipv6_subnet = Some(GatewayPrefix::of_subnet(net("fd00:10:244:1::/64")));
        f.write(&path).expect("write");
        let back = SubnetFile::read(&path).expect("read");
        assert_eq!(back, f);
        let subnet = back.subnet.expect("subnet");
        assert_eq!(subnet.gateway().to_string(), "10.244.1.1");
        assert_eq!(subnet.subnet(), net("10.244.1.0/24"));
        assert_eq!(previous_subnet(&path), Some(net("10.244.1.0/24")));
    }

    #[test]
    fn writes_atomically_and_skips_unchanged_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("subnet.env");
        assert_eq!(previous_subnet(&path), None);
        file().write(&path).expect("write");
        let before = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        file().write(&path).expect("write again");
        assert_eq!(
            std::fs::metadata(&path).and_then(|m| m.modified()).ok(),
            before
        );
        let leftovers = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn names_the_bad_line_and_a_missing_subnet() {
        let err = SubnetFile::parse("CAPSTAN_NETWORK=10.244.0.0/16\nCAPSTAN_MTU=big\n").err();
        assert_eq!(err.map(|e| e.0), Some(2));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("subnet.env");
        std::fs::write(&path, "CAPSTAN_NETWORK=10.244.0.0/16\n").expect("write");
        assert!(matches!(
            SubnetFile::read(&path),
            Err(SubnetFileError::NoSubnet { .. })
        ));
    }
}
