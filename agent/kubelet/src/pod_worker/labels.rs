//! Times as the worker records them in container labels (seconds since
//! the epoch, millisecond precision), so a restarted agent reads them back.
//! Pure.

use std::time::{Duration, SystemTime};

pub(super) fn system_time_label(s: &str) -> Option<SystemTime> {
    let secs: f64 = s.parse().ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs_f64(secs))
}

pub(super) fn label_time(t: SystemTime) -> String {
    format!(
        "{:.3}",
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    )
}
