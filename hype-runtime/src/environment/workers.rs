//! [`Workers`]: warm worker pods for an environment's calls (issue 19).
//! A value built with `up_to(n)` and refined with `keep_warm`, `idle_for`
//! and `calls_per_worker`; checked by [`RunEnvironment::validate`]. The
//! Kubernetes runner reads it; the local and Docker runners ignore it.

use std::time::Duration;

use super::RunEnvironment;

/// How long an idle worker stays when not set ([`Workers::idle_for`]).
pub const DEFAULT_IDLE_FOR: Duration = Duration::from_secs(60);
/// The shortest [`Workers::idle_for`] accepted.
pub const MIN_IDLE_FOR: Duration = Duration::from_secs(1);
/// The longest [`Workers::idle_for`] accepted.
pub const MAX_IDLE_FOR: Duration = Duration::from_secs(60 * 60);

/// Warm workers: pods that each run many calls of one environment (and
/// one build of the program), every call a fresh `hype-run` process.
/// Give them to [`RunEnvironment::with_workers`].
///
/// ```
/// use std::time::Duration;
/// use hype_runtime::{RunEnvironment, Workers};
///
/// let workers = Workers::up_to(16).keep_warm(2).idle_for(Duration::from_secs(30));
/// let env = RunEnvironment::new("my-image:1").with_workers(workers);
/// assert_eq!(env.workers().map(Workers::max), Some(16));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Workers {
    up_to: usize,
    keep_warm: usize,
    idle_for: Duration,
    calls_per_worker: usize,
}

impl Workers {
    /// At most `n` worker pods for the environment (from 1).
    pub fn up_to(n: usize) -> Workers {
        Workers {
            up_to: n,
            keep_warm: 0,
            idle_for: DEFAULT_IDLE_FOR,
            calls_per_worker: 1,
        }
    }

    /// `k` workers (at most [`Workers::max`]) are started at the first call
    /// and kept while the submitter lives. Default 0.
    pub fn keep_warm(self, k: usize) -> Workers {
        Workers {
            keep_warm: k,
            ..self
        }
    }

    /// A worker beyond the warm ones that has run no call for this long is
    /// shut down and deleted (from 1 s to 1 h; default
    /// [`DEFAULT_IDLE_FOR`], 60 s).
    pub fn idle_for(self, idle: Duration) -> Workers {
        Workers {
            idle_for: idle,
            ..self
        }
    }

    /// How many calls one worker runs at once (from 1; default 1).
    pub fn calls_per_worker(self, c: usize) -> Workers {
        Workers {
            calls_per_worker: c,
            ..self
        }
    }

    /// The most worker pods ([`Workers::up_to`]).
    pub fn max(&self) -> usize {
        self.up_to
    }

    /// The workers kept warm ([`Workers::keep_warm`]).
    pub fn warm(&self) -> usize {
        self.keep_warm
    }

    /// How long an idle worker stays ([`Workers::idle_for`]).
    pub fn idle_time(&self) -> Duration {
        self.idle_for
    }

    /// The calls one worker runs at once ([`Workers::calls_per_worker`]).
    pub fn calls_at_once(&self) -> usize {
        self.calls_per_worker
    }

    /// What is wrong with these settings, each problem a sentence.
    pub(super) fn problems(&self, problems: &mut Vec<String>) {
        if self.up_to == 0 {
            problems.push("Workers::up_to(0): an environment with workers needs at least 1 (leave with_workers out for one pod per call)".to_owned());
        }
        if self.keep_warm > self.up_to {
            problems.push(format!(
                "Workers::keep_warm({}) is more than up_to({}): warm workers count among the workers",
                self.keep_warm, self.up_to
            ));
        }
        if self.calls_per_worker == 0 {
            problems.push(
                "Workers::calls_per_worker(0): a worker runs at least 1 call at once".to_owned(),
            );
        }
        if self.idle_for < MIN_IDLE_FOR || self.idle_for > MAX_IDLE_FOR {
            problems.push(format!(
                "Workers::idle_for({:?}) is refused: give from {MIN_IDLE_FOR:?} to {MAX_IDLE_FOR:?}",
                self.idle_for
            ));
        }
    }
}

impl RunEnvironment {
    /// Runs this environment's calls on warm workers (Kubernetes): pods
    /// that each run many calls, every call a fresh `hype-run` process,
    /// instead of one pod per call. `HYPE_WORKERS=N` gives environments
    /// that do not say `Workers::up_to(N)`. The local and Docker runners
    /// ignore it.
    pub fn with_workers(self, workers: Workers) -> Self {
        self.with(|s| s.workers = Some(workers))
    }

    /// The workers set with [`RunEnvironment::with_workers`], if any.
    pub fn workers(&self) -> Option<&Workers> {
        self.inner.workers.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn defaults_and_accessors() {
        let w = Workers::up_to(4);
        assert_eq!(
            (w.max(), w.warm(), w.idle_time(), w.calls_at_once()),
            (4, 0, Duration::from_secs(60), 1)
        );
        let w = w
            .keep_warm(2)
            .idle_for(Duration::from_secs(5))
            .calls_per_worker(3);
        assert_eq!(
            (w.max(), w.warm(), w.idle_time(), w.calls_at_once()),
            (4, 2, Duration::from_secs(5), 3)
        );
        let env = RunEnvironment::new("img").with_workers(w);
        assert_eq!(env.workers(), Some(&w));
        assert_eq!(RunEnvironment::new("img").workers(), None);
        env.validate().unwrap();
    }

    #[test]
    fn invalid_settings_are_refused_naming_each() {
        let cases = [
            (Workers::up_to(0), "up_to(0)"),
            (Workers::up_to(2).keep_warm(3), "keep_warm(3)"),
            (Workers::up_to(2).calls_per_worker(0), "calls_per_worker(0)"),
            (
                Workers::up_to(2).idle_for(Duration::from_millis(500)),
                "idle_for(500ms)",
            ),
            (
                Workers::up_to(2).idle_for(Duration::from_secs(3601)),
                "idle_for(3601s)",
            ),
        ];
        for (workers, named) in cases {
            let env = RunEnvironment::new("img").with_workers(workers);
            let Err(Error::InvalidEnvironment { problems }) = env.validate() else {
                panic!("{workers:?} should be refused");
            };
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].contains(named), "{problems:?}");
        }
    }
}
