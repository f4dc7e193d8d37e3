//! One task per pod: compares the pod's spec with the containers that
//! exist and changes only the difference (level-triggered), reacting to
//! task exits, probe results and the manager's updates. Owns the pod's
//! sandbox, containers, restarts and status; never touches another pod's.

mod adopt;
pub mod backoff;
pub mod labels;
pub mod pod;
mod start;
pub mod status;
mod sync;
pub mod terminal;
pub mod terminate;
mod volumes;
mod watch;
pub mod worker;

use tokio::sync::mpsc;

use crate::pod_worker::pod::{deleting, name_of};
use crate::pod_worker::worker::{Command, Event, Worker};
use crate::runtime::container_runtime::ContainerRuntime;

impl<R: ContainerRuntime> Worker<R> {
    /// Runs until the pod is deleted and cleaned up.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let pod_name = name_of(&self.pod);
        if let Err(e) = self.adopt().await {
            tracing::warn!(pod = %pod_name, error = %e, "adopting existing containers failed");
        }
        while !deleting(&self.pod) {
            let wake = self.sync().await;
            self.write_status().await;
            let deadline = tokio::time::Instant::from_std(wake);
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Update(p)) => self.pod = p,
                    Some(Command::Evict { message, grace }) => self.evict(message, grace),
                    Some(Command::Delete) | None => break,
                },
                Some(ev) = self.events_rx.recv() => self.handle(ev).await,
                Some(ev) = self.probe_rx.recv() => self.handle(Event::Probe(ev)).await,
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
        self.terminate().await;
        tracing::info!(pod = %pod_name, "pod removed");
    }
}
