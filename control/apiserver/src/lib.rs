//! capstan-apiserver: the Kubernetes REST API on etcd (storage, one
//! registry strategy per resource, watch, patch, validation and defaulting),
//! authentication and authorization (`auth`), the serving edge (`server`:
//! TLS, authentication, health, metrics) and the cluster's credentials
//! (`pki`, `kubeconfig`). It trusts the `auth::User` that the edge put in the
//! request's extensions and asks an `auth::Authorizer` before every verb.
//!
//! Use: `let api = Arc::new(ApiServer::new(etcd, ApiConfig { .. }, authorizer));
//! api.bootstrap().await?; let app = router(api);` then mount `app` behind
//! authentication (which inserts `auth::User` into request extensions).

pub mod admission;
mod api_server;
pub mod auth;
pub mod discovery;
pub mod handlers;
pub mod kubeconfig;
pub mod kubernetes_service;
pub mod logs;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod protobuf;
pub mod registry;
pub mod resources;
pub mod rest;
pub mod review_answer;
pub mod reviews;
pub mod selectors;
pub mod server;
pub mod status;
pub mod storage;
pub mod subject_review;
pub mod table;
pub mod token_request;
pub mod token_review;
pub mod watch;

pub use api_server::{ApiConfig, ApiServer, SYSTEM_NAMESPACES};
pub use handlers::router;
pub use status::ApiError;
