//! A fan-out's progress: a bar on stderr when it is a terminal
//! (`indicatif`), else `tracing` events at a bounded rate, and a summary
//! event at the end either way.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// At most one progress event per this interval when stderr is not a
/// terminal.
const EVENT_INTERVAL: Duration = Duration::from_secs(5);

/// Counts of a fan-out's calls, shown as it goes.
pub(crate) struct Progress {
    function: &'static str,
    enabled: bool,
    bar: Option<ProgressBar>,
    /// Remote output is printed above the bar while it is drawn.
    _above: Option<crate::logs::BarGuard>,
    total: Option<u64>,
    started: u64,
    done: u64,
    failed: u64,
    began: Instant,
    last_event: Instant,
    ended: bool,
}

impl Progress {
    /// Progress of a fan-out of `function` over `total` calls (when the
    /// iterator knows how many), shown only when `enabled`.
    pub(crate) fn new(enabled: bool, function: &'static str, total: Option<u64>) -> Progress {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = match total {
                Some(total) => ProgressBar::new(total),
                None => ProgressBar::no_length(),
            };
            let template = match total {
                Some(_) => "{prefix} [{bar:30}] {pos}/{len} done, {msg}, {elapsed}",
                None => "{prefix} {spinner} {pos} done, {msg}, {elapsed}",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(function.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let now = Instant::now();
        Progress {
            function,
            enabled,
            _above: bar.as_ref().map(crate::logs::print_above),
            bar,
            total,
            started: 0,
            done: 0,
            failed: 0,
            began: now,
            last_event: now,
            ended: false,
        }
    }

    /// A call was started.
    pub(crate) fn started(&mut self) {
        self.started += 1;
        self.update();
    }

    /// A call finished, successfully or not.
    pub(crate) fn finished(&mut self, ok: bool) {
        self.done += 1;
        if !ok {
            self.failed += 1;
        }
        self.update();
    }

    fn running(&self) -> u64 {
        self.started - self.done
    }

    fn queued(&self) -> Option<u64> {
        self.total.map(|total| total.saturating_sub(self.started))
    }

    fn counts(&self) -> String {
        let queued = match self.queued() {
            Some(queued) => format!(", {queued} queued"),
            None => String::new(),
        };
        format!("{} running, {} failed{queued}", self.running(), self.failed)
    }

    fn rate(&self) -> f64 {
        let secs = self.began.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        }
    }

    fn update(&mut self) {
        if !self.enabled {
            return;
        }
        if let Some(bar) = &self.bar {
            bar.set_position(self.done);
            bar.set_message(self.counts());
            return;
        }
        if self.last_event.elapsed() >= EVENT_INTERVAL {
            self.last_event = Instant::now();
            tracing::info!(
                function = self.function,
                done = self.done,
                running = self.running(),
                failed = self.failed,
                queued = self.queued(),
                per_second = format_args!("{:.1}", self.rate()),
                "fan-out progress"
            );
        }
    }

    /// Every call has finished: the bar ends, and a summary event goes out.
    pub(crate) fn finish(&mut self) {
        if self.ended || !self.enabled {
            return;
        }
        self.ended = true;
        if let Some(bar) = &self.bar {
            bar.set_message(self.counts());
            bar.finish();
        }
        tracing::info!(
            function = self.function,
            done = self.done,
            failed = self.failed,
            seconds = format_args!("{:.1}", self.began.elapsed().as_secs_f64()),
            "fan-out finished"
        );
    }

    /// The fan-out stopped at the failed call `index`.
    pub(crate) fn abandon(&mut self, index: usize) {
        if self.ended || !self.enabled {
            return;
        }
        self.ended = true;
        if let Some(bar) = &self.bar {
            bar.abandon_with_message(format!(
                "{}; stopped at call {index}, the rest cancelled",
                self.counts()
            ));
        }
        tracing::info!(
            function = self.function,
            done = self.done,
            failed = self.failed,
            stopped_at = index,
            "fan-out stopped at a failed call"
        );
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // A fan-out dropped part-way leaves its bar as it was, not
        // spinning.
        if !self.ended
            && let Some(bar) = &self.bar
        {
            bar.abandon();
        }
    }
}
