//! The summary of a fan-out: calls done, failed and retried, the wall
//! time, p50, p95 and max of each phase, and the slowest calls. Memory
//! stays bounded whatever the number of calls: percentiles come from up to
//! [`SAMPLES`] calls per phase (all of them below that, a uniform sample
//! above), the maximum and the slowest calls are exact.

use std::fmt;
use std::time::Duration;

use super::{Phase, Phases, micros};

/// At most this many calls' durations are kept per phase.
pub(crate) const SAMPLES: usize = 1024;
/// How many of the slowest calls the summary names.
const SLOWEST: usize = 3;

/// The durations of one phase: a bounded sample and the exact maximum.
#[derive(Debug, Clone, Default)]
struct Sample {
    micros: Vec<u64>,
    seen: u64,
    max: u64,
    /// The reservoir's pseudo-random state (deterministic).
    state: u64,
}

impl Sample {
    fn add(&mut self, value: u64) {
        self.seen += 1;
        self.max = self.max.max(value);
        if self.micros.len() < SAMPLES {
            self.micros.push(value);
            return;
        }
        // Reservoir sampling: keep each value with probability SAMPLES/seen.
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let slot = (self.state >> 33) % self.seen;
        if let Some(kept) = self.micros.get_mut(slot as usize) {
            *kept = value;
        }
    }

    /// The `p`th percentile (nearest rank), `p` in 0..=100.
    fn percentile(&self, p: u64) -> Option<Duration> {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let n = sorted.len() as u64;
        if n == 0 {
            return None;
        }
        let rank = (p * n).div_ceil(100).clamp(1, n);
        Some(Duration::from_micros(sorted[(rank - 1) as usize]))
    }
}

/// What a fan-out did, from the phases of its calls: printed when it ends
/// with progress on, else a `tracing` event at info level
/// ([`crate::Map::summary`] gives it to code).
#[derive(Debug, Clone)]
pub struct Summary {
    function: String,
    done: u64,
    failed: u64,
    retried: u64,
    wall: Duration,
    phases: [Sample; Phase::ALL.len()],
    slowest: Vec<(String, Duration)>,
}

impl Summary {
    /// The summary of a fan-out of `function`, with no call yet.
    pub(crate) fn new(function: &str) -> Summary {
        Summary {
            function: function.to_owned(),
            done: 0,
            failed: 0,
            retried: 0,
            wall: Duration::ZERO,
            phases: Default::default(),
            slowest: Vec::new(),
        }
    }

    /// A call ended, successfully (`ok`) or not, with these phases (none
    /// for a call that never ran).
    pub(crate) fn add(&mut self, phases: Option<&Phases>, ok: bool) {
        if ok {
            self.done += 1;
        } else {
            self.failed += 1;
        }
        let Some(phases) = phases else {
            return;
        };
        if phases.attempts().len() > 1 {
            self.retried += 1;
        }
        for phase in Phase::ALL {
            if let Some(duration) = phases.duration(phase) {
                self.phases[phase.index()].add(micros(duration));
            }
        }
        if let Some(last) = phases.attempts().last() {
            let busy = phases.busy();
            self.slowest.push((last.execution_id().to_owned(), busy));
            self.slowest.sort_by_key(|s| std::cmp::Reverse(s.1));
            self.slowest.truncate(SLOWEST);
        }
    }

    /// The fan-out ended after `wall`.
    pub(crate) fn ended(&mut self, wall: Duration) {
        self.wall = wall;
    }

    /// The function's ID.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// How many calls succeeded.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// How many calls failed.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// How many calls ran more than once.
    pub fn retried(&self) -> u64 {
        self.retried
    }

    /// How long the fan-out took.
    pub fn wall(&self) -> Duration {
        self.wall
    }

    /// The `p`th percentile (0 to 100, nearest rank) of `phase`'s
    /// durations per call, if any call recorded it.
    pub fn percentile(&self, phase: Phase, p: u8) -> Option<Duration> {
        self.phases[phase.index()].percentile(u64::from(p.min(100)))
    }

    /// The longest `phase` took in one call.
    pub fn max(&self, phase: Phase) -> Option<Duration> {
        let sample = &self.phases[phase.index()];
        (sample.seen > 0).then(|| Duration::from_micros(sample.max))
    }

    /// The slowest calls (up to 3), slowest first: the execution ID of
    /// their last attempt and how long they took once they had a slot.
    pub fn slowest(&self) -> &[(String, Duration)] {
        &self.slowest
    }
}

/// The block printed at a fan-out's end:
///
/// ```text
/// hype: map of demo::add: 100 calls: 98 done, 2 failed, 3 retried; wall time 12.30s
///   phase                  p50       p95       max
///   queued               1.20s     3.40s     3.90s
///   function           850.0ms    1.10s     1.30s
///   slowest: hype-add-x1 4.21s, hype-add-y2 3.90s, hype-add-z3 3.10s
/// ```
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "hype: map of {}: {} calls: {} done, {} failed, {} retried; wall time {}",
            self.function,
            self.done + self.failed,
            self.done,
            self.failed,
            self.retried,
            human(self.wall)
        )?;
        writeln!(
            f,
            "  {:<18}{:>10}{:>10}{:>10}",
            "phase", "p50", "p95", "max"
        )?;
        for phase in Phase::ALL {
            let (Some(p50), Some(p95), Some(max)) = (
                self.percentile(phase, 50),
                self.percentile(phase, 95),
                self.max(phase),
            ) else {
                continue;
            };
            writeln!(
                f,
                "  {:<18}{:>10}{:>10}{:>10}",
                phase.name(),
                human(p50),
                human(p95),
                human(max)
            )?;
        }
        let slowest: Vec<String> = self
            .slowest
            .iter()
            .map(|(id, took)| format!("{id} {}", human(*took)))
            .collect();
        if slowest.is_empty() {
            write!(f, "  slowest: none ran")
        } else {
            write!(f, "  slowest: {}", slowest.join(", "))
        }
    }
}

/// A duration for people: `850µs`, `12.3ms`, `1.23s`, `2m03s`.
fn human(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1_000.0)
    } else if us < 60_000_000 {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    } else {
        let secs = d.as_secs();
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::phases::tests::attempt_of;
    use std::time::Instant;

    fn call(id: &str, queued: u64, function: u64) -> Phases {
        let mut phases = Phases::new("demo::add");
        phases.push(attempt_of(
            id,
            1,
            Instant::now(),
            &[
                (Phase::Queued, queued),
                (Phase::ContainerStart, 5),
                (Phase::Function, function),
            ],
            None,
        ));
        phases
    }

    #[test]
    fn the_block_has_counts_percentiles_and_the_slowest_calls() {
        let mut summary = Summary::new("demo::add");
        for i in 0..20u64 {
            summary.add(
                Some(&call(&format!("hype-add-{i:02}"), i, 100 + i * 10)),
                true,
            );
        }
        let mut retried = call("hype-add-r1", 0, 50);
        retried.push(attempt_of(
            "hype-add-r2",
            2,
            Instant::now(),
            &[(Phase::Function, 50)],
            None,
        ));
        summary.add(Some(&retried), true);
        let mut failed = Phases::new("demo::add");
        failed.push(attempt_of(
            "hype-add-f1",
            1,
            Instant::now(),
            &[(Phase::Queued, 1)],
            Some(ErrorKind::Lost),
        ));
        summary.add(Some(&failed), false);
        summary.add(None, false);
        summary.ended(Duration::from_millis(12_345));

        let text = summary.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "hype: map of demo::add: 23 calls: 21 done, 2 failed, 1 retried; wall time 12.35s"
        );
        assert_eq!(
            lines[1],
            "  phase                    p50       p95       max"
        );
        // 22 calls queued 0..=19 ms, 0 ms (the retried one) and 1 ms (the
        // failed one): the 11th and 21st of them sorted are 8 and 18 ms.
        assert_eq!(
            lines[2],
            "  queued                 8.0ms    18.0ms    19.0ms"
        );
        assert_eq!(
            lines[3],
            "  container start        5.0ms     5.0ms     5.0ms"
        );
        // The retried call's function ran twice: 100 ms in all.
        assert_eq!(
            lines[4],
            "  function             190.0ms   280.0ms   290.0ms"
        );
        assert_eq!(
            lines[5],
            "  slowest: hype-add-19 295.0ms, hype-add-18 285.0ms, hype-add-17 275.0ms"
        );
        assert_eq!(lines.len(), 6, "{text}");
        assert_eq!(summary.max(Phase::Scheduling), None);
    }

    #[test]
    fn the_sample_stays_bounded_and_keeps_the_exact_maximum() {
        let mut sample = Sample::default();
        for value in 0..10 * SAMPLES as u64 {
            sample.add(value);
        }
        assert_eq!(sample.micros.len(), SAMPLES);
        assert_eq!(sample.max, 10 * SAMPLES as u64 - 1);
        let p50 = sample.percentile(50).unwrap().as_micros() as u64;
        // A uniform sample of 0..10240: its median is near 5120.
        assert!((3_000..7_000).contains(&p50), "{p50}");
    }

    #[test]
    fn durations_read_for_people() {
        assert_eq!(human(Duration::from_micros(850)), "850µs");
        assert_eq!(human(Duration::from_micros(12_340)), "12.3ms");
        assert_eq!(human(Duration::from_millis(1_234)), "1.23s");
        assert_eq!(human(Duration::from_secs(123)), "2m03s");
    }
}
