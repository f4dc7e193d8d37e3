//! The kube subnet manager's lease watch: a watch of every Node turned
//! into lease events, resumed when the server ends it and re-listed (as a
//! `Resync`) when it falls out of the server's window.

use futures::TryStreamExt;
use ipnetwork::Ipv4Network;
use k8s_openapi::api::core::v1::Node;
use kube::api::WatchEvent;
use tokio::sync::mpsc;

use crate::subnet::kube::annotations::{lease_from_node, node_subnet, revision};
use crate::subnet::kube::nodes::{unavailable, waiting, KubeSubnetManager};
use crate::subnet::lease::{LeaseEvent, LeaseList, StoreError, WatchItem};

impl KubeSubnetManager {
    pub(super) async fn watch_nodes(
        &self,
        revision_from: i64,
    ) -> Result<mpsc::Receiver<Result<WatchItem, StoreError>>, StoreError> {
        let (tx, rx) = mpsc::channel(64);
        // The overlay asks "from this revision on"; Kubernetes watches
        // deliver what comes *after* a resourceVersion.
        let after = (revision_from - 1).max(0);
        // Opened here so that a refused watch is an error to the caller now.
        let first = self.open_watch(after).await?;
        let mut known = Known::default();
        known.reset(&self.list_leases().await?);
        let me = KubeSubnetManager {
            nodes: self.nodes.clone(),
            node_name: self.node_name.clone(),
            net_conf: self.net_conf.clone(),
        };
        tokio::spawn(async move {
            let mut stream = first;
            // The last revision seen: a resumed watch starts after it.
            let mut rev = after;
            loop {
                let event = match stream.try_next().await {
                    Ok(Some(ev)) => ev,
                    // The server ends every watch after its timeout: resume.
                    Ok(None) => match me.open_watch(rev).await {
                        Ok(s) => {
                            stream = s;
                            continue;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    },
                    Err(e) => {
                        let _ = tx.send(Err(unavailable("watch nodes", e))).await;
                        return;
                    }
                };
                let item = match event {
                    WatchEvent::Added(n) | WatchEvent::Modified(n) => {
                        rev = revision(n.metadata.resource_version.as_deref()).max(rev);
                        Ok(WatchItem::Events {
                            events: known.put(&n),
                            revision: rev,
                        })
                    }
                    WatchEvent::Deleted(n) => {
                        rev = revision(n.metadata.resource_version.as_deref()).max(rev);
                        Ok(WatchItem::Events {
                            events: known.delete(&n),
                            revision: rev,
                        })
                    }
                    WatchEvent::Bookmark(b) => {
                        rev = revision(Some(&b.metadata.resource_version)).max(rev);
                        Ok(WatchItem::Events {
                            events: Vec::new(),
                            revision: rev,
                        })
                    }
                    // Fell out of the server's window: hand over a full list
                    // and go on from its revision.
                    WatchEvent::Error(e) if e.code == 410 => match me.list_leases().await {
                        Ok(list) => {
                            known.reset(&list);
                            rev = list.revision;
                            match me.open_watch(rev).await {
                                Ok(s) => {
                                    stream = s;
                                    Ok(WatchItem::Resync(list))
                                }
                                Err(e) => Err(e),
                            }
                        }
                        Err(e) => Err(e),
                    },
                    WatchEvent::Error(e) => Err(waiting("watch nodes", e.message)),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// The subnet each node stood for at the last event: a node that loses its
/// CIDR or annotations, or gets another CIDR, is a delete of the old one.
#[derive(Default)]
struct Known(std::collections::HashMap<String, Ipv4Network>);

impl Known {
    fn reset(&mut self, list: &LeaseList) {
        self.0 = list
            .leases
            .iter()
            .map(|l| (l.attrs.node_name.clone(), l.subnet))
            .collect();
    }

    fn put(&mut self, n: &Node) -> Vec<LeaseEvent> {
        let name = n.metadata.name.clone().unwrap_or_default();
        let mut events = Vec::new();
        match lease_from_node(n) {
            Some(l) => {
                if let Some(old) = self.0.insert(name, l.subnet) {
                    if old != l.subnet {
                        events.push(LeaseEvent::Delete(old));
                    }
                }
                events.push(LeaseEvent::Put(l));
            }
            None => events.extend(self.0.remove(&name).map(LeaseEvent::Delete)),
        }
        events
    }

    fn delete(&mut self, n: &Node) -> Vec<LeaseEvent> {
        let name = n.metadata.name.clone().unwrap_or_default();
        self.0
            .remove(&name)
            .or_else(|| node_subnet(n))
            .map(LeaseEvent::Delete)
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subnet::kube::annotations::{ANN_BACKEND_TYPE, ANN_PUBLIC_IP};
    use crate::subnet::kube::fixtures::node;

    #[test]
    fn known_turns_node_changes_into_lease_events() {
        let ann = [
            (ANN_PUBLIC_IP, "192.168.250.11"),
            (ANN_BACKEND_TYPE, "vxlan"),
        ];
        let mut k = Known::default();
        let a = node("n1", Some("10.244.1.0/24"), &ann);
        assert!(matches!(k.put(&a)[..], [LeaseEvent::Put(_)]));
        // A new CIDR deletes the old subnet first.
        let b = node("n1", Some("10.244.2.0/24"), &ann);
        let ev = k.put(&b);
        assert_eq!(ev[0], LeaseEvent::Delete("10.244.1.0/24".parse().unwrap()));
        assert!(matches!(ev[1], LeaseEvent::Put(_)));
        // Losing the annotations makes it no peer any more.
        let c = node("n1", Some("10.244.2.0/24"), &[]);
        assert_eq!(
            k.put(&c),
            vec![LeaseEvent::Delete("10.244.2.0/24".parse().unwrap())]
        );
        assert!(k.put(&c).is_empty());
        k.put(&b);
        assert_eq!(
            k.delete(&b),
            vec![LeaseEvent::Delete("10.244.2.0/24".parse().unwrap())]
        );
    }
}
