//! Service-account tokens for projected volumes, as kubelet's token
//! manager: TokenRequest with the node's credentials (`request`), when a
//! token is due for replacement (`refresh`, pure) and the tokens one pod
//! holds with their retry state (`pod_tokens`). Index only.

pub mod pod_tokens;
pub mod refresh;
pub mod request;
