//! `ContainerRuntime` over containerd's gRPC API (one channel shared by
//! every pod worker; tonic multiplexes calls on it). Snapshots are prepared
//! under a lease so containerd's GC cannot take them before the container
//! that references them exists. Never decides anything about pods.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, UsageRequest,
};
use containerd_client::services::v1::CreateRequest as CreateLease;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, ExecProcessRequest, GetContainerRequest, GetImageRequest, GetRequest,
    KillRequest, ListContainersRequest, ReadContentRequest, StartRequest, UpdateContainerRequest,
    WaitRequest,
};
use containerd_client::services::v1::{DeleteProcessRequest, DeleteRequest as DeleteLease};
use containerd_client::tonic::{self, Code, Request};
use containerd_client::Client;
use prost_types::Any;
use tokio_stream::StreamExt;

use super::image::{self, ImageConfig, Index, Manifest};
use super::registry::{Credentials, Registry};
use super::{ContainerInfo, ContainerRuntime, CreateRequest, Exit, ImageInfo, TaskState};
use crate::kubelet::error::{Error, Result};

mod pull;

const SNAPSHOTTER: &str = "overlayfs";
const RUNC: &str = "io.containerd.runc.v2";
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

pub struct Containerd {
    client: Client,
    namespace: String,
    /// The binary the shim runs as the log driver (this executable).
    log_driver: PathBuf,
    registry: Registry,
    /// Pulls run one at a time, kubelet's default (serializeImagePulls):
    /// two pods of one image must not write the same blobs at once.
    pull_lock: tokio::sync::Mutex<()>,
}

fn err<'a>(op: &'static str, id: &'a str) -> impl FnOnce(tonic::Status) -> Error + 'a {
    move |s| Error::Containerd {
        op,
        id: id.to_string(),
        message: s.message().to_string(),
    }
}

fn to_time(t: Option<prost_types::Timestamp>) -> SystemTime {
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

    fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Ok(v) = self.namespace.parse() {
            r.metadata_mut().insert("containerd-namespace", v);
        }
        r
    }

    fn leased<T>(&self, msg: T, lease: &str) -> Request<T> {
        let mut r = self.req(msg);
        if let Ok(v) = lease.parse() {
            r.metadata_mut().insert("containerd-lease", v);
        }
        r
    }

    async fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let mut stream = self
            .client
            .content()
            .read(self.req(ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            }))
            .await
            .map_err(err("read content", digest))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend(chunk.map_err(err("read content", digest))?.data);
        }
        Ok(out)
    }

    fn bad_image(name: &str, what: impl std::fmt::Display) -> Error {
        Error::Image {
            image: name.to_string(),
            message: what.to_string(),
        }
    }

    /// A lease `capstan-<tag>` that keeps what is made under it from
    /// containerd's GC until it is dropped (or an hour passes, should the
    /// agent die in between).
    async fn lease(&self, tag: &str) -> Result<String> {
        let id = format!("capstan-{tag}");
        self.client
            .leases()
            .create(
                self.req(CreateLease {
                    id: id.clone(),
                    labels: HashMap::from([(
                        "containerd.io/gc.expire".to_string(),
                        // RFC 3339.
                        k8s_openapi::jiff::Timestamp::now()
                            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(3600))
                            .map(|t| t.to_string())
                            .unwrap_or_default(),
                    )]),
                }),
            )
            .await
            .map_err(err("create lease", tag))?;
        Ok(id)
    }

    async fn drop_lease(&self, id: &str) {
        let _ = self
            .client
            .leases()
            .delete(self.req(DeleteLease {
                id: id.to_string(),
                sync: false,
            }))
            .await;
    }

    async fn image_exact(&self, name: &str) -> Result<Option<ImageInfo>> {
        let img = match self
            .client
            .images()
            .get(self.req(GetImageRequest {
                name: name.to_string(),
            }))
            .await
        {
            Ok(r) => r.into_inner().image,
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(err("get image", name)(s)),
        };
        let target = img
            .and_then(|i| i.target)
            .ok_or_else(|| Self::bad_image(name, "image record has no target"))?;
        let mut manifest_digest = target.digest.clone();
        let mut bytes = self.read_blob(&target.digest).await?;
        if image::is_index(&target.media_type) {
            let index: Index =
                serde_json::from_slice(&bytes).map_err(|e| Self::bad_image(name, e))?;
            let m = image::pick_manifest(&index)
                .ok_or_else(|| Self::bad_image(name, "no manifest for this platform"))?;
            manifest_digest = m.digest.clone();
            bytes = self.read_blob(&manifest_digest).await?;
        }
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| Self::bad_image(name, e))?;
        let config: ImageConfig =
            serde_json::from_slice(&self.read_blob(&manifest.config.digest).await?)
                .map_err(|e| Self::bad_image(name, e))?;
        let chain_id = image::chain_id(&config.rootfs.diff_ids)
            .ok_or_else(|| Self::bad_image(name, "image has no layers"))?;
        let c = config.config.unwrap_or_default();
        Ok(Some(ImageInfo {
            name: name.to_string(),
            id: manifest.config.digest,
            manifest_digest,
            chain_id,
            env: c.env.unwrap_or_default(),
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            working_dir: c.working_dir.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
        }))
    }

    async fn lookup(&self, name: &str) -> Result<Option<ImageInfo>> {
        match self.image_exact(name).await? {
            Some(i) => Ok(Some(i)),
            // `busybox` is stored as docker.io/library/busybox:latest.
            None => match pull::normalized(name).filter(|n| n != name) {
                Some(full) => Ok(self.image_exact(&full).await?.map(|i| ImageInfo {
                    name: name.to_string(),
                    ..i
                })),
                None => Ok(None),
            },
        }
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

impl ContainerRuntime for Containerd {
    async fn image(&self, name: &str) -> Result<Option<ImageInfo>> {
        self.lookup(name).await
    }

    async fn pull(&self, name: &str, credentials: &Credentials) -> Result<ImageInfo> {
        let _serial = self.pull_lock.lock().await;
        let t0 = std::time::Instant::now();
        let stored = self.pull_image(&self.registry, name, credentials).await?;
        tracing::info!(image = %name, stored = %stored, took_ms = t0.elapsed().as_millis() as u64, "image pulled");
        self.lookup(name)
            .await?
            .ok_or_else(|| Self::bad_image(name, "pulled, but the image record is not readable"))
    }

    async fn create(&self, req: CreateRequest) -> Result<()> {
        let id = req.id.as_str();
        let lease_id = self.lease(id).await?;
        let result = async {
            match self
                .client
                .snapshots()
                .prepare(self.leased(
                    PrepareSnapshotRequest {
                        snapshotter: SNAPSHOTTER.into(),
                        key: id.to_string(),
                        parent: req.image.chain_id.clone(),
                        labels: HashMap::new(),
                    },
                    &lease_id,
                ))
                .await
            {
                Ok(_) => {}
                // A retry after a failed create: the snapshot is there.
                Err(s) if s.code() == Code::AlreadyExists => {}
                Err(s) => return Err(err("prepare snapshot", id)(s)),
            }
            let spec = serde_json::to_vec(&req.spec).map_err(|e| Error::Containerd {
                op: "encode spec",
                id: id.to_string(),
                message: e.to_string(),
            })?;
            self.client
                .containers()
                .create(self.leased(
                    CreateContainerRequest {
                        container: Some(Container {
                            id: id.to_string(),
                            labels: req.labels,
                            image: req.image.name.clone(),
                            runtime: Some(Runtime {
                                name: RUNC.into(),
                                options: None,
                            }),
                            spec: Some(Any {
                                type_url: SPEC_TYPE.into(),
                                value: spec,
                            }),
                            snapshotter: SNAPSHOTTER.into(),
                            snapshot_key: id.to_string(),
                            ..Default::default()
                        }),
                    },
                    &lease_id,
                ))
                .await
                .map_err(err("create container", id))?;
            Ok(())
        }
        .await;
        self.drop_lease(&lease_id).await;
        result
    }

    async fn start(&self, id: &str, log_path: &Path) -> Result<u32> {
        let mounts = self
            .client
            .snapshots()
            .mounts(self.req(MountsRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: id.to_string(),
            }))
            .await
            .map_err(err("snapshot mounts", id))?
            .into_inner()
            .mounts;
        // The shim runs this binary as a log driver: it survives agent
        // restarts and writes the CRI log format (see kubelet::logs).
        let uri = format!(
            "binary://{}?{}={}",
            self.log_driver.display(),
            crate::kubelet::logs::DRIVER_ARG,
            log_path.display()
        );
        let created = self
            .client
            .tasks()
            .create(self.req(CreateTaskRequest {
                container_id: id.to_string(),
                rootfs: mounts,
                stdout: uri.clone(),
                stderr: uri,
                ..Default::default()
            }))
            .await
            .map_err(err("create task", id))?
            .into_inner();
        self.client
            .tasks()
            .start(self.req(StartRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await
            .map_err(err("start task", id))?;
        Ok(created.pid)
    }

    async fn wait(&self, id: &str) -> Result<Exit> {
        let r = self
            .client
            .tasks()
            .wait(self.req(WaitRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await
            .map_err(err("wait task", id))?
            .into_inner();
        Ok(Exit {
            code: r.exit_status,
            at: to_time(r.exited_at),
        })
    }

    async fn kill(&self, id: &str, signal: u32) -> Result<()> {
        match self
            .client
            .tasks()
            .kill(self.req(KillRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                signal,
                all: true,
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if matches!(s.code(), Code::NotFound | Code::FailedPrecondition) => Ok(()),
            Err(s) => Err(err("kill task", id)(s)),
        }
    }

    async fn delete_task(&self, id: &str) -> Result<Option<Exit>> {
        match self
            .client
            .tasks()
            .delete(self.req(DeleteTaskRequest {
                container_id: id.to_string(),
            }))
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                Ok(Some(Exit {
                    code: r.exit_status,
                    at: to_time(r.exited_at),
                }))
            }
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(err("delete task", id)(s)),
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        if self.delete_task(id).await.is_err() {
            self.kill(id, 9).await?;
            // The kill is asynchronous; the task is deletable once stopped.
            for _ in 0..50 {
                match self.delete_task(id).await {
                    Ok(_) => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        match self
            .client
            .containers()
            .delete(self.req(DeleteContainerRequest { id: id.to_string() }))
            .await
        {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(err("delete container", id)(s)),
        }
        match self
            .client
            .snapshots()
            .remove(self.req(RemoveSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: id.to_string(),
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(err("remove snapshot", id)(s)),
        }
    }

    async fn set_labels(&self, id: &str, labels: HashMap<String, String>) -> Result<()> {
        let mut c = self
            .client
            .containers()
            .get(self.req(GetContainerRequest { id: id.to_string() }))
            .await
            .map_err(err("get container", id))?
            .into_inner()
            .container
            .ok_or_else(|| Error::Containerd {
                op: "get container",
                id: id.to_string(),
                message: "empty answer".into(),
            })?;
        c.labels.extend(labels);
        self.client
            .containers()
            .update(self.req(UpdateContainerRequest {
                container: Some(c),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["labels".into()],
                }),
            }))
            .await
            .map_err(err("update container", id))?;
        Ok(())
    }

    async fn writable_layer(&self, id: &str) -> Result<Option<(i64, i64)>> {
        match self
            .client
            .snapshots()
            .usage(self.req(UsageRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: id.to_string(),
            }))
            .await
        {
            Ok(r) => {
                let u = r.into_inner();
                Ok(Some((u.size, u.inodes)))
            }
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(err("snapshot usage", id)(s)),
        }
    }

    async fn list(&self, label: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        let filter = format!("labels.\"{label}\"=={value}");
        let containers = self
            .client
            .containers()
            .list(self.req(ListContainersRequest {
                filters: vec![filter],
            }))
            .await
            .map_err(err("list containers", value))?
            .into_inner()
            .containers;
        let mut out = Vec::with_capacity(containers.len());
        for c in containers {
            let task = match self
                .client
                .tasks()
                .get(self.req(GetRequest {
                    container_id: c.id.clone(),
                    exec_id: String::new(),
                }))
                .await
            {
                Ok(r) => match r.into_inner().process {
                    Some(p) if p.status == 2 || p.status == 4 || p.status == 5 => {
                        TaskState::Running { pid: p.pid }
                    }
                    Some(p) if p.status == 3 => TaskState::Stopped {
                        exit_code: p.exit_status,
                    },
                    Some(_) => TaskState::Created,
                    None => TaskState::None,
                },
                Err(s) if s.code() == Code::NotFound => TaskState::None,
                Err(s) => return Err(err("get task", &c.id)(s)),
            };
            out.push(ContainerInfo {
                id: c.id,
                labels: c.labels,
                image: c.image,
                task,
            });
        }
        Ok(out)
    }

    async fn exec(&self, id: &str, process: serde_json::Value, timeout: Duration) -> Result<u32> {
        let exec_id = format!("x{:016x}", rand::random::<u64>());
        let spec = serde_json::to_vec(&process).map_err(|e| Error::Containerd {
            op: "encode exec spec",
            id: id.to_string(),
            message: e.to_string(),
        })?;
        let tasks = self.client.tasks();
        let mut t = tasks.clone();
        t.exec(self.req(ExecProcessRequest {
            container_id: id.to_string(),
            stdout: "file:///dev/null".into(),
            stderr: "file:///dev/null".into(),
            spec: Some(Any {
                type_url: PROCESS_TYPE.into(),
                value: spec,
            }),
            exec_id: exec_id.clone(),
            ..Default::default()
        }))
        .await
        .map_err(err("exec", id))?;
        let run = async {
            let mut t = tasks.clone();
            // Wait is registered before start so a fast exit is not missed.
            let waiter = tokio::spawn({
                let mut t = tasks.clone();
                let req = self.req(WaitRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.clone(),
                });
                async move { t.wait(req).await }
            });
            t.start(self.req(StartRequest {
                container_id: id.to_string(),
                exec_id: exec_id.clone(),
            }))
            .await
            .map_err(err("start exec", id))?;
            match waiter.await {
                Ok(Ok(r)) => Ok(r.into_inner().exit_status),
                Ok(Err(s)) => Err(err("wait exec", id)(s)),
                Err(e) => Err(Error::Containerd {
                    op: "wait exec",
                    id: id.to_string(),
                    message: e.to_string(),
                }),
            }
        };
        let result = match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => {
                let mut t = tasks.clone();
                let _ = t
                    .kill(self.req(KillRequest {
                        container_id: id.to_string(),
                        exec_id: exec_id.clone(),
                        signal: 9,
                        all: false,
                    }))
                    .await;
                Err(Error::Containerd {
                    op: "exec",
                    id: id.to_string(),
                    message: format!("timed out after {timeout:?}"),
                })
            }
        };
        let mut t = tasks;
        for _ in 0..20 {
            match t
                .delete_process(self.req(DeleteProcessRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.clone(),
                }))
                .await
            {
                Ok(_) => break,
                Err(s) if s.code() == Code::NotFound => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        result
    }
}
