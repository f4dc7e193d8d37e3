//! Capstan's control plane: a Kubernetes-compatible API server on etcd
//! (`apiserver`), authentication and authorization (`auth`), the serving
//! edge (`server`: TLS, authentication, health, metrics), the cluster's
//! credentials (`pki`, `kubeconfig`), the `scheduler` and the
//! `controllers`, which talk to the API like any other client.

pub mod apiserver;
pub mod auth;
pub mod clients;
pub mod controllers;
pub mod informer;
pub mod kubeconfig;
pub mod pki;
pub mod scheduler;
pub mod server;
