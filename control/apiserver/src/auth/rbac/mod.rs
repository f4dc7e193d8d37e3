//! Kubernetes RBAC (rbac.authorization.k8s.io/v1) for capstan-control:
//! rule matching (`rule`), the in-memory policy fed by the server's own
//! etcd watch (`policy`, `feed`), the decision (`authorizer`), escalation
//! prevention (`covers`, `escalation`) and the bootstrap roles every
//! cluster starts with (`bootstrap`). No etcd read happens per request.

pub mod aggregate;
pub mod authorizer;
pub mod bootstrap;
pub mod covers;
pub mod escalation;
pub mod feed;
pub mod names;
pub mod policy;
pub mod rule;

pub use authorizer::{authorize, rules_review};
pub use policy::Policy;
