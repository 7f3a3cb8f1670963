//! The remote function's output, back at the caller while it runs: each
//! line of the execution's stdout and stderr, prefixed with its execution
//! ID, on the caller's stderr (above any fan-out's progress bar) and as a
//! `tracing` event (target `hype::remote`).
//!
//! A backend reads the execution's output (a child's pipes, a container's
//! log stream, a pod's `log?follow=true`) into a [`LogSink`] with
//! `pump`; the submitter creates the sink for each execution and ends it
//! with `LogSink::finish` once it knows whether the call failed.

mod writer;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};

pub(crate) use writer::{BarGuard, print_above};

/// What happens to the output of a call's execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogMode {
    /// Every line as it comes, on the caller's stderr and as a `tracing`
    /// event. The default for a single call.
    Stream,
    /// Lines are held (the last [`HELD_BYTES`] of them) and shown only if
    /// the call fails. The default for a fan-out, where the output of many calls at
    /// once would interleave past reading.
    OnFailure,
    /// Nothing is shown (the end of stderr still goes into the error of an
    /// execution that wrote no outcome).
    Off,
}

/// A line longer than this many bytes is cut into pieces of this size,
/// never buffered without limit.
pub const MAX_LINE: usize = 16 * 1024;

/// How many bytes of its last lines [`LogMode::OnFailure`] holds per
/// execution: older lines are let go, and a failed call's output starts
/// with a line saying how many were not kept.
pub const HELD_BYTES: usize = 1024 * 1024;

/// How long a call's end waits for its lines to reach stderr.
const FLUSH_BOUND: Duration = Duration::from_secs(1);

/// Which of an execution's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
    /// Both, as one log (a pod's), or hype's own note about them.
    Output,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Output => "output",
        }
    }
}

/// Where one execution's lines go.
#[derive(Debug)]
pub struct LogSink {
    execution_id: String,
    mode: LogMode,
    held: Mutex<Held>,
    /// The writer's number of the last line this sink queued (0: none).
    last_queued: AtomicU64,
}

/// The lines [`LogMode::OnFailure`] holds.
#[derive(Debug, Default)]
struct Held {
    lines: VecDeque<(Stream, String)>,
    bytes: usize,
    /// Lines let go to stay within [`HELD_BYTES`].
    let_go: u64,
}

impl LogSink {
    /// The sink of execution `execution_id`.
    pub(crate) fn new(execution_id: &str, mode: LogMode) -> Arc<LogSink> {
        Arc::new(LogSink {
            execution_id: execution_id.to_owned(),
            mode,
            held: Mutex::new(Held::default()),
            last_queued: AtomicU64::new(0),
        })
    }

    /// The mode lines are handled in.
    pub fn mode(&self) -> LogMode {
        self.mode
    }

    /// One line (without its newline) of `stream`.
    pub(crate) fn line(&self, stream: Stream, line: &str) {
        match self.mode {
            LogMode::Stream => self.show(stream, line),
            LogMode::OnFailure => {
                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                while held.bytes + line.len() > HELD_BYTES {
                    let Some((_, oldest)) = held.lines.pop_front() else {
                        break;
                    };
                    held.bytes -= oldest.len();
                    held.let_go += 1;
                }
                held.bytes += line.len();
                held.lines.push_back((stream, line.to_owned()));
            }
            LogMode::Off => {}
        }
    }

    fn show(&self, stream: Stream, line: &str) {
        if let Some(number) = emit(&self.execution_id, stream, line) {
            self.last_queued.store(number, Ordering::Relaxed);
        }
    }

    /// The execution is over: with [`LogMode::OnFailure`], a failed call's
    /// held lines are shown now. Waits, at most a second, until the lines
    /// shown are on stderr, so they come before the call's result.
    pub(crate) async fn finish(&self, failed: bool) {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(|e| e.into_inner()));
        if failed {
            if held.let_go > 0 {
                let note = format!(
                    "[hype: {} earlier lines not kept: a failed call's output is held up to {} KiB]",
                    held.let_go,
                    HELD_BYTES / 1024
                );
                self.show(Stream::Output, &note);
            }
            for (stream, line) in held.lines {
                self.show(stream, &line);
            }
        }
        let last = self.last_queued.load(Ordering::Relaxed);
        if last > 0 {
            writer::flushed(last, FLUSH_BOUND).await;
        }
    }
}

/// Reads `from` to its end into `sink`, a line at a time (lines longer
/// than [`MAX_LINE`] in pieces; invalid UTF-8 replaced). Gives back the
/// last `tail` lines, for the error of an execution that wrote no outcome.
pub(crate) async fn pump(
    from: impl AsyncRead + Unpin,
    sink: &LogSink,
    stream: Stream,
    tail: usize,
) -> Vec<String> {
    let mut reader = BufReader::new(from);
    let mut kept = VecDeque::with_capacity(tail.min(64));
    let mut buf = Vec::new();
    // Whether the last piece was cut at MAX_LINE: a newline right after it
    // ends that line, and is no empty line of its own.
    let mut cut = false;
    loop {
        buf.clear();
        let read = tokio::io::AsyncReadExt::take(&mut reader, MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await;
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if std::mem::replace(&mut cut, buf.len() == MAX_LINE && !buf.ends_with(b"\n"))
            && buf == b"\n"
        {
            continue;
        }
        let bytes = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let line = String::from_utf8_lossy(bytes);
        sink.line(stream, &line);
        if tail > 0 {
            if kept.len() == tail {
                kept.pop_front();
            }
            kept.push_back(line.into_owned());
        }
    }
    kept.into()
}

/// Shows one line: queued for the caller's stderr (above a bar if one is
/// drawn) and a `tracing` event. Gives the line's number in the writer's
/// queue, if it was queued.
fn emit(execution_id: &str, stream: Stream, line: &str) -> Option<u64> {
    tracing::info!(target: "hype::remote", execution_id, stream = stream.name(), "{line}");
    writer::queue(format!("[{execution_id}] {line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_at_the_limit_and_the_tail_kept() {
        let long = "x".repeat(MAX_LINE * 2 + 5);
        let input = format!("one\r\ntwo\n{long}\nlast without newline");
        let sink = LogSink::new("hype-test-1", LogMode::OnFailure);
        let tail = pump(input.as_bytes(), &sink, Stream::Stdout, 3).await;
        let held: Vec<String> = sink
            .held
            .lock()
            .unwrap()
            .lines
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        assert_eq!(held.len(), 6, "one, two, three pieces, the last line");
        assert_eq!(held[0], "one");
        assert_eq!(held[1], "two");
        assert_eq!(held[2].len(), MAX_LINE);
        assert_eq!(held[3].len(), MAX_LINE);
        assert_eq!(held[4], "xxxxx");
        assert_eq!(held[5], "last without newline");
        assert_eq!(tail, held[3..].to_vec());
        sink.finish(false).await;
        assert!(sink.held.lock().unwrap().lines.is_empty());
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_limit_is_one_line() {
        let input = format!("{}\nnext\n", "y".repeat(MAX_LINE));
        let sink = LogSink::new("hype-test-3", LogMode::OnFailure);
        pump(input.as_bytes(), &sink, Stream::Stdout, 0).await;
        let held: Vec<String> = sink
            .held
            .lock()
            .unwrap()
            .lines
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        assert_eq!(held, vec!["y".repeat(MAX_LINE), "next".to_owned()]);
    }

    #[tokio::test]
    async fn a_call_printing_50_mib_holds_at_most_the_bound() {
        let sink = LogSink::new("hype-test-2", LogMode::OnFailure);
        let line = "x".repeat(1023);
        let lines = 50 * 1024;
        let mut input = String::with_capacity(lines * 1024);
        for _ in 0..lines {
            input.push_str(&line);
            input.push('\n');
        }
        input.push_str("the last line\n");
        pump(input.as_bytes(), &sink, Stream::Stderr, 0).await;
        let held = sink.held.lock().unwrap();
        assert!(held.bytes <= HELD_BYTES, "{} bytes held", held.bytes);
        assert_eq!(
            held.bytes,
            held.lines.iter().map(|(_, l)| l.len()).sum::<usize>(),
            "the count of bytes is the bytes of the lines held"
        );
        assert!(
            held.bytes > HELD_BYTES - 2048,
            "the bound is used, not far less"
        );
        assert_eq!(held.lines.back().unwrap().1, "the last line");
        assert_eq!(
            held.let_go as usize + held.lines.len(),
            lines + 1,
            "every line is either held or counted as let go"
        );
    }

    #[test]
    fn on_failure_holds_only_the_last_lines() {
        let sink = LogSink::new("hype-test-2", LogMode::OnFailure);
        let line = "y".repeat(MAX_LINE);
        let fit = HELD_BYTES / MAX_LINE;
        for i in 0..fit + 10 {
            sink.line(Stream::Stderr, &format!("{i:05}{}", &line[5..]));
        }
        let held = sink.held.lock().unwrap();
        assert_eq!(held.lines.len(), fit);
        assert!(held.lines.front().unwrap().1.starts_with("00010"));
        assert_eq!(held.let_go, 10);
    }
}
