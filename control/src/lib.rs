//! Capstan's control plane: a Kubernetes-compatible API server on etcd
//! (`apiserver`), authentication and authorization (`auth`), and later the
//! scheduler and controllers, which talk to the API like any other client.

pub mod apiserver;
pub mod auth;
