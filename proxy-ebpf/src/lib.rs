//! The service proxy: turns Services and EndpointSlices into dataplane
//! rules. The nftables backend programs one table of its own
//! (`capstan-proxy`, one per address family) and never touches others.

pub mod component;
pub mod conntrack;
pub mod healthcheck;
pub mod kube_source;
pub mod metrics;
pub mod model;
pub mod nft;
pub mod plan;
pub mod proxier;
pub mod render;
pub mod runner;
pub mod source;
pub mod tracker;

pub use capstan_nodenet::Place;
pub use proxier::{HealthCheck, Proxy, ProxyConfig, ProxyEvent, SyncError, SyncReport};
