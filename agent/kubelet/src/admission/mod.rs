//! Pod admission, kubelet's admit handlers in kubelet's order: first the
//! eviction handler (no new pods under pressure, see `pressure`), then the
//! predicates (`fit`: requests against allocatable minus the pods already
//! admitted; `predicates`: node affinity, node name, host ports, NoExecute
//! taints). A pod is judged once per UID, before its worker starts; a
//! refused pod never runs and is reported Failed with the handler's reason.
//! Decides only: the manager starts or refuses the worker.

pub mod admit;
pub mod fit;
pub mod predicates;
pub mod pressure;
pub mod request;
