//! The containerd client: one gRPC channel shared by every pod worker
//! (tonic multiplexes calls on it), the namespace, the registry and the
//! request helpers the other containerd files use. Never decides anything
//! about pods.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use containerd_client::tonic::{self, Request};
use containerd_client::Client;

use crate::error::{Error, Result};
use crate::runtime::registry::Registry;

pub(super) const SNAPSHOTTER: &str = "overlayfs";
pub(super) const RUNC: &str = "io.containerd.runc.v2";
pub(super) const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
pub(super) const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

pub struct Containerd {
    pub(super) client: Client,
    pub(super) namespace: String,
    /// The binary the shim runs as the log driver (this executable).
    pub(super) log_driver: PathBuf,
    pub(super) registry: Registry,
    /// Pulls run one at a time, kubelet's default (serializeImagePulls):
    /// two pods of one image must not write the same blobs at once.
    pub(super) pull_lock: tokio::sync::Mutex<()>,
}

pub(super) fn err<'a>(op: &'static str, id: &'a str) -> impl FnOnce(tonic::Status) -> Error + 'a {
    move |s| Error::Containerd {
        op,
        id: id.to_string(),
        message: s.message().to_string(),
    }
}

pub(super) fn to_time(t: Option<prost_types::Timestamp>) -> SystemTime {
    t.and_then(|t| {
        SystemTime::UNIX_EPOCH.checked_add(Duration::new(
            u64::try_from(t.seconds).ok()?,
            u32::try_from(t.nanos).ok()?,
        ))
    })
    .unwrap_or_else(SystemTime::now)
}

impl Containerd {
    /// `insecure_registries`: `host:port`s pulled from over plain HTTP.
    pub async fn connect(
        socket: &Path,
        namespace: &str,
        log_driver: PathBuf,
        insecure_registries: Vec<String>,
    ) -> Result<Self> {
        let client = Client::from_path(socket)
            .await
            .map_err(|e| Error::Connect {
                path: socket.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(Self {
            client,
            namespace: namespace.to_string(),
            log_driver,
            registry: Registry::new(insecure_registries),
            pull_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub(super) fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Ok(v) = self.namespace.parse() {
            r.metadata_mut().insert("containerd-namespace", v);
        }
        r
    }

    pub(super) fn leased<T>(&self, msg: T, lease: &str) -> Request<T> {
        let mut r = self.req(msg);
        if let Ok(v) = lease.parse() {
            r.metadata_mut().insert("containerd-lease", v);
        }
        r
    }
}

impl Containerd {
    /// Where containerd keeps image layers and writable layers: the root
    /// its snapshotter plugin exports (kubelet's imagefs). `None` when
    /// containerd does not say.
    pub async fn image_fs(&self) -> Option<PathBuf> {
        let req = containerd_client::services::v1::PluginsRequest {
            filters: vec![format!(
                "type==io.containerd.snapshotter.v1,id=={SNAPSHOTTER}"
            )],
        };
        let resp = self.client.introspection().plugins(req).await.ok()?;
        resp.into_inner()
            .plugins
            .into_iter()
            .find_map(|p| p.exports.get("root").map(PathBuf::from))
    }
}
