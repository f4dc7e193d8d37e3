//! Latency summaries as the test server reports them (101 quantiles), and
//! how rounds of one cell are combined and judged for noise.

use serde::Serialize;

/// One run's latency summary: quantiles 0..=99 %, 99.9 %, 100 % in µs.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct LatencyRun {
    pub count: u64,
    pub quantiles_us: Vec<f64>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
}

/// Rounds of one cell merged: each quantile is the mean of the rounds'
/// (the rounds have equal duration, so this weights them alike).
#[derive(Clone, Debug, Default)]
pub struct Merged {
    pub count: u64,
    pub quantiles_us: Vec<f64>,
    pub round_p50s: Vec<f64>,
}

impl Merged {
    pub fn add(&mut self, run: &LatencyRun) {
        if run.quantiles_us.len() < 101 {
            return;
        }
        if self.quantiles_us.is_empty() {
            self.quantiles_us = vec![0.0; run.quantiles_us.len()];
        }
        let n = self.round_p50s.len() as f64;
        for (m, q) in self.quantiles_us.iter_mut().zip(&run.quantiles_us) {
            *m = (*m * n + q) / (n + 1.0);
        }
        self.round_p50s.push(run.quantiles_us[50]);
        self.count += run.count;
    }

    pub fn percentiles(&self) -> Percentiles {
        let q = |i: usize| self.quantiles_us.get(i).copied().unwrap_or(0.0);
        Percentiles {
            p50: q(50),
            p90: q(90),
            p99: q(99),
            p999: q(100),
        }
    }

    /// (max - min) / min of the per-round medians.
    pub fn spread(&self) -> f64 {
        let min = self
            .round_p50s
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let max = self.round_p50s.iter().copied().fold(0.0, f64::max);
        if min.is_finite() && min > 0.0 {
            (max - min) / min
        } else {
            0.0
        }
    }
}

/// Mean of rates measured per round.
#[derive(Clone, Debug, Default)]
pub struct MeanRate {
    sum: f64,
    n: u32,
}

impl MeanRate {
    pub fn add(&mut self, v: f64) {
        self.sum += v;
        self.n += 1;
    }
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(base: f64) -> LatencyRun {
        LatencyRun {
            count: 10,
            quantiles_us: (0..102).map(|i| base + i as f64).collect(),
        }
    }

    #[test]
    fn rounds_average_and_spread() {
        let mut m = Merged::default();
        m.add(&run(10.0));
        m.add(&run(20.0));
        assert_eq!(m.count, 20);
        assert_eq!(m.percentiles().p50, 65.0);
        assert_eq!(m.percentiles().p999, 115.0);
        // medians 60 and 70
        assert!((m.spread() - 10.0 / 60.0).abs() < 1e-9);
    }

    #[test]
    fn short_summaries_are_ignored() {
        let mut m = Merged::default();
        m.add(&LatencyRun {
            count: 0,
            quantiles_us: vec![],
        });
        assert_eq!(m.count, 0);
        assert_eq!(m.percentiles(), Percentiles::default());
    }
}
