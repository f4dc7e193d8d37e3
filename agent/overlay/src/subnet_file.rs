//! The subnet file the CNI plugin reads (`/run/capstan/subnet.env`): written
//! atomically (temp file in the same directory, fsync, rename) so a reader
//! never sees half a file; read back at start to prefer the previous subnet.

use std::io::Write;
use std::path::{Path, PathBuf};

use ipnetwork::{Ipv4Network, Ipv6Network};

use crate::subnet::arith;

pub const DEFAULT_PATH: &str = "/run/capstan/subnet.env";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetFile {
    pub network: Ipv4Network,
    /// The node's subnet (written as gateway address / prefix).
    pub subnet: Ipv4Network,
    pub mtu: u32,
    pub ip_masq: bool,
    /// Dual-stack: the cluster's IPv6 network and this node's v6 subnet
    /// (written, like the v4 one, as gateway address / prefix).
    pub ipv6_network: Option<Ipv6Network>,
    pub ipv6_subnet: Option<Ipv6Network>,
}

#[derive(Debug, thiserror::Error)]
#[error("write subnet file {path}: {source}")]
pub struct WriteError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl SubnetFile {
    pub fn render(&self) -> String {
        let mut s = format!(
            "CAPSTAN_NETWORK={}\nCAPSTAN_SUBNET={}/{}\nCAPSTAN_MTU={}\nCAPSTAN_IPMASQ={}\n",
            self.network,
            arith::gateway_addr(self.subnet),
            self.subnet.prefix(),
            self.mtu,
            self.ip_masq
        );
        if let Some(n6) = self.ipv6_network {
            s.push_str(&format!("CAPSTAN_IPV6_NETWORK={n6}\n"));
        }
        if let Some(v6) = self.ipv6_subnet {
            let gw = std::net::Ipv6Addr::from(u128::from(v6.network()).wrapping_add(1));
            s.push_str(&format!("CAPSTAN_IPV6_SUBNET={gw}/{}\n", v6.prefix()));
        }
        s
    }

    /// Writes the file atomically; unchanged content is not rewritten.
    pub fn write(&self, path: &Path) -> Result<(), WriteError> {
        let err = |source| WriteError {
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

/// The subnet recorded in an existing file (`CAPSTAN_SUBNET`), if readable.
pub fn previous_subnet(path: &Path) -> Option<Ipv4Network> {
    let text = std::fs::read_to_string(path).ok()?;
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("CAPSTAN_SUBNET="))?;
    let n: Ipv4Network = value.trim().parse().ok()?;
    Ipv4Network::new(n.network(), n.prefix()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> SubnetFile {
        SubnetFile {
            network: "10.244.0.0/16".parse().unwrap(),
            subnet: "10.244.1.0/24".parse().unwrap(),
            mtu: 1450,
            ip_masq: true,
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
        f.ipv6_network = Some("fd00::/56".parse().unwrap());
        f.ipv6_subnet = Some("fd00:0:0:1::/64".parse().unwrap());
        assert!(
            f.render().ends_with(
                "CAPSTAN_IPMASQ=true\nCAPSTAN_IPV6_NETWORK=fd00::/56\nCAPSTAN_IPV6_SUBNET=fd00:0:0:1::1/64\n"
            ),
            "{}",
            f.render()
        );
    }

    #[test]
    fn writes_atomically_and_reads_back_the_subnet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/capstan/subnet.env");
        assert_eq!(previous_subnet(&path), None);
        file().write(&path).unwrap();
        file().write(&path).unwrap();
        assert_eq!(
            previous_subnet(&path),
            Some("10.244.1.0/24".parse().unwrap())
        );
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
