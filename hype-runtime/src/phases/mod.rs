//! Phases of a call: where its time went, attempt by attempt.
//!
//! A runner stamps what it sees of one execution on the job's
//! [`PhaseRecorder`] (the create request sent, the pod scheduled, the
//! container started, the outcome read, the execution removed), as
//! `Instant`s of the caller's clock. `hype-run` reports its own steps as
//! durations measured on its machine ([`crate::wire::Timings`]): they are
//! placed after the start the caller saw, by their length, never by
//! subtracting two machines' clocks. When the attempt ends, the marks
//! become [`Interval`]s, one per [`Phase`] the backend knows, in time
//! order and never overlapping; an interval a backend cannot see is left
//! out, never invented.
//!
//! `summary` condenses a fan-out's phases into the block printed at its
//! end; `timeline` writes them as a Chrome trace-event file.

mod intervals;
mod summary;
mod timeline;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use self::intervals::intervals;
use crate::error::ErrorKind;
use crate::wire::Timings;

pub use self::summary::Summary;
pub(crate) use self::timeline::Timeline;

/// Waiting this long to be scheduled gets a warning: the cluster is
/// probably adding nodes.
const SCHEDULING_WARNING: Duration = Duration::from_secs(30);

/// One phase of an attempt, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Phase {
    /// Waiting for a fan-out's concurrency slot, then preparing the call
    /// (encoding, staging its arguments), until the create request.
    Queued,
    /// From the create request to the pod's `PodScheduled` condition.
    Scheduling,
    /// From scheduled (or, on Docker, the start of a pull) until the image
    /// is on the node and the container is being created.
    ImagePull,
    /// Until the container (or child process) is running.
    ContainerStart,
    /// The launcher fetching and verifying the shipped executable, or
    /// finding it cached (as it measured it).
    ExecutableFetch,
    /// The function itself (as `hype-run` measured it).
    Function,
    /// From the execution's end until its termination message is read.
    OutcomeRead,
    /// Removing the pod or container.
    Cleanup,
}

impl Phase {
    /// Every phase, in time order.
    pub const ALL: [Phase; 8] = [
        Phase::Queued,
        Phase::Scheduling,
        Phase::ImagePull,
        Phase::ContainerStart,
        Phase::ExecutableFetch,
        Phase::Function,
        Phase::OutcomeRead,
        Phase::Cleanup,
    ];

    /// The phase's name, as the timeline's slices and the summary say it:
    /// `queued`, `scheduling`, `image pull`, `container start`,
    /// `executable fetch`, `function`, `outcome read`, `cleanup`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Scheduling => "scheduling",
            Phase::ImagePull => "image pull",
            Phase::ContainerStart => "container start",
            Phase::ExecutableFetch => "executable fetch",
            Phase::Function => "function",
            Phase::OutcomeRead => "outcome read",
            Phase::Cleanup => "cleanup",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a runner saw happen to an execution (an instant of the caller's
/// clock each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// The create request was sent (process spawned, container created).
    Submitted,
    /// The pod's `PodScheduled` condition was seen true.
    Scheduled,
    /// A missing image began to be pulled (Docker).
    PullStarted,
    /// The image is ready: the container is no longer `ContainerCreating`,
    /// or a pull ended.
    ImageReady,
    /// The container (or process) is running.
    Started,
    /// The execution ended.
    Exited,
    /// Its termination message was read.
    OutcomeRead,
    /// The pod or container was removed.
    CleanedUp,
}

const MARKS: usize = 8;

/// The marks of one attempt.
#[derive(Debug, Clone, Copy, Default)]
struct Marks {
    at: [Option<Instant>; MARKS],
    remote: Option<Timings>,
}

/// Where a runner stamps what it sees of one execution: shared between
/// the submitter and the runner (clones share the marks). The first stamp
/// of each mark counts.
#[derive(Debug, Clone, Default)]
pub struct PhaseRecorder(Arc<Mutex<Marks>>);

impl PhaseRecorder {
    fn marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stamps `mark` now, unless it was stamped already.
    pub(crate) fn mark(&self, mark: Mark) {
        let now = Instant::now();
        let mut marks = self.marks();
        let slot = &mut marks.at[mark as usize];
        if slot.is_some() {
            return;
        }
        *slot = Some(now);
        if mark == Mark::Scheduled
            && let Some(waited) = waited_for_nodes(marks.at[Mark::Submitted as usize], now)
        {
            tracing::warn!(
                phase = Phase::Scheduling.name(),
                waited = ?waited,
                "the execution waited {}s to be scheduled: waiting for nodes?",
                waited.as_secs()
            );
        }
    }

    /// Records what `hype-run` reported of its own steps.
    pub(crate) fn remote(&self, timings: Timings) {
        self.marks().remote = Some(timings);
    }

    /// The attempt's phases: it began at `began` (its queueing included)
    /// and ended at `ended`.
    pub(crate) fn finish(
        &self,
        execution_id: &str,
        attempt: u32,
        began: Instant,
        ended: Instant,
        error: Option<ErrorKind>,
    ) -> AttemptPhases {
        let marks = *self.marks();
        AttemptPhases {
            execution_id: execution_id.to_owned(),
            attempt,
            began,
            ended,
            intervals: intervals(began, ended, &marks),
            error,
        }
    }
}

/// One phase of an attempt: when it started (since the attempt began) and
/// how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Interval {
    /// Which phase.
    pub phase: Phase,
    /// When it started, counted from the attempt's start.
    pub start: Duration,
    /// How long it took.
    pub duration: Duration,
}

/// The phases of one attempt (one execution) of a call.
#[derive(Debug, Clone)]
pub struct AttemptPhases {
    execution_id: String,
    attempt: u32,
    began: Instant,
    ended: Instant,
    intervals: Vec<Interval>,
    error: Option<ErrorKind>,
}

impl AttemptPhases {
    /// The execution (pod, container, process) of this attempt.
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// Which attempt: 1 for the first, 2 for the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the attempt began (a fan-out's first attempt: when the fan-out
    /// began, since the call waited for a slot from then).
    pub fn began(&self) -> Instant {
        self.began
    }

    /// How long the attempt took, start to end.
    pub fn took(&self) -> Duration {
        self.ended.saturating_duration_since(self.began)
    }

    /// The phases the backend knows, in time order, none overlapping.
    pub fn intervals(&self) -> &[Interval] {
        &self.intervals
    }

    /// How long `phase` took, if it was recorded.
    pub fn duration(&self, phase: Phase) -> Option<Duration> {
        self.intervals
            .iter()
            .find(|i| i.phase == phase)
            .map(|i| i.duration)
    }

    /// How the attempt failed, if it did.
    pub fn error(&self) -> Option<ErrorKind> {
        self.error
    }

    /// Emits one debug event per phase.
    pub(crate) fn trace(&self) {
        for interval in &self.intervals {
            tracing::debug!(
                phase = interval.phase.name(),
                micros = micros(interval.duration),
                "phase {} took {:?}",
                interval.phase,
                interval.duration
            );
        }
    }
}

/// The phases of one call: each of its attempts, in order. From
/// [`crate::Submitter::last_phases`], or a fan-out's
/// [`crate::Map::summary`].
#[derive(Debug, Clone)]
pub struct Phases {
    function: String,
    began_at: SystemTime,
    attempts: Vec<AttemptPhases>,
}

impl Phases {
    /// A call of `function`, beginning now, with no attempt yet.
    pub(crate) fn new(function: &str) -> Phases {
        Phases {
            function: function.to_owned(),
            began_at: SystemTime::now(),
            attempts: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, attempt: AttemptPhases) {
        self.attempts.push(attempt);
    }

    /// The function's ID.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// When the call began, by this machine's wall clock.
    pub fn began_at(&self) -> SystemTime {
        self.began_at
    }

    /// Its attempts, first to last.
    pub fn attempts(&self) -> &[AttemptPhases] {
        &self.attempts
    }

    /// Whether the last attempt failed.
    pub fn failed(&self) -> bool {
        self.attempts.last().is_some_and(|a| a.error.is_some())
    }

    /// How long `phase` took over all attempts, if any recorded it.
    pub fn duration(&self, phase: Phase) -> Option<Duration> {
        self.attempts
            .iter()
            .filter_map(|a| a.duration(phase))
            .reduce(|a, b| a + b)
    }

    /// Whether one of the attempts ran as `execution_id`.
    pub(crate) fn ran_as(&self, execution_id: &str) -> bool {
        self.attempts.iter().any(|a| a.execution_id == execution_id)
    }

    /// From the end of the first attempt's queueing to the end of the
    /// last attempt: how long the call took once it had a slot.
    pub(crate) fn busy(&self) -> Duration {
        let (Some(first), Some(last)) = (self.attempts.first(), self.attempts.last()) else {
            return Duration::ZERO;
        };
        let queued = first.duration(Phase::Queued).unwrap_or_default();
        last.ended
            .saturating_duration_since(first.began)
            .saturating_sub(queued)
    }
}

/// How long an execution sent at `submitted` and scheduled at `scheduled`
/// waited, when that is long enough to warn about.
fn waited_for_nodes(submitted: Option<Instant>, scheduled: Instant) -> Option<Duration> {
    let waited = scheduled.saturating_duration_since(submitted?);
    (waited > SCHEDULING_WARNING).then_some(waited)
}

/// A duration in whole microseconds, saturating.
pub(crate) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An attempt of `execution_id` with these phases back to back, in
    /// milliseconds, from `began`.
    pub(crate) fn attempt_of(
        execution_id: &str,
        attempt: u32,
        began: Instant,
        phases: &[(Phase, u64)],
        error: Option<ErrorKind>,
    ) -> AttemptPhases {
        let mut start = Duration::ZERO;
        let intervals: Vec<Interval> = phases
            .iter()
            .map(|&(phase, ms)| {
                let interval = Interval {
                    phase,
                    start,
                    duration: Duration::from_millis(ms),
                };
                start += interval.duration;
                interval
            })
            .collect();
        AttemptPhases {
            execution_id: execution_id.to_owned(),
            attempt,
            began,
            ended: began + start,
            intervals,
            error,
        }
    }

    #[test]
    fn only_a_wait_over_30_s_to_be_scheduled_is_warned_about() {
        let sent = Instant::now();
        let after = |s| sent + Duration::from_secs(s);
        assert_eq!(waited_for_nodes(Some(sent), after(30)), None);
        assert_eq!(
            waited_for_nodes(Some(sent), after(31)),
            Some(Duration::from_secs(31))
        );
        assert_eq!(waited_for_nodes(None, after(31)), None, "never sent");
    }
}
