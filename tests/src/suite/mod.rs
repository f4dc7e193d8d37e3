//! The skeleton every `harness = false` lab suite shares: skip or fail on
//! missing privileges, build one lab and one fixture for all trials, run the
//! trial list, say what the server logged when something failed, tear down
//! in order. It holds no test logic and never talks the Kubernetes API.

mod control;
mod run;

pub use control::ControlSuite;
pub use run::{run, Fixture, Spec, TestFn};
