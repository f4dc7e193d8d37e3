//! `ContainerRuntime` over containerd's gRPC API: the client and its
//! channel (`client`), reading images back (`images`), pulling (`pull`),
//! the trait's implementation (`runtime_impl`). Index only.

mod client;
mod images;
mod pull;
mod runtime_impl;

pub use client::Containerd;
