//! The agent's HTTPS API (kubelet's port 10250): `/containerLogs/...` for
//! `kubectl logs` through the API server, and `/healthz`. TLS and client
//! certificates in `tls`/`authn`; it reads log files and asks the runtime
//! whether a container runs, and never changes anything on the node. It
//! depends on the kubelet (paths, the runtime's answers), never the reverse.

pub mod authn;
pub mod container_logs;
pub mod cri_log;
pub mod options;
pub mod routes;
pub mod serve;
pub mod tls;

pub use options::{Options, ServerError, DEFAULT_PORT};
pub use serve::{bind, Server};
