//! A small measuring harness for benchmarks that compare a subject against
//! a baseline measured in the same run.
//!
//! [`interleave`] (and [`interleave_blocking`]) run rounds: in each, every
//! side of the comparison runs once, and the order rotates from round to
//! round ([`order`]; for a pair, the side named first runs first in even
//! rounds, the other in odd ones). So drift in a noisy machine's speed hits all
//! sides alike, and no side always runs on a machine, cache or engine its
//! partner has just warmed (or left busy). The report gives medians, the
//! 10th and 90th percentiles, and the ratio of medians; every benchmark
//! ends with a [`verdict`] line, `target met` or `target missed`.

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

/// One side's turn in a round of [`interleave`].
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    /// Which side runs: an index into the names given to [`interleave`].
    pub side: usize,
    /// The round, counting the warm-up rounds (from 0).
    pub round: usize,
    /// Whether the turn's time is recorded (false in warm-up rounds).
    pub recorded: bool,
}

/// The order in which `sides` sides run in round `round`: a rotation by
/// the round, so each side runs first in every `sides`-th round (a pair
/// alternates).
pub fn order(round: usize, sides: usize) -> impl Iterator<Item = usize> {
    (0..sides).map(move |k| (round + k) % sides)
}

/// Runs `warmup` unrecorded rounds, then `samples` recorded ones; in each
/// round, `run` once per side in [`order`], returning the time to record.
/// (The callee times its own work, so set-up and clean-up stay out.)
pub async fn interleave<const N: usize>(
    names: [&'static str; N],
    warmup: usize,
    samples: usize,
    mut run: impl AsyncFnMut(Turn) -> Duration,
) -> [Samples; N] {
    let mut out = names.map(Samples::new);
    for round in 0..warmup + samples {
        for side in order(round, N) {
            let turn = Turn {
                side,
                round,
                recorded: round >= warmup,
            };
            let took = run(turn).await;
            if turn.recorded {
                out[side].times.push(took);
            }
        }
    }
    out
}

/// [`interleave`] for blocking work.
pub fn interleave_blocking<const N: usize>(
    names: [&'static str; N],
    warmup: usize,
    samples: usize,
    mut run: impl FnMut(Turn) -> Duration,
) -> [Samples; N] {
    let mut out = names.map(Samples::new);
    for round in 0..warmup + samples {
        for side in order(round, N) {
            let turn = Turn {
                side,
                round,
                recorded: round >= warmup,
            };
            let took = run(turn);
            if turn.recorded {
                out[side].times.push(took);
            }
        }
    }
    out
}

/// What the header of a report says about the rounds.
pub fn rounds_text(sides: usize, warmup: usize, samples: usize) -> String {
    let how = if sides == 2 {
        "interleaved, alternating which side runs first"
    } else {
        "interleaved, rotating which side runs first"
    };
    let plural = if warmup == 1 { "" } else { "s" };
    format!("{samples} samples per side, {how}, after {warmup} warm-up round{plural}")
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

/// Prints the benchmark's last line: `target met: …` or `target missed: …`
/// (printed, not asserted: a noisy machine should not fail a run).
pub fn verdict(met: bool, what: &str) {
    let word = if met { "met" } else { "missed" };
    println!("target {word}: {what}");
}

/// Whether `cargo bench` asked for a quick run (`--quick` or `HYPE_BENCH_QUICK=1`).
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick") || std::env::var_os("HYPE_BENCH_QUICK").is_some()
}

/// Whether a request in the Kubernetes test double's log is one of the
/// calls' (creating, deleting, following a pod), as the requests-per-call
/// targets count them: not the shared watch, and not the session's own
/// requests, one per submitter per interval whatever the number of calls
/// (the Lease's renewal every 20 s, the watch's safety-net list of the
/// session's pods every 30 s).
pub fn per_call(method: &str, path: &str) -> bool {
    let session = path.contains("/leases")
        || (method == "GET" && path.starts_with("/api/v1/namespaces/") && path.contains("/pods?"));
    !path.contains("watch=") && !session
}
