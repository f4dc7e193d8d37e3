//! `ContainerRuntime` for containerd: containers, snapshots (prepared under a
//! lease), tasks with the log driver, exec. Never decides anything about pods.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, UsageRequest,
};
use containerd_client::services::v1::DeleteProcessRequest;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, ExecProcessRequest, GetContainerRequest, GetRequest, KillRequest,
    ListContainersRequest, StartRequest, UpdateContainerRequest, WaitRequest,
};
use containerd_client::tonic::Code;
use prost_types::Any;

use super::client::{err, to_time, Containerd, PROCESS_TYPE, RUNC, SNAPSHOTTER, SPEC_TYPE};
use crate::error::{Error, Result};
use crate::runtime::container_runtime::{
    ContainerInfo, ContainerRuntime, CreateRequest, Exit, ImageInfo, TaskState,
};
use crate::runtime::registry::Credentials;

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
            crate::logs::driver::DRIVER_ARG,
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
