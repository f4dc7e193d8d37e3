//! Event-driven waiting for tests: poll a condition with a short, growing
//! pause until it holds or a deadline passes. The one place tests wait; a
//! suite adds its own context (a log tail) to the error, never its own loop.

use std::time::{Duration, Instant};

/// Polls `f` until it yields `Some`, for at most `within`.
pub fn wait_for<T>(
    what: &str,
    within: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > within {
            return Err(format!("timed out after {within:?} waiting for {what}"));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Polls `f` until it is true, for at most `within`; how long it took.
pub fn wait_until(
    what: &str,
    within: Duration,
    mut f: impl FnMut() -> bool,
) -> Result<Duration, String> {
    let start = Instant::now();
    wait_for(what, within, || f().then_some(()))?;
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_the_value_once_the_condition_holds() {
        let mut n = 0;
        let v = wait_for("n reaches 3", Duration::from_secs(5), || {
            n += 1;
            (n >= 3).then_some(n)
        });
        assert_eq!(v, Ok(3));
    }

    #[test]
    fn times_out_naming_what_it_waited_for() {
        let err = wait_until("never", Duration::from_millis(20), || false).unwrap_err();
        assert!(err.contains("waiting for never"), "{err}");
    }
}
