//! Whether the container runtime answers, as kubelet's runtime status
//! check feeds the Node's Ready condition: a cheap list call every couple
//! of seconds, with a deadline. Publishes the error (None: healthy); never
//! changes containers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::ids;
use crate::runtime::container_runtime::ContainerRuntime;

const PERIOD: Duration = Duration::from_secs(2);
const DEADLINE: Duration = Duration::from_secs(2);

/// Runs until every receiver is gone.
pub async fn run<R: ContainerRuntime>(runtime: Arc<R>, tx: watch::Sender<Option<String>>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if tx.is_closed() {
            return;
        }
        // A label value no container carries: the answer is empty and cheap.
        let probe = runtime.list(ids::LABEL_OWNER, "capstan-runtime-health-probe");
        let err = match tokio::time::timeout(DEADLINE, probe).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {DEADLINE:?}")),
        };
        tx.send_if_modified(|cur| {
            if cur.is_some() == err.is_some() {
                return false;
            }
            match &err {
                Some(e) => tracing::warn!(error = %e, "container runtime is down"),
                None => tracing::info!("container runtime is up again"),
            }
            *cur = err;
            true
        });
    }
}
