//! Capstan's control plane: a Kubernetes-compatible API server on etcd
//! (`apiserver`), authentication and authorization (`auth`), the serving
//! edge (`server`: TLS, authentication, health, metrics), the cluster's
//! credentials (`pki`, `kubeconfig`), and later the scheduler and
//! controllers, which talk to the API like any other client.

pub mod apiserver;
pub mod auth;
pub mod kubeconfig;
pub mod pki;
pub mod server;
