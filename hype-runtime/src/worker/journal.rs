//! What a worker keeps of its calls until the submitter acknowledges them:
//! every event sent (as encoded frames, to send again on `Attach`), and the
//! running call's process, to cancel it. Acknowledged calls are forgotten,
//! but their IDs are remembered so that a call sent again is not run twice.

use std::collections::{BTreeMap, HashSet};

use super::call::Process;

/// One call not yet acknowledged.
#[derive(Default)]
struct Kept {
    /// Its events so far, in the order sent.
    frames: Vec<Vec<u8>>,
    /// Its process, while it runs.
    process: Option<Process>,
    /// `Ended` was sent.
    ended: bool,
}

/// The calls a worker keeps, by call ID.
#[derive(Default)]
pub(super) struct Journal {
    calls: BTreeMap<u64, Kept>,
    /// Acknowledged and forgotten: 8 bytes a call for the worker's life.
    forgotten: HashSet<u64>,
}

impl Journal {
    /// Whether the call was seen before (kept or forgotten).
    pub(super) fn knows(&self, id: u64) -> bool {
        self.calls.contains_key(&id) || self.forgotten.contains(&id)
    }

    /// Starts keeping a new call.
    pub(super) fn open(&mut self, id: u64) {
        self.calls.entry(id).or_default();
    }

    /// The call's process started.
    pub(super) fn started(&mut self, id: u64, process: Process) {
        if let Some(kept) = self.calls.get_mut(&id)
            && !kept.ended
        {
            kept.process = Some(process);
        }
    }

    /// Keeps one of the call's events; `ended` for its `Ended`.
    pub(super) fn keep(&mut self, id: u64, frame: Vec<u8>, ended: bool) {
        if self.forgotten.contains(&id) {
            return;
        }
        let kept = self.calls.entry(id).or_default();
        kept.frames.push(frame);
        if ended {
            kept.ended = true;
            kept.process = None;
        }
    }

    /// Kills the call's process, if it runs; its `Ended` follows.
    pub(super) fn cancel(&mut self, id: u64) {
        if let Some(process) = self.calls.get(&id).and_then(|k| k.process.as_ref()) {
            process.kill();
        }
    }

    /// Forgets an ended call. A call still running is kept: the submitter
    /// acknowledges only what it has whole.
    pub(super) fn acknowledge(&mut self, id: u64) {
        if self.calls.get(&id).is_some_and(|k| k.ended) {
            self.calls.remove(&id);
            self.forgotten.insert(id);
        }
    }

    /// Every kept frame, call by call, each call's in the order sent.
    pub(super) fn replay(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.calls.values().flat_map(|k| k.frames.iter())
    }

    /// How many calls have not ended.
    pub(super) fn running(&self) -> usize {
        self.calls.values().filter(|k| !k.ended).count()
    }

    /// Whether nothing is kept.
    pub(super) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Kills every running call's process; gives how many.
    pub(super) fn kill_all(&mut self) -> usize {
        let mut killed = 0;
        for kept in self.calls.values_mut() {
            if let Some(process) = kept.process.take() {
                process.kill();
                killed += 1;
            }
        }
        killed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_kept_until_acknowledged_after_their_end_and_never_run_twice() {
        let mut journal = Journal::default();
        journal.open(1);
        journal.open(2);
        journal.keep(1, vec![1], false);
        journal.keep(2, vec![20], false);
        journal.keep(1, vec![2], true);
        assert_eq!(journal.running(), 1);
        assert_eq!(
            journal.replay().cloned().collect::<Vec<_>>(),
            vec![vec![1], vec![2], vec![20]]
        );
        // Acknowledging a running call keeps it.
        journal.acknowledge(2);
        assert!(journal.knows(2));
        assert_eq!(journal.replay().count(), 3);
        journal.acknowledge(1);
        assert!(journal.knows(1), "a forgotten call is still known");
        assert_eq!(
            journal.replay().cloned().collect::<Vec<_>>(),
            vec![vec![20]]
        );
        // A late event of a forgotten call is not kept again.
        journal.keep(1, vec![3], true);
        assert_eq!(journal.replay().count(), 1);
        journal.keep(2, vec![21], true);
        journal.acknowledge(2);
        assert!(journal.is_empty());
        assert_eq!(journal.running(), 0);
    }
}
