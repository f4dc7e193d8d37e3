//! The container runtime as the pod workers see it: a narrow trait over
//! images, containers and tasks, so worker logic never speaks gRPC. The
//! real implementation is `containerd`; `image` resolves image metadata.

pub mod container_runtime;
pub mod containerd;
pub mod health;
pub mod image;
pub mod registry;
