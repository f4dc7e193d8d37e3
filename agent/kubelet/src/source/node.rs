//! The node as pod admission sees it: the labels the agent registers the
//! Node with (hostname, os, arch), then, with an API client, the Node
//! object's own labels and taints from a watch on this one Node. Never
//! writes.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::admission::predicates::NodeView;

/// The view before (or without) the API: the registration labels;
/// `synced` when there is no API to wait for.
pub fn initial(name: &str, synced: bool) -> NodeView {
    NodeView {
        name: name.to_string(),
        labels: crate::node::registration::default_labels(name),
        taints: Vec::new(),
        synced,
    }
}

fn view(name: &str, n: &Node) -> NodeView {
    let mut labels = crate::node::registration::default_labels(name);
    labels.extend(n.metadata.labels.clone().unwrap_or_default());
    NodeView {
        name: name.to_string(),
        labels,
        taints: n
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default(),
        synced: true,
    }
}

pub async fn run(client: Client, name: String, tx: watch::Sender<NodeView>) {
    let api: Api<Node> = Api::all(client);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(api, cfg).default_backoff().applied_objects();
    futures::pin_mut!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(n) => {
                tx.send_if_modified(|cur| {
                    let v = view(&name, &n);
                    let changed = *cur != v;
                    *cur = v;
                    changed
                });
            }
            Err(e) => tracing::debug!(error = %e, "node watch failed; retrying"),
        }
    }
}
