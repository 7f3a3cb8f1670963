//! Ctrl-C and SIGTERM for the program's own `main`: an orderly close of
//! every live submitter within a bound, instead of a death that leaves
//! calls running.
//!
//! `#[hype::main]` calls [`install`] after `hype-run` dispatch (a `hype-run`
//! process keeps its own signal handling: it passes signals on to a
//! launched executable and dies with its parent); a program without the
//! attribute may call it at the top of `main`. From then on:
//!
//! 1. The first SIGINT or SIGTERM prints one line on stderr,
//!    `hype: interrupted (SIGINT): cancelling N calls in flight and closing
//!    M submitters (at most 30s; press Ctrl-C again to exit at once)`, and
//!    closes every live submitter ([`crate::Submitter::close`]: calls in flight
//!    fail with [`crate::Error::Cancelled`] and their executions are
//!    stopped, then what the submitter created is removed), the default
//!    submitter of [`crate::Call::run_on_cluster`] included. Each closes on
//!    the tokio runtime it was built on, since its connections belong to
//!    that runtime; all of them together for at most [`CLOSE_BOUND`].
//! 2. It prints how that went (`hype: closed 2 submitters in 0.1s; exiting
//!    with 130`) and exits with 130 after SIGINT, 143 after SIGTERM (128 +
//!    the signal, as a shell reports a death by that signal). Exit handlers
//!    run: temporary directories are removed. A `main` that returns in the
//!    meantime (its calls failed as cancelled) waits for this
//!    ([`wait_if_interrupted`]).
//! 3. A second SIGINT (or SIGTERM) while that runs exits at once with its
//!    own code; local children then die with the process (see
//!    `process.rs`), and what is left is swept by the next start.
//!
//! Every submitter registers itself when it is built (weakly:
//! the registry keeps none alive). The signal handler itself only writes
//! the signal's number to a socket; a thread, `hype-interrupt`, reads it
//! and does the rest. The handler is an action of `signal-hook-registry`,
//! as `tokio::signal`'s and `signal-hook`'s are, so a program that also
//! listens with those gets the signal too; a handler the program installs
//! later with its own `sigaction` replaces all of them.

use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rustix::process::Signal;

use crate::error::Error;

/// One line on stderr, ignoring a failure to write it (`eprintln!` would
/// panic, and the close must go on).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// How long the first signal's close of all submitters may take before the
/// process exits anyway.
pub const CLOSE_BOUND: Duration = Duration::from_secs(30);

/// What the close on interrupt closes: a submitter, as this module sees it
/// (so that it need not name the submitter, which registers itself here).
pub(crate) trait Close: Send + Sync {
    /// Its session ID, for messages.
    fn session(&self) -> &str;
    /// Whether it is closed already.
    fn is_closed(&self) -> bool;
    /// How many calls are in flight.
    fn calls_in_flight(&self) -> usize;
    /// Closes it ([`crate::Submitter::close`]).
    fn close(&self) -> BoxFuture<'_, Result<(), Error>>;
}

/// A live submitter and the runtime it was built on.
struct Live {
    submitter: Weak<dyn Close>,
    runtime: Option<tokio::runtime::Handle>,
}

/// Every submitter built in this process (dead ones pruned as new ones come).
static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());

/// The signals handled.
const SIGINT: i32 = Signal::INT.as_raw();
const SIGTERM: i32 = Signal::TERM.as_raw();

/// The first signal handled (0: none yet).
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// How much longer than [`CLOSE_BOUND`] [`wait_if_interrupted`] waits for
/// `hype-interrupt` to end the process before it does so itself.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Records `submitter` (weakly: the registry keeps nothing alive) with the
/// runtime it is being built on, for the close on interrupt. Called by
/// [`crate::SubmitterBuilder::build`].
pub(crate) fn register(submitter: Weak<dyn Close>) {
    let runtime = tokio::runtime::Handle::try_current().ok();
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    // Without taking a strong reference, so that pruning never drops the last.
    live.retain(|entry| entry.submitter.strong_count() > 0);
    live.push(Live { submitter, runtime });
}

/// A submitter that is alive, and the runtime it was built on.
type Registered = (Arc<dyn Close>, Option<tokio::runtime::Handle>);

/// The submitters still alive and not closed, each with its runtime.
fn live_submitters() -> Vec<Registered> {
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.iter()
        .filter_map(|entry| {
            let submitter = entry.submitter.upgrade()?;
            (!submitter.is_closed()).then(|| (submitter, entry.runtime.clone()))
        })
        .collect()
}

/// Handles SIGINT and SIGTERM from now on as the module docs say. Once per
/// process; later calls do nothing. If the handler cannot be installed (no
/// socket, no thread), says so on stderr and leaves the signals as they were.
pub fn install() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        if let Err(err) = try_install() {
            say!(
                "hype: cannot handle Ctrl-C and SIGTERM ({err}); they will end the program without closing its submitters"
            );
        }
    });
}

fn try_install() -> std::io::Result<()> {
    // The handler's end never blocks (a full socket means a signal is
    // waiting to be read already); both ends close on exec.
    let (read, write) = UnixStream::pair()?;
    write.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("hype-interrupt".to_owned())
        .spawn(move || watch(Arc::new(read)))?;
    let write = Arc::new(write);
    for signal in [SIGINT, SIGTERM] {
        let write = Arc::clone(&write);
        // SAFETY: the action is async-signal-safe: an atomic
        // compare-and-swap and one non-blocking write(2); the registry
        // keeps errno for the code it interrupts.
        unsafe { signal_hook_registry::register(signal, move || on_signal(signal, &write)) }?;
    }
    Ok(())
}

/// If SIGINT or SIGTERM began a close, waits for `hype-interrupt` to end
/// the process with the signal's exit code (and, should it not within
/// [`CLOSE_BOUND`] and a few seconds more, exits with that code itself);
/// otherwise returns at once. `#[hype::main]` calls it when the program's
/// `main` returns, which it may do early when its calls fail as cancelled:
/// the exit code is then still 130 or 143, and the close is not cut short.
pub fn wait_if_interrupted() {
    let signal = INTERRUPTED.load(Ordering::SeqCst);
    if signal == 0 {
        return;
    }
    std::thread::sleep(CLOSE_BOUND + EXIT_GRACE);
    std::process::exit(128 + signal);
}

/// The signal handler: records the first signal and passes the signal's
/// number to `hype-interrupt`.
fn on_signal(signal: i32, write: &UnixStream) {
    let _ = INTERRUPTED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    let _ = rustix::io::write(write, &[signal as u8]);
}

/// Blocks until a signal's number comes through the socket; `None` if it
/// fails.
fn next_signal(mut read: &UnixStream) -> Option<i32> {
    let mut byte = [0u8];
    loop {
        match std::io::Read::read(&mut read, &mut byte) {
            Ok(1) => return Some(i32::from(byte[0])),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            _ => return None,
        }
    }
}

/// The name of a handled signal.
fn name(signal: i32) -> &'static str {
    if signal == SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

/// `1 call`, `2 calls`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The `hype-interrupt` thread: waits for the first signal, then closes
/// everything and exits; a second signal exits at once.
fn watch(read: Arc<UnixStream>) {
    let Some(signal) = next_signal(&read) else {
        return;
    };
    let code = 128 + signal;
    let started = Instant::now();
    let live = live_submitters();
    let calls: usize = live.iter().map(|(s, _)| s.calls_in_flight()).sum();
    say!(
        "hype: interrupted ({}): cancelling {} in flight and closing {} (at most {}s; press Ctrl-C again to exit at once)",
        name(signal),
        count(calls, "call"),
        count(live.len(), "submitter"),
        CLOSE_BOUND.as_secs()
    );
    // A second signal ends the process at once, whatever the close does.
    let again = std::thread::Builder::new()
        .name("hype-interrupt-again".to_owned())
        .spawn(move || {
            if let Some(signal) = next_signal(&read) {
                say!(
                    "hype: interrupted again ({}): exiting at once with {}",
                    name(signal),
                    128 + signal
                );
                std::process::exit(128 + signal);
            }
        });
    if again.is_err() {
        say!("hype: a second Ctrl-C cannot cut the close short (no thread for it)");
    }
    let summary = close_all(live, crate::clock::later(started, CLOSE_BOUND));
    say!(
        "hype: {summary} in {:.1}s; exiting with {code}",
        started.elapsed().as_secs_f64()
    );
    std::process::exit(code);
}

/// Closes every submitter on its own runtime (one without a runtime on a
/// small one of this thread's) until `deadline`; says how it went.
fn close_all(live: Vec<Registered>, deadline: Instant) -> String {
    let total = live.len();
    let sessions: Vec<String> = live.iter().map(|(s, _)| s.session().to_owned()).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return format!("could not close any submitter (no tokio runtime: {err})"),
    };
    let results = runtime.block_on(async move {
        let closes = live.into_iter().map(|(submitter, handle)| {
            let close = async move { submitter.close().await };
            let task = match handle {
                Some(handle) => handle.spawn(close),
                None => tokio::spawn(close),
            };
            tokio::time::timeout_at(deadline.into(), task)
        });
        futures::future::join_all(closes).await
    });
    let mut closed = 0;
    let mut problems = Vec::new();
    let mut unfinished = 0;
    for (result, session) in results.into_iter().zip(sessions) {
        match result {
            Ok(Ok(Ok(()))) => closed += 1,
            Ok(Ok(Err(err))) => problems.push(format!("session {session}: {err}")),
            // Its runtime has shut down (the task was dropped) or it panicked.
            Ok(Err(err)) => {
                problems.push(format!("session {session}: its close did not run: {err}"))
            }
            Err(_) => unfinished += 1,
        }
    }
    let mut summary = if closed == total {
        format!("closed {}", count(total, "submitter"))
    } else {
        format!("closed {closed} of {}", count(total, "submitter"))
    };
    if unfinished > 0 {
        summary.push_str(&format!(
            "; {unfinished} did not finish closing within {}s",
            CLOSE_BOUND.as_secs()
        ));
    }
    if !problems.is_empty() {
        summary.push_str(&format!("; {}", problems.join("; ")));
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_names() {
        assert_eq!(count(1, "call"), "1 call");
        assert_eq!(count(0, "call"), "0 calls");
        assert_eq!(count(3, "submitter"), "3 submitters");
        assert_eq!(name(SIGINT), "SIGINT");
        assert_eq!(name(SIGTERM), "SIGTERM");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_all_closes_registered_submitters_on_their_runtime() {
        let submitter = crate::Submitter::builder(crate::LocalCluster::new())
            .build()
            .await
            .unwrap();
        let live: Vec<_> = live_submitters()
            .into_iter()
            .filter(|(s, _)| s.session() == submitter.session())
            .collect();
        assert_eq!(live.len(), 1, "the submitter registered itself");
        assert!(live[0].1.is_some(), "with the runtime it was built on");
        let deadline = crate::clock::later(Instant::now(), Duration::from_secs(10));
        let summary = tokio::task::spawn_blocking(move || close_all(live, deadline))
            .await
            .unwrap();
        assert_eq!(summary, "closed 1 submitter");
        assert!(submitter.is_closed());
        assert!(
            live_submitters()
                .iter()
                .all(|(s, _)| s.session() != submitter.session()),
            "a closed submitter is not closed again"
        );
    }
}
