//! The overlay component as the agent runs it.

mod event_loop;
pub use event_loop::*;
