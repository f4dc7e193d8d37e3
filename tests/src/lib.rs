//! The Capstan lab: multi-node clusters in network namespaces on one
//! machine, with real etcd and containerd, for integration and end-to-end
//! tests, the local cluster script and `capstan-bench`. It never changes
//! the host namespace's links, routes or nftables.

pub mod bins;
pub mod cli;
pub mod cmd;
pub mod containerd;
pub mod control;
pub mod daemon;
pub mod error;
pub mod etcd;
pub mod forward;
pub mod health;
pub mod image;
pub mod kubectl;
pub mod lab;
pub mod lab_dir;
pub mod mntns;
pub mod mounts;
pub mod netns;
pub mod privileged;
pub mod registry;
pub mod simnode;
pub mod state;
pub mod suite;
pub mod sweep;
pub mod veth;
pub mod wait;

pub use error::LabError;
pub use lab::{Lab, LabBuilder, Node};
pub use netns::Netns;
pub mod bench;
pub mod bench_cni;
