//! What the agent API may ask the kubelet's runtime: whether one attempt
//! of a container still runs (a followed log ends when it does not). Read
//! only; it never changes a container.

use std::sync::Arc;

use crate::ids;
use crate::runtime::container_runtime::{ContainerRuntime, TaskState};
use std::future::Future;

/// Whether a container's attempt still runs (followers stop when not).
pub trait ContainerState: Send + Sync + 'static {
    fn running(
        &self,
        pod_uid: &str,
        container: &str,
        attempt: u32,
    ) -> impl Future<Output = bool> + Send;
}

pub struct RuntimeContainers<R> {
    pub runtime: Arc<R>,
    pub owner: String,
}

impl<R: ContainerRuntime> ContainerState for RuntimeContainers<R> {
    async fn running(&self, pod_uid: &str, container: &str, attempt: u32) -> bool {
        let id = ids::container_id(&self.owner, pod_uid, container, attempt);
        match self.runtime.list(ids::LABEL_POD_UID, pod_uid).await {
            Ok(list) => list
                .iter()
                .any(|c| c.id == id && matches!(c.task, TaskState::Running { .. })),
            // containerd unreachable: keep following rather than cut the
            // stream on a hiccup; the client can always stop.
            Err(_) => true,
        }
    }
}
