//! A small measuring harness for benchmarks that compare a subject against
//! a baseline measured in the same run. Samples of the two alternate, so
//! drift in a noisy machine's speed hits both alike; the report gives
//! medians, the 10th and 90th percentiles, and the ratio of medians.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Timings of one measured operation.
pub struct Samples {
    /// What was measured.
    pub name: &'static str,
    /// One duration per sample.
    pub times: Vec<Duration>,
}

impl Samples {
    /// No samples yet.
    pub fn new(name: &'static str) -> Self {
        Samples {
            name,
            times: Vec::new(),
        }
    }

    /// The `p` quantile (0.0 to 1.0), nearest rank.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort();
        let index = ((sorted.len() - 1) as f64 * p).round() as usize;
        sorted[index]
    }

    /// The median.
    pub fn median(&self) -> Duration {
        self.percentile(0.5)
    }

    /// One report line.
    pub fn line(&self) -> String {
        format!(
            "{:<40} median {:>10.3?}  p10 {:>10.3?}  p90 {:>10.3?}  (n={})",
            self.name,
            self.median(),
            self.percentile(0.1),
            self.percentile(0.9),
            self.times.len()
        )
    }
}

/// Times `f` once.
pub fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

/// Ratio of the subject's median to the baseline's.
pub fn ratio(subject: &Samples, baseline: &Samples) -> f64 {
    subject.median().as_secs_f64() / baseline.median().as_secs_f64()
}

/// Whether `cargo bench` asked for a quick run (`--quick` or `HYPE_BENCH_QUICK=1`).
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick") || std::env::var_os("HYPE_BENCH_QUICK").is_some()
}
