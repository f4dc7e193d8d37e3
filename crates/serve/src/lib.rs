//! What Capstan's processes share at their edges: logging set-up, TLS
//! material, credential files and Prometheus exposition. Owns no metric and
//! no route besides `/metrics`; must never import another Capstan crate.

pub mod files;
pub mod logging;
pub mod metrics;
pub mod tls;
