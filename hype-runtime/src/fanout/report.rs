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
            Ok(path) => path.filter(|p| !p.is_empty()).map(|path| {
                // The process's first fan-out writes the file named; later
                // ones number theirs, so none overwrites another.
                static FAN_OUTS: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                numbered(
                    PathBuf::from(path),
                    FAN_OUTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                )
            }),
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
/// `path` for the first fan-out; `stem-N.ext` for the `n`th.
fn numbered(path: PathBuf, n: usize) -> PathBuf {
    if n <= 1 {
        return path;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_fan_outs_number_their_timelines() {
        let path = PathBuf::from("/t/timeline.json");
        assert_eq!(numbered(path.clone(), 1), path);
        assert_eq!(numbered(path, 3), PathBuf::from("/t/timeline-3.json"));
        assert_eq!(numbered(PathBuf::from("t"), 2), PathBuf::from("t-2"));
    }
}
