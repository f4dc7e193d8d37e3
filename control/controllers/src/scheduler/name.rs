//! The scheduler's name, as pods ask for it (`spec.schedulerName`) and as
//! its events report it. A leaf both the loop and the reporter read.

/// Kubernetes' default scheduler name; pods that name another scheduler are
/// left alone.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
