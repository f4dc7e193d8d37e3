//! Whether the container runtime answers and the pod network is ready, as
//! kubelet's runtime status check (CRI Status: RuntimeReady, NetworkReady)
//! feeds the Node's Ready condition: a cheap list call and a look for a
//! CNI network config every couple of seconds. A node whose CNI config is
//! not installed yet (a network DaemonSet still starting) is NotReady with
//! kubelet's NetworkPluginNotReady message; host-network pods still run
//! and pod networks are set up once the config appears. Publishes the
//! Ready condition's message (None: healthy); never changes containers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::ids;
use crate::runtime::container_runtime::ContainerRuntime;
use crate::sandbox::cni::Cni;

const PERIOD: Duration = Duration::from_secs(2);
const DEADLINE: Duration = Duration::from_secs(2);

/// Why the node is not Ready (the Ready condition's message), or None.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Problem {
    Runtime(String),
    Network(String),
}

impl Problem {
    fn message(&self) -> String {
        match self {
            Problem::Runtime(e) => format!("container runtime is down: {e}"),
            Problem::Network(e) => format!(
                "container runtime network not ready: NetworkReady=false \
                 reason:NetworkPluginNotReady message:Network plugin returns error: \
                 cni plugin not initialized ({e})"
            ),
        }
    }
    fn same_kind(a: Option<&Problem>, b: Option<&Problem>) -> bool {
        let kind = |p: Option<&Problem>| p.map(std::mem::discriminant);
        kind(a) == kind(b)
    }
}

fn network(cni: &Cni) -> Option<Problem> {
    cni.load().err().map(|e| Problem::Network(e.to_string()))
}

/// The status before the first probe: the network config is checked at
/// once, so a node without one never reports Ready in between.
pub fn initial(cni: &Cni) -> Option<String> {
    network(cni).map(|p| p.message())
}

/// Runs until every receiver is gone.
pub async fn run<R: ContainerRuntime>(
    runtime: Arc<R>,
    cni: Cni,
    tx: watch::Sender<Option<String>>,
) {
    let mut last = network(&cni);
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
            Ok(Ok(_)) => network(&cni),
            Ok(Err(e)) => Some(Problem::Runtime(e.to_string())),
            Err(_) => Some(Problem::Runtime(format!("no answer within {DEADLINE:?}"))),
        };
        // Published (and logged) when the kind of problem changes, not
        // when an error's text does.
        if Problem::same_kind(last.as_ref(), err.as_ref()) {
            continue;
        }
        match &err {
            Some(Problem::Runtime(e)) => tracing::warn!(error = %e, "container runtime is down"),
            Some(Problem::Network(e)) => {
                tracing::warn!(error = %e, "pod network not ready (no CNI config yet)")
            }
            None => tracing::info!("container runtime and pod network are ready"),
        }
        let message = err.as_ref().map(Problem::message);
        last = err;
        tx.send_replace(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_without_cni_config_is_not_network_ready_until_one_appears() {
        let dir = tempfile::tempdir().unwrap();
        let cni = Cni {
            conf_dir: dir.path().to_path_buf(),
            bin_dir: dir.path().to_path_buf(),
        };
        let msg = initial(&cni).expect("no config: not ready");
        assert!(
            msg.starts_with("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady"),
            "{msg}"
        );
        std::fs::write(
            dir.path().join("10-x.conflist"),
            r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(initial(&cni), None);
    }

    #[test]
    fn only_a_change_of_kind_is_published() {
        let r = |s: &str| Some(Problem::Runtime(s.into()));
        let n = Some(Problem::Network("x".into()));
        assert!(Problem::same_kind(r("a").as_ref(), r("b").as_ref()));
        assert!(Problem::same_kind(None, None));
        assert!(!Problem::same_kind(r("a").as_ref(), n.as_ref()));
        assert!(!Problem::same_kind(None, n.as_ref()));
    }
}
