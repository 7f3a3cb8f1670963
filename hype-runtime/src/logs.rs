//! The remote function's output, back at the caller while it runs: each
//! line of the execution's stdout and stderr, prefixed with its execution
//! ID, on the caller's stderr (above any fan-out's progress bar) and as a
//! `tracing` event (target `hype::remote`).
//!
//! A backend reads the execution's output (a child's pipes, a container's
//! log stream, a pod's `log?follow=true`) into a [`LogSink`] with
//! [`pump`]; the submitter creates the sink for each execution and ends it
//! with [`LogSink::finish`] once it knows whether the call failed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};

/// What happens to the output of a call's execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogMode {
    /// Every line as it comes, on the caller's stderr and as a `tracing`
    /// event. The default for a single call.
    Stream,
    /// Lines are held (the last [`HELD_LINES`]) and shown only if the call
    /// fails. The default for a fan-out, where the output of many calls at
    /// once would interleave past reading.
    OnFailure,
    /// Nothing is shown (the end of stderr still goes into the error of an
    /// execution that wrote no outcome).
    Off,
}

/// A line longer than this many bytes is cut into pieces of this size,
/// never buffered without limit.
pub const MAX_LINE: usize = 16 * 1024;

/// How many of the last lines [`LogMode::OnFailure`] holds per execution.
pub const HELD_LINES: usize = 1000;

/// Which of an execution's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
    /// Both, as one log (a pod's).
    #[cfg_attr(not(feature = "kubernetes"), allow(dead_code))]
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
    held: Mutex<VecDeque<(Stream, String)>>,
}

impl LogSink {
    /// The sink of execution `execution_id`.
    pub(crate) fn new(execution_id: &str, mode: LogMode) -> Arc<LogSink> {
        Arc::new(LogSink {
            execution_id: execution_id.to_owned(),
            mode,
            held: Mutex::new(VecDeque::new()),
        })
    }

    /// The mode lines are handled in.
    pub fn mode(&self) -> LogMode {
        self.mode
    }

    /// One line (without its newline) of `stream`.
    pub(crate) fn line(&self, stream: Stream, line: &str) {
        match self.mode {
            LogMode::Stream => emit(&self.execution_id, stream, line),
            LogMode::OnFailure => {
                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                if held.len() == HELD_LINES {
                    held.pop_front();
                }
                held.push_back((stream, line.to_owned()));
            }
            LogMode::Off => {}
        }
    }

    /// The execution is over: with [`LogMode::OnFailure`], a failed call's
    /// held lines are shown now.
    pub(crate) fn finish(&self, failed: bool) {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(|e| e.into_inner()));
        if failed {
            for (stream, line) in held {
                emit(&self.execution_id, stream, &line);
            }
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

/// Progress bars on the caller's terminal, by a number of their own: a
/// line is printed above the newest.
static BARS: Mutex<Vec<(u64, indicatif::ProgressBar)>> = Mutex::new(Vec::new());

/// Lines printed while the returned guard lives go above `bar`.
pub(crate) fn print_above(bar: &indicatif::ProgressBar) -> BarGuard {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    BARS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, bar.clone()));
    BarGuard(id)
}

/// Stops printing above a bar (see [`print_above`]).
pub(crate) struct BarGuard(u64);

impl Drop for BarGuard {
    fn drop(&mut self) {
        BARS.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| *id != self.0);
    }
}

/// Shows one line: on stderr (above a bar if one is drawn) and as a
/// `tracing` event.
fn emit(execution_id: &str, stream: Stream, line: &str) {
    tracing::info!(target: "hype::remote", execution_id, stream = stream.name(), "{line}");
    let text = format!("[{execution_id}] {line}");
    let bar = BARS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last()
        .map(|(_, bar)| bar.clone());
    match bar {
        Some(bar) => bar.suspend(|| eprintln!("{text}")),
        None => eprintln!("{text}"),
    }
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
        sink.finish(false);
        assert!(sink.held.lock().unwrap().is_empty());
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
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        assert_eq!(held, vec!["y".repeat(MAX_LINE), "next".to_owned()]);
    }

    #[test]
    fn on_failure_holds_only_the_last_lines() {
        let sink = LogSink::new("hype-test-2", LogMode::OnFailure);
        for i in 0..HELD_LINES + 10 {
            sink.line(Stream::Stderr, &i.to_string());
        }
        let held = sink.held.lock().unwrap();
        assert_eq!(held.len(), HELD_LINES);
        assert_eq!(held.front().unwrap().1, "10");
    }
}
