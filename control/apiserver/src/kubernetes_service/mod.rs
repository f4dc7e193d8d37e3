//! The `default/kubernetes` Service and its Endpoints and EndpointSlice,
//! pointing at this API server, as kube-apiserver's bootstrap controller
//! and endpoint reconciler keep them: made at start, put back when deleted
//! or edited, the address replaced when it changes. `plan` says what the
//! objects must hold (pure); `reconcile` reads and writes them through the
//! REST layer. One server: the endpoints hold exactly this server's address.

mod plan;
mod reconcile;

pub use plan::{desired_endpoints, desired_service, desired_slice, fix, Target, NAME, NAMESPACE};
pub use reconcile::{reconcile, run, INTERVAL};
