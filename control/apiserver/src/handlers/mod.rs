//! The HTTP face of the API server (axum): routes, the request → verb
//! mapping, authorization before every verb, bodies and media types, and
//! responses as JSON or `Status`. The verbs themselves are `rest`'s. An
//! index: each concern has its file.

mod authorize;
pub mod node_refs;
pub mod pod_node;
pub mod request;
mod response;
mod routes;
mod serve;
pub mod target;

pub use routes::router;
