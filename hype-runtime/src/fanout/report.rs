//! What a fan-out says when it ends: the summary of its calls' phases
//! (printed on stderr with progress on, a `tracing` event at info level
//! with it off), and its timeline file when one was asked for
//! (`.timeline(path)` or `HYPE_TIMELINE`).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::config;
use crate::phases::{Phases, Summary, Timeline};

/// The phases of a fan-out's calls as they end, and what is made of them
/// at its end.
pub(super) struct Report {
    began: Instant,
    summary: Summary,
    timeline: Option<Timeline>,
    progress: bool,
    ended: bool,
}

impl Report {
    /// The report of a fan-out of `function` beginning at `began`; its
    /// timeline goes to `timeline`, else to `HYPE_TIMELINE` when set.
    pub(super) fn new(
        function: &str,
        began: Instant,
        progress: bool,
        timeline: Option<PathBuf>,
    ) -> Report {
        let timeline = timeline.or_else(|| match config::var(config::HYPE_TIMELINE) {
            Ok(path) => path.filter(|p| !p.is_empty()).map(PathBuf::from),
            Err(err) => {
                tracing::warn!(%err, "no timeline is written");
                None
            }
        });
        Report {
            began,
            summary: Summary::new(function),
            timeline: timeline.map(|path| Timeline::new(path, began)),
            progress,
            ended: false,
        }
    }

    /// Call `index` ended (`ok` or not) with these phases (none when it
    /// never ran).
    pub(super) fn add(&mut self, index: usize, ok: bool, phases: Option<Arc<Phases>>) {
        self.summary.add(phases.as_deref(), ok);
        if let (Some(timeline), Some(phases)) = (&mut self.timeline, phases) {
            timeline.add(index, phases);
        }
    }

    /// The fan-out ended (every call, or stopped at an error): the summary
    /// goes out and the timeline is written, once.
    pub(super) fn end(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.summary.ended(self.began.elapsed());
        if self.progress {
            let _ = writeln!(std::io::stderr().lock(), "{}", self.summary);
        } else {
            tracing::info!(
                function = self.summary.function(),
                done = self.summary.done(),
                failed = self.summary.failed(),
                retried = self.summary.retried(),
                "fan-out summary\n{}",
                self.summary
            );
        }
        if let Some(timeline) = &self.timeline {
            match timeline.write() {
                Ok(()) => {
                    tracing::info!(path = %timeline.path().display(), "fan-out timeline written")
                }
                Err(err) => tracing::warn!(%err, "no timeline"),
            }
        }
    }

    /// The summary, once the fan-out has ended.
    pub(super) fn summary(&self) -> Option<&Summary> {
        self.ended.then_some(&self.summary)
    }
}
