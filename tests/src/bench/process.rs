//! Reading a process's and a sample's figures the benchmarks report:
//! resident memory and CPU time from /proc, and percentiles of a sorted
//! sample.

use std::time::{Duration, Instant};

/// Resident set size of `pid` in MiB (NaN when it cannot be read).
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(String::from))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// utime + stime of `pid` in clock ticks (fields 14 and 15 of stat; the
/// command name, field 2, may hold spaces, so count after its `)`).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// CPU used by `pid` over `window`, in percent of one core.
pub fn cpu_percent(pid: u32, window: Duration) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let (Some(a), t0) = (cpu_ticks(pid), Instant::now()) else {
        return f64::NAN;
    };
    std::thread::sleep(window);
    let Some(b) = cpu_ticks(pid) else {
        return f64::NAN;
    };
    (b.saturating_sub(a) as f64 / hz) / t0.elapsed().as_secs_f64() * 100.0
}

/// The `q` quantile (0..=1) of an ascending sample; NaN when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_own_process() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&s, 0.5), 3.0);
        assert_eq!(percentile(&s, 0.99), 5.0);
        assert!(percentile(&[], 0.5).is_nan());
        assert!(rss_mib(std::process::id()) > 0.0);
        assert!(cpu_ticks(std::process::id()).is_some());
    }
}
