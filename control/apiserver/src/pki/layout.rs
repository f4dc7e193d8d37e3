//! Where each file of a PKI directory lives: names only, no I/O.

use std::path::{Path, PathBuf};

/// Where each file of a PKI directory lives.
#[derive(Clone, Debug)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Layout { dir: dir.into() }
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn serving_cert(&self) -> PathBuf {
        self.dir.join("apiserver.crt")
    }
    pub fn serving_key(&self) -> PathBuf {
        self.dir.join("apiserver.key")
    }
    pub fn client_cert(&self, who: &str) -> PathBuf {
        self.dir.join(format!("{who}.crt"))
    }
    pub fn client_key(&self, who: &str) -> PathBuf {
        self.dir.join(format!("{who}.key"))
    }
    /// The key service-account tokens are signed with (PKCS#8 PEM).
    pub fn service_account_key(&self) -> PathBuf {
        self.dir.join("sa.key")
    }
    /// Its public key, which verifies the tokens.
    pub fn service_account_pub(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }
    pub fn tokens(&self) -> PathBuf {
        self.dir.join("tokens.csv")
    }
    pub fn kubeconfig(&self, who: &str) -> PathBuf {
        self.dir.join(format!("{who}.kubeconfig"))
    }
    /// Files of a node's credentials are named after the node itself.
    pub fn node_file_stem(node: &str) -> String {
        format!("node-{node}")
    }
}
