//! The kube subnet manager's network config: a local file (the
//! DaemonSet's ConfigMap) in flannel's net-conf.json format. Reading it
//! here, once, lets the agent refuse a bad file before it touches the
//! node's network; this module never logs and never retries.

use std::path::Path;

use crate::subnet::config::{ConfigError, Ignored, NetworkConfig};

/// Reads and parses the file at `path`; the error names the file and says
/// what is wrong with it.
pub fn load(path: &Path) -> Result<(NetworkConfig, Vec<Ignored>), ConfigError> {
    let key = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::MissingFile { path: key })
        }
        Err(e) => {
            return Err(ConfigError::Malformed {
                key,
                reason: format!("cannot read it: {e}"),
            })
        }
    };
    NetworkConfig::parse_quiet(&key, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_unreadable_and_malformed_files_say_which() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("net-conf.json");
        let e = load(&missing).unwrap_err().to_string();
        assert!(
            e.contains("does not exist") && e.contains("net-conf.json"),
            "{e}"
        );
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("cannot read it"), "{e}");
        std::fs::write(&missing, "{\"Network\": \"10.244.0.0/16\",}").unwrap();
        let e = load(&missing).unwrap_err().to_string();
        assert!(
            e.contains(&*missing.to_string_lossy()) && e.contains("not valid JSON"),
            "{e}"
        );
        std::fs::write(&missing, r#"{"Network":"10.244.0.0/16","Bogus":1}"#).unwrap();
        let (c, ignored) = load(&missing).unwrap();
        assert_eq!(c.subnet_len, 24);
        assert_eq!(ignored.len(), 1);
    }
}
