//! The HTTP face of the API server (axum): routes, the request → verb
//! mapping, authorization before every verb, bodies and media types, and
//! responses as JSON or `Status`. The verbs themselves are `rest`'s. An
//! index: each concern has its file.

mod authorize;
mod impersonate;
pub mod node_refs;
mod non_resource;
pub mod pod_node;
mod rbac_guard;
pub mod request;
mod response;
mod routes;
mod serve;
pub mod target;

pub use routes::router;
