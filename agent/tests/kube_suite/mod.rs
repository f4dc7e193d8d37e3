//! What the suites that drive a kubelet through capstan-control share: the
//! cluster bootstrap, kubectl with libtest errors, waits that show a log
//! tail, and long-running kubectl streams. An index only.
// Each suite that includes this uses a part of it.
#![allow(dead_code, unused_imports)]

mod cluster;
mod stream;
mod trials;

pub use cluster::{get_json, wait_for, Cluster};
pub use stream::{json_objects, lines, Stream};
pub use trials::{run, Case};
