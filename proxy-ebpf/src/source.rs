//! The seam between where Services and EndpointSlices come from (a kube-rs
//! watcher in the agent, objects fed directly in tests) and the proxy: a
//! source yields add/update/delete events and says when its initial list is
//! complete. It must never program anything itself.

use crate::proxier::ProxyEvent;

/// Anything that produces proxy events.
pub trait ProxySource {
    /// The next event, or None when the source has ended.
    fn next_event(&mut self) -> impl std::future::Future<Output = Option<ProxyEvent>> + Send;
}

/// A source over a channel: whoever holds the sender feeds objects.
pub struct ChannelSource(pub tokio::sync::mpsc::Receiver<ProxyEvent>);

impl ProxySource for ChannelSource {
    async fn next_event(&mut self) -> Option<ProxyEvent> {
        self.0.recv().await
    }
}
