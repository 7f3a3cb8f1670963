//! A worker's state on its pod, for `hype ps` (issue 19): the pool writes
//! the annotations [`ANNOTATION_WORKER_STATE`] (`starting`, `idle`,
//! `busy`), [`ANNOTATION_WORKER_BUSY`] (calls running) and
//! [`ANNOTATION_WORKER_CALLS`] (calls run) with a merge patch of the
//! pod. The state lives in the submitter; the pod only mirrors it, late by
//! up to [`EVERY`] and the pool's reaper tick: a worker's pod is patched
//! only when its state changed and at most once every [`EVERY`], so a
//! worker running many calls costs at most one request per 10 s, not one
//! per call. Nothing is patched before the pod is seen (it may not exist
//! yet). A failed patch is logged and not retried: the next change
//! writes the state again.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use tokio::time::Instant;

use crate::backend::labels::{
    ANNOTATION_WORKER_BUSY, ANNOTATION_WORKER_CALLS, ANNOTATION_WORKER_STATE,
};

/// The least time between two patches of one worker's pod.
pub(super) const EVERY: Duration = Duration::from_secs(10);

/// The bound on one patch.
const PATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What the pod says of its worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct State {
    /// `starting` (the pod does not run yet), `idle` or `busy`.
    pub name: &'static str,
    /// Calls running.
    pub busy: usize,
    /// Calls run.
    pub calls: u64,
}

impl State {
    /// The state of a worker whose pod runs (`ready`) or not, with `busy`
    /// calls running and `calls` run.
    pub fn of(ready: bool, busy: usize, calls: u64) -> State {
        let name = match (ready, busy) {
            (false, _) => "starting",
            (true, 0) => "idle",
            (true, _) => "busy",
        };
        State { name, busy, calls }
    }
}

/// The last state written on a worker's pod, and when.
#[derive(Debug, Default)]
pub(super) struct Reported {
    last: Option<(State, Instant)>,
}

impl Reported {
    /// Whether `state` is to be written now: it differs from the last one
    /// written, and that was at least [`EVERY`] ago (or never). If so, it
    /// counts as written from now on.
    pub fn take_due(&mut self, state: &State, now: Instant) -> bool {
        let due = match &self.last {
            None => true,
            Some((last, at)) => last != state && now.duration_since(*at) >= EVERY,
        };
        if due {
            self.last = Some((state.clone(), now));
        }
        due
    }
}

/// Writes `state` on pod `name` (bounded); a failure is logged.
pub(super) async fn write(pods: &Api<Pod>, name: &str, state: &State) {
    let patch = serde_json::json!({
        "metadata": {
            "annotations": {
                ANNOTATION_WORKER_STATE: state.name,
                ANNOTATION_WORKER_BUSY: state.busy.to_string(),
                ANNOTATION_WORKER_CALLS: state.calls.to_string(),
            }
        }
    });
    let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
    match tokio::time::timeout(PATCH_TIMEOUT, pods.patch(name, &params, &patch)).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::debug!(worker = %name, %err, "cannot write the worker's state"),
        Err(_) => tracing::debug!(worker = %name, "writing the worker's state timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_follows_readiness_and_calls() {
        assert_eq!(State::of(false, 1, 0).name, "starting");
        assert_eq!(State::of(true, 0, 3).name, "idle");
        assert_eq!(State::of(true, 2, 3).name, "busy");
    }

    #[tokio::test(start_paused = true)]
    async fn a_state_is_written_when_changed_and_at_most_every_10_s() {
        let mut reported = Reported::default();
        let start = Instant::now();
        let busy = State::of(true, 1, 0);
        assert!(reported.take_due(&busy, start), "the first state");
        assert!(!reported.take_due(&busy, start + EVERY * 2), "unchanged");
        let idle = State::of(true, 0, 1);
        assert!(!reported.take_due(&idle, start + EVERY / 2), "too soon");
        assert!(reported.take_due(&idle, start + EVERY), "changed, 10 s on");
        assert!(!reported.take_due(&idle, start + EVERY * 3), "unchanged");
    }
}
