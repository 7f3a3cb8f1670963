//! The caller's terminal: the one writer of remote lines to the caller's
//! stderr, and the progress bars they are printed above.
//!
//! Library code never prints from an async task: `eprintln!` panics when
//! stderr is closed or a broken pipe, and blocks a tokio worker thread when
//! nobody reads the pipe. Lines are queued instead, and one thread of the
//! process, `hype-output`, owns the writes to stderr:
//!
//! - the queue holds at most [`QUEUE_BYTES`]; a line that finds it full is
//!   dropped and counted, and the writer says how many with one line
//!   (`[hype: N lines of remote output dropped …]`) once it gets to write
//!   again;
//! - a write that fails (stderr closed, a broken pipe) is ignored: the
//!   lines were also `tracing` events;
//! - [`flushed`] lets a call wait, at most a bound, until its last line is
//!   written, so that a call's output still comes before its result; a
//!   writer that is stuck (a pipe nobody reads) is waited for once, not by
//!   every call.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

/// How many bytes of lines wait for the writer at most; more are dropped.
pub(crate) const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// Lines waiting for the writer thread.
#[derive(Default)]
struct Queue {
    /// Each line with its number (1, 2, ...), newline included.
    lines: VecDeque<(u64, String)>,
    bytes: usize,
    /// The number of the last line queued.
    last: u64,
    /// Lines dropped since the writer last took the queue.
    dropped: u64,
}

/// The writer thread's side: its queue and how far it has written.
struct Writer {
    queue: Mutex<Queue>,
    /// Signalled when lines are queued.
    queued: Condvar,
    /// The number of the last line written (or given up on).
    written: tokio::sync::watch::Sender<u64>,
    /// `written` when a [`flushed`] last timed out: while the writer has not
    /// moved past it, nobody waits again.
    stalled_at: Mutex<Option<u64>>,
}

/// The writer, started on first use; `None` if its thread could not be
/// started (lines are then only `tracing` events).
fn writer() -> Option<&'static Writer> {
    static WRITER: OnceLock<Option<&'static Writer>> = OnceLock::new();
    *WRITER.get_or_init(|| {
        let writer: &'static Writer = Box::leak(Box::new(Writer {
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            written: tokio::sync::watch::Sender::new(0),
            stalled_at: Mutex::new(None),
        }));
        let started = std::thread::Builder::new()
            .name("hype-output".to_owned())
            .spawn(move || writer.run());
        match started {
            Ok(_) => Some(writer),
            Err(err) => {
                tracing::warn!(%err, "cannot start the thread that writes remote output to stderr; it goes to tracing only");
                None
            }
        }
    })
}

impl Writer {
    /// The writer thread: takes what is queued, writes it, forever.
    fn run(&self) {
        loop {
            let (lines, dropped) = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                while queue.lines.is_empty() && queue.dropped == 0 {
                    queue = self.queued.wait(queue).unwrap_or_else(|e| e.into_inner());
                }
                queue.bytes = 0;
                (
                    std::mem::take(&mut queue.lines),
                    std::mem::take(&mut queue.dropped),
                )
            };
            let mut text = String::new();
            let mut last = None;
            for (number, line) in lines {
                text.push_str(&line);
                last = Some(number);
            }
            if dropped > 0 {
                text.push_str(&format!(
                    "[hype: {dropped} lines of remote output dropped: stderr did not keep up]\n"
                ));
            }
            write_above_bar(text.as_bytes());
            if let Some(last) = last {
                self.written.send_replace(last);
            }
        }
    }
}

/// Writes `bytes` to stderr, above the newest progress bar if one is
/// drawn; errors are ignored.
fn write_above_bar(bytes: &[u8]) {
    let write = || {
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(bytes);
        let _ = stderr.flush();
    };
    let bar = BARS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last()
        .map(|(_, bar)| bar.clone());
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// Queues `line` (without its newline) for stderr. Gives the line's number
/// for [`flushed`], or `None` if it was dropped.
pub(crate) fn queue(line: String) -> Option<u64> {
    let writer = writer()?;
    let mut queue = writer.queue.lock().unwrap_or_else(|e| e.into_inner());
    if queue.bytes + line.len() + 1 > QUEUE_BYTES {
        queue.dropped += 1;
        return None;
    }
    queue.bytes += line.len() + 1;
    queue.last += 1;
    let number = queue.last;
    let mut line = line;
    line.push('\n');
    queue.lines.push_back((number, line));
    drop(queue);
    writer.queued.notify_one();
    Some(number)
}

/// Waits until line `number` (from [`queue`]) is written, at most `bound`;
/// not at all while the writer is stuck since an earlier wait timed out.
pub(crate) async fn flushed(number: u64, bound: Duration) {
    let Some(writer) = writer() else { return };
    let mut written = writer.written.subscribe();
    let now = *written.borrow();
    if now >= number {
        return;
    }
    if *writer.stalled_at.lock().unwrap_or_else(|e| e.into_inner()) == Some(now) {
        return;
    }
    if tokio::time::timeout(bound, written.wait_for(|w| *w >= number))
        .await
        .is_err()
    {
        let now = *writer.written.borrow();
        *writer.stalled_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
    }
}

/// Progress bars on the caller's terminal, by a number of their own: a
/// line is printed above the newest.
static BARS: Mutex<Vec<(u64, indicatif::ProgressBar)>> = Mutex::new(Vec::new());

/// Lines printed while the returned guard lives go above `bar`.
pub(crate) fn print_above(bar: &indicatif::ProgressBar) -> BarGuard {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queued_lines_are_written_in_order_and_waited_for() {
        let first = queue("hype writer test: first".to_owned()).expect("queued");
        let second = queue("hype writer test: second".to_owned()).expect("queued");
        assert!(second > first);
        // The test's stderr is read by the harness: the writer gets there.
        tokio::time::timeout(Duration::from_secs(30), flushed(second, Duration::MAX))
            .await
            .expect("the writer wrote both lines");
        assert!(*writer().unwrap().written.borrow() >= second);
    }
}
