//! The sending half of kubelet's event recorder: Events queue to one task
//! that correlates them and creates or patches them in the API one at a
//! time (client-go's broadcaster runs its sink serially too, which is what
//! lets a quick repeat patch the object the first one created).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::mpsc;

use super::correlator::{Correlated, Correlator};

/// client-go's broadcaster queue length; a full queue drops the Event
/// rather than make a pod worker wait for the API.
const QUEUE: usize = 1000;

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Event>,
}

impl Recorder {
    /// Starts the sending task (on the current tokio runtime); it ends when
    /// every `Recorder` clone is gone.
    pub fn start(client: Client) -> Recorder {
        let (tx, mut rx) = mpsc::channel::<Event>(QUEUE);
        tokio::spawn(async move {
            let mut correlator = Correlator::default();
            while let Some(event) = rx.recv().await {
                let Some(c) = correlator.correlate(event, Timestamp::now()) else {
                    tracing::debug!("event dropped by the spam filter");
                    continue;
                };
                if let Some(stored) = send(&client, c).await {
                    correlator.update_state(&stored);
                }
            }
        });
        Recorder { tx }
    }

    /// Queues `event`; never waits.
    pub fn record(&self, event: Event) {
        if let Err(e) = self.tx.try_send(event) {
            tracing::debug!(error = %e, "event queue full or closed; event dropped");
        }
    }
}

/// Patches the earlier object for a repeat, creates otherwise (or when the
/// earlier object is gone, e.g. expired by the API's event TTL), as
/// client-go's `recordEvent`. Not retried: an Event is best effort.
async fn send(client: &Client, c: Correlated) -> Option<Event> {
    let Correlated { mut event, patch } = c;
    let ns = event
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    let reason = event.reason.clone().unwrap_or_default();
    if let (Some(patch), Some(name)) = (patch, event.metadata.name.clone()) {
        match api
            .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(stored) => return Some(stored),
            Err(kube::Error::Api(r)) if r.code == 404 => {}
            Err(e) => {
                tracing::debug!(%reason, error = %e, "patching an event failed");
                return None;
            }
        }
    }
    event.metadata.resource_version = None;
    match api.create(&PostParams::default(), &event).await {
        Ok(stored) => Some(stored),
        Err(e) => {
            tracing::debug!(%reason, error = %e, "recording an event failed");
            None
        }
    }
}
