//! Restart back-off per container, as kubelet does it: the first restart is
//! immediate, then 10 s doubling to 5 min; an attempt that ran 10 min
//! resets it. Pure: callers pass the clock.

use std::time::{Duration, Instant};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
pub const RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, Default)]
pub struct Backoff {
    /// Delay in force since the latest exit (None: no exit yet).
    delay: Option<Duration>,
    since: Option<Instant>,
}

impl Backoff {
    /// Records an exit at `now` of an attempt that ran `ran`; returns the
    /// delay before the next start.
    pub fn exited(&mut self, ran: Duration, now: Instant) -> Duration {
        let next = match self.delay {
            _ if ran >= RESET_AFTER => Duration::ZERO,
            None => Duration::ZERO,
            Some(d) if d.is_zero() => INITIAL,
            Some(d) => (d * 2).min(MAX),
        };
        self.delay = Some(next);
        self.since = Some(now);
        next
    }

    /// When the next start may happen; None when it may happen now.
    pub fn ready_at(&self, now: Instant) -> Option<Instant> {
        let at = self.since? + self.delay?;
        (at > now).then_some(at)
    }

    /// Records a failed image pull at `now`: kubelet's image back-off waits
    /// 10 s after the first failure, doubling to 5 min.
    pub fn failed(&mut self, now: Instant) -> Duration {
        let next = match self.delay {
            Some(d) if !d.is_zero() => (d * 2).min(MAX),
            _ => INITIAL,
        };
        self.delay = Some(next);
        self.since = Some(now);
        next
    }

    pub fn delay(&self) -> Duration {
        self.delay.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_failures_wait_from_the_first_and_double() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        let seq: Vec<u64> = (0..7).map(|_| b.failed(t0).as_secs()).collect();
        assert_eq!(seq, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.ready_at(t0), Some(t0 + MAX));
    }

    #[test]
    fn first_restart_free_then_doubling_capped_and_reset() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert_eq!(b.ready_at(t0), None);
        let short = Duration::from_secs(1);
        assert_eq!(b.exited(short, t0), Duration::ZERO);
        assert_eq!(b.ready_at(t0), None);
        let seq: Vec<u64> = (0..7).map(|_| b.exited(short, t0).as_secs()).collect();
        assert_eq!(seq, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.ready_at(t0), Some(t0 + MAX));
        assert_eq!(b.ready_at(t0 + MAX), None);
        assert_eq!(b.exited(RESET_AFTER, t0), Duration::ZERO);
        assert_eq!(b.exited(short, t0), INITIAL);
    }
}
