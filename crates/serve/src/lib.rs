//! What Capstan's processes share at their edges: logging set-up, TLS
//! material, credential files, Prometheus exposition and the health
//! endpoint. Owns no metric and no route besides `/metrics`, `/healthz` and
//! `/readyz`; must never import another Capstan crate.

pub mod files;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod tls;
