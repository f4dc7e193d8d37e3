//! The benchmarks behind `capstan-bench`: each builds its own lab, measures
//! Capstan beside its anchor in the same run, and reports ratios.

pub mod api;
pub mod client;
pub mod plot;
pub mod pod_latency;
pub mod pod_startup;
pub mod pods;
pub mod process;
pub mod proxy;
pub mod scheduler;
pub mod stats;
