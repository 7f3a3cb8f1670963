//! The phases of a submitter's latest calls, so that
//! [`Submitter::last_phases`](super::Submitter::last_phases) finds a call
//! by the execution ID an error or a log line named. Bounded: the oldest
//! go first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::Submitter;
use crate::phases::Phases;

/// How many calls' phases a submitter keeps.
const KEPT: usize = 1024;

/// The phases of the latest [`KEPT`] calls, oldest first.
#[derive(Debug, Default)]
pub(super) struct Recent(Mutex<VecDeque<Arc<Phases>>>);

impl Recent {
    fn calls(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Phases>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a call's phases, forgetting the oldest past the bound.
    pub(super) fn keep(&self, phases: Arc<Phases>) {
        let mut calls = self.calls();
        if calls.len() == KEPT {
            calls.pop_front();
        }
        calls.push_back(phases);
    }

    /// The phases of the latest call one of whose attempts ran as
    /// `execution_id`.
    pub(super) fn find(&self, execution_id: &str) -> Option<Phases> {
        self.calls()
            .iter()
            .rev()
            .find(|phases| phases.ran_as(execution_id))
            .map(|phases| Phases::clone(phases))
    }
}

impl Submitter {
    /// The phases of a recent call (one of the last
    /// 1,024 this submitter ran) that ran as `execution_id` in one of its
    /// attempts: where its time went. An error names the execution
    /// ([`Error::execution_id`](crate::Error::execution_id)):
    ///
    /// ```no_run
    /// # async fn demo(submitter: hype_runtime::Submitter, err: hype_runtime::Error) {
    /// if let Some(phases) = err.execution_id().and_then(|id| submitter.last_phases(id)) {
    ///     for attempt in phases.attempts() {
    ///         for interval in attempt.intervals() {
    ///             println!("{} {}: {:?}", attempt.execution_id(), interval.phase, interval.duration);
    ///         }
    ///     }
    /// }
    /// # }
    /// ```
    pub fn last_phases(&self, execution_id: &str) -> Option<Phases> {
        self.inner.recent.find(execution_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phases::tests::attempt_of;

    #[test]
    fn the_latest_calls_are_found_by_any_attempt_and_the_oldest_forgotten() {
        let recent = Recent::default();
        for i in 0..KEPT + 1 {
            let mut phases = Phases::new("demo::add");
            let began = std::time::Instant::now();
            phases.push(attempt_of(&format!("a{i}"), 1, began, &[], None));
            phases.push(attempt_of(&format!("b{i}"), 2, began, &[], None));
            recent.keep(Arc::new(phases));
        }
        assert!(recent.find("a0").is_none(), "the oldest is forgotten");
        let found = recent.find(&format!("a{KEPT}")).unwrap();
        assert_eq!(found.attempts()[1].execution_id(), format!("b{KEPT}"));
        assert!(recent.find("b1").is_some());
    }
}
