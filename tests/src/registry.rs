//! A private OCI registry inside a lab node (Debian's docker-registry,
//! plain HTTP on the node's loopback), and pushing the lab's test image
//! into it with skopeo: the only registry a pull test can reach here.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::daemon::Daemon;
use crate::{cmd, LabError, Node};

pub struct Registry {
    /// `<addr>:<port>`: `127.0.0.1:<port>` inside the node's namespace
    /// (`start`), or the node's own address (`start_at`).
    pub host: String,
    daemon: Daemon,
}

impl Registry {
    /// Starts a registry on `127.0.0.1:port` in `node`, storing under the
    /// node's directory; with `htpasswd` (a bcrypt htpasswd file's text) it
    /// requires basic auth.
    pub fn start(node: &Node, port: u16, htpasswd: Option<&str>) -> Result<Self, LabError> {
        Self::start_at(node, Ipv4Addr::LOCALHOST, port, htpasswd)
    }

    /// As `start`, listening on `addr` (the node's underlay address makes
    /// the registry reachable from every node of the lab).
    pub fn start_at(
        node: &Node,
        addr: Ipv4Addr,
        port: u16,
        htpasswd: Option<&str>,
    ) -> Result<Self, LabError> {
        let dir = node.dir().join(format!("registry-{port}"));
        std::fs::create_dir_all(dir.join("data")).map_err(LabError::io("create registry dir"))?;
        let auth = match htpasswd {
            Some(text) => {
                let file = dir.join("htpasswd");
                std::fs::write(&file, text).map_err(LabError::io("write htpasswd"))?;
                format!(
                    "auth:\n  htpasswd:\n    realm: capstan-lab\n    path: {}\n",
                    file.display()
                )
            }
            None => String::new(),
        };
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}:{port}\n{auth}",
                dir.join("data").display()
            ),
        )
        .map_err(LabError::io("write registry config"))?;
        let program = PathBuf::from("/usr/bin/docker-registry");
        let mut daemon = node.spawn(
            &format!("registry-{port}"),
            &program,
            &["serve".into(), config.display().to_string()],
        )?;
        let netns = node.netns();
        daemon.wait_ready(Duration::from_secs(20), || {
            netns
                .run_in(move || std::net::TcpStream::connect((addr, port)).is_ok())
                .unwrap_or(false)
        })?;
        Ok(Self {
            host: format!("{addr}:{port}"),
            daemon,
        })
    }

    /// Copies the OCI image archive `archive` to `<host>/<repo>` with
    /// skopeo, run inside `node` (where the registry listens).
    pub fn push(
        &self,
        node: &Node,
        archive: &std::path::Path,
        repo: &str,
        creds: Option<(&str, &str)>,
    ) -> Result<String, LabError> {
        let dest = format!("{}/{repo}", self.host);
        let mut c = node.command("skopeo")?;
        c.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if let Some((u, p)) = creds {
            c.arg(format!("--dest-creds={u}:{p}"));
        }
        c.arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{dest}"));
        cmd::run(&mut c)?;
        Ok(dest)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.daemon.stop(Duration::from_secs(2));
    }
}

/// The lab's test image as an OCI archive (built, or from the cache).
pub fn test_image_archive() -> Result<PathBuf, LabError> {
    let testsrv = crate::bins::path("capstan-testsrv")?;
    crate::image::build(&crate::state::base_dir().join("cache"), &testsrv)
}
