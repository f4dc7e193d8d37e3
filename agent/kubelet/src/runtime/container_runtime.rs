//! The container runtime as the pod workers see it: a narrow trait over
//! images, containers and tasks, so worker logic never speaks gRPC. Never
//! implements it (`containerd` does).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::Result;
use crate::runtime::registry;

/// What the kubelet needs to know about a present image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageInfo {
    pub name: String,
    /// Config digest: the image ID kubelet reports.
    pub id: String,
    /// Manifest digest, reported as `imageID` `name@digest`.
    pub manifest_digest: String,
    /// Snapshot of the top layer (the container's parent snapshot).
    pub chain_id: String,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

pub struct CreateRequest {
    pub id: String,
    pub image: ImageInfo,
    pub spec: serde_json::Value,
    pub labels: HashMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TaskState {
    /// No task: never started, or its exit was recorded and it was deleted.
    None,
    Created,
    Running {
        pid: u32,
    },
    Stopped {
        exit_code: u32,
    },
}

#[derive(Clone, Debug)]
pub struct ContainerInfo {
    pub id: String,
    pub labels: HashMap<String, String>,
    pub image: String,
    pub task: TaskState,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exit {
    pub code: u32,
    pub at: SystemTime,
}

pub trait ContainerRuntime: Send + Sync + 'static {
    /// None when the image is not present.
    fn image(&self, name: &str) -> impl Future<Output = Result<Option<ImageInfo>>> + Send;
    /// Fetches the image from its registry into the node's store.
    fn pull(
        &self,
        name: &str,
        credentials: &registry::Credentials,
    ) -> impl Future<Output = Result<ImageInfo>> + Send;
    /// Snapshot + container (no task yet).
    fn create(&self, req: CreateRequest) -> impl Future<Output = Result<()>> + Send;
    /// Creates and starts the task, stdout/stderr into `log_path` (CRI
    /// format); returns the pid.
    fn start(&self, id: &str, log_path: &Path) -> impl Future<Output = Result<u32>> + Send;
    /// Resolves when the task exits.
    fn wait(&self, id: &str) -> impl Future<Output = Result<Exit>> + Send;
    /// Signals the task; a task that is gone is not an error.
    fn kill(&self, id: &str, signal: u32) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the task (not the container); None if there was none.
    fn delete_task(&self, id: &str) -> impl Future<Output = Result<Option<Exit>>> + Send;
    /// Task, container and snapshot; what is gone already is not an error.
    fn remove(&self, id: &str) -> impl Future<Output = Result<()>> + Send;
    fn set_labels(
        &self,
        id: &str,
        labels: HashMap<String, String>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Bytes and inodes of the container's writable layer (its snapshot);
    /// None when it has none.
    fn writable_layer(&self, id: &str) -> impl Future<Output = Result<Option<(i64, i64)>>> + Send;
    /// Containers carrying `label=value`, with their task states.
    fn list(
        &self,
        label: &str,
        value: &str,
    ) -> impl Future<Output = Result<Vec<ContainerInfo>>> + Send;
    /// Runs a process inside a running container; its exit code, or an
    /// error on timeout (the process is killed).
    fn exec(
        &self,
        id: &str,
        process: serde_json::Value,
        timeout: Duration,
    ) -> impl Future<Output = Result<u32>> + Send;
}
