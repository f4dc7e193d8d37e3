//! The agent's config file (TOML): every command-line flag is also a key
//! here, spelled the same (`etcd-endpoints = ["http://..."]`); flags override
//! the file. This module only parses; it never applies settings.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    pub node_name: Option<String>,
    pub components: Option<Vec<String>>,
    pub etcd_endpoints: Option<Vec<String>>,
    pub etcd_prefix: Option<String>,
    pub iface: Option<String>,
    pub subnet_file: Option<PathBuf>,
    pub subnet_manager: Option<String>,
    #[serde(alias = "ipMasq")]
    pub ip_masq: Option<bool>,
    pub lease_ttl: Option<u64>,
    pub resync_interval: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, FileError> {
        toml::from_str(text).map_err(|e| FileError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_and_unknown_keys_are_errors() {
        let c = FileConfig::parse(
            Path::new("a.toml"),
            r#"
node-name = "node-1"
components = ["overlay"]
etcd-endpoints = ["http://127.0.0.1:2379"]
etcd-prefix = "/x"
iface = "eth0"
subnet-file = "/run/x.env"
subnet-manager = "etcd"
ip-masq = false
lease-ttl = 60
resync-interval = 10
"#,
        )
        .unwrap();
        assert_eq!(c.node_name.as_deref(), Some("node-1"));
        assert_eq!(c.ip_masq, Some(false));
        assert_eq!(c.lease_ttl, Some(60));
        let c = FileConfig::parse(Path::new("a.toml"), "ipMasq = false").unwrap();
        assert_eq!(c.ip_masq, Some(false));
        let e = FileConfig::parse(Path::new("a.toml"), "bogus = 1").unwrap_err();
        assert!(
            e.to_string().contains("a.toml") && e.to_string().contains("bogus"),
            "{e}"
        );
    }
}
