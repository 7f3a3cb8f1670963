//! `hype-run --worker`: the main process of a warm worker pod
//! (`docs/protocol.md` §8). It reads [`WorkerRequest`] frames on its stdin
//! and writes [`WorkerEvent`] frames on its stdout (its own messages go to
//! stderr), and runs every call as a fresh `hype-run <call>` child process
//! ([`call`]), so that nothing of one call (globals, a panic, an exit, a
//! leak) reaches the next.
//!
//! ```text
//! hype-run --worker [--idle-for SECONDS]
//!                   [--executable-uri URI --executable-sha256 HEX --executable-len BYTES]
//! ```
//!
//! - With `--executable-*`, the shipped executable is fetched and verified
//!   into the launcher's cache once, before the first call: every call's
//!   `hype-run` then finds it there. Without, the worker runs calls with its
//!   own binary (an image with the program baked in).
//! - It keeps every event of a call until the submitter acknowledges it
//!   ([`journal`]) and sends them again on `Attach`: a stream that drops
//!   and is re-attached loses nothing.
//! - It exits (code 0) after `--idle-for` seconds (default 60) with no call
//!   running and none unacknowledged, when no request (not even a `Ping`)
//!   came for that long (the stream is gone: it kills its calls first),
//!   after `Shutdown` once its calls ended and were acknowledged, and when
//!   its stdin ends once its calls ended. A malformed request loses the
//!   framing: it says so (`Error` without an ID), kills its calls and
//!   exits with code 65.

mod call;
mod journal;

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::Error;
use crate::executable;
use crate::launch;
use crate::staging::{self, Staging};
use crate::wire::{
    BlobRef, EXIT_MALFORMED_CALL, FrameDecoder, WORKER_PROTOCOL_VERSION, WorkerEvent,
    WorkerRequest, encode_frame,
};
use journal::Journal;

/// How long a worker waits, by default, without a call before it exits.
pub const DEFAULT_IDLE_FOR: Duration = Duration::from_secs(60);

/// The longest `--idle-for` accepted: one day.
const MAX_IDLE_FOR: Duration = Duration::from_secs(24 * 3600);

const USAGE: &str = "usage: hype-run --worker [--idle-for SECONDS] [--executable-uri URI --executable-sha256 HEX --executable-len BYTES]";

/// A worker's command line, after `--worker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// Exit after this long without a call, or without a request.
    pub idle_for: Duration,
    /// The shipped executable to fetch before the first call.
    pub executable: Option<BlobRef>,
}

/// Parses the arguments after `--worker`.
pub(crate) fn parse(args: &[OsString]) -> Result<Options, Error> {
    let bad = |message: String| Error::BadInvocation {
        message: format!("{message}; {USAGE}"),
    };
    let mut idle_for = DEFAULT_IDLE_FOR;
    let (mut uri, mut sha256, mut len) = (None, None, None);
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let flag = flag
            .to_str()
            .ok_or_else(|| bad("an argument is not UTF-8".to_owned()))?;
        let value = rest
            .next()
            .and_then(|v| v.to_str())
            .ok_or_else(|| bad(format!("{flag} needs a value")))?;
        match flag {
            "--idle-for" => {
                let seconds: u64 = value.parse().map_err(|_| {
                    bad(format!(
                        "--idle-for {value:?} is not a whole number of seconds"
                    ))
                })?;
                idle_for = Duration::from_secs(seconds);
                if idle_for.is_zero() || idle_for > MAX_IDLE_FOR {
                    return Err(bad(format!(
                        "--idle-for {seconds} is out of range (1 to {} seconds)",
                        MAX_IDLE_FOR.as_secs()
                    )));
                }
            }
            "--executable-uri" => uri = Some(value.to_owned()),
            "--executable-sha256" => {
                if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(format!(
                        "--executable-sha256 {value:?} is not 64 hex digits"
                    )));
                }
                sha256 = Some(value.to_ascii_lowercase());
            }
            "--executable-len" => {
                len = Some(value.parse::<u64>().map_err(|_| {
                    bad(format!(
                        "--executable-len {value:?} is not a number of bytes"
                    ))
                })?)
            }
            other => return Err(bad(format!("unknown flag {other:?}"))),
        }
    }
    let executable = match (uri, sha256, len) {
        (None, None, None) => None,
        (Some(uri), Some(sha256), Some(len)) => Some(BlobRef::new(uri, len, sha256)),
        _ => {
            return Err(bad(
                "--executable-uri, --executable-sha256 and --executable-len go together".to_owned(),
            ));
        }
    };
    Ok(Options {
        idle_for,
        executable,
    })
}

/// Runs `hype-run --worker` with the arguments after `--worker` and gives
/// its exit code; an error before the worker takes calls (bad arguments,
/// an executable that cannot be fetched) is returned for `hype-run` to
/// report as any failure.
pub(crate) fn main(args: &[OsString]) -> Result<i32, Error> {
    let options = parse(args)?;
    let executable_sha256 = prepare(options.executable.as_ref())?;
    let dir = tempfile::Builder::new()
        .prefix("hype-worker-")
        .tempdir()
        .map_err(|err| Error::staging_io("create", "the worker's directory", err))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Error::Config {
            message: format!("cannot start the worker's tokio runtime: {err}"),
        })?;
    let (requests, incoming) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("hype-worker-stdin".to_owned())
        .spawn(move || read_requests(&requests))
        .map_err(|err| Error::Config {
            message: format!("cannot start the worker's stdin thread: {err}"),
        })?;
    say(&format!(
        "hype-run: worker ready (executable {executable_sha256}, idle for {} s)",
        options.idle_for.as_secs()
    ));
    // The loop runs on this thread, which lives as long as the process:
    // the children it forks get the parent-death signal only when the
    // process dies (see `crate::process`).
    let code = runtime.block_on(
        Worker::new(executable_sha256, options.idle_for, dir.path().to_owned()).run(incoming),
    );
    Ok(code)
}

/// Fetches and verifies the shipped executable into the cache, or hashes
/// this binary: the SHA-256 of what calls will run with.
fn prepare(executable: Option<&BlobRef>) -> Result<String, Error> {
    match executable {
        Some(blob) => {
            let store = store_for(&blob.uri)?;
            launch::plan(blob, &store, "hype-run --worker")?;
            Ok(blob.sha256.to_ascii_lowercase())
        }
        None => {
            let own = std::env::current_exe().map_err(|err| Error::Config {
                message: format!("cannot find the worker's own executable: {err}"),
            })?;
            executable::hash_file(&own)
                .map(|digest| digest.sha256)
                .map_err(|err| Error::Config {
                    message: format!("cannot hash {}: {err}", own.display()),
                })
        }
    }
}

/// The staging store a blob URI is in: what precedes `/blobs/sha256/`.
fn store_for(uri: &str) -> Result<Arc<dyn Staging>, Error> {
    match uri.rsplit_once("/blobs/sha256/") {
        Some((location, _)) => staging::open(location),
        None => Err(Error::BadInvocation {
            message: format!(
                "--executable-uri {uri:?} is not a staged blob (…/blobs/sha256/<hex>)"
            ),
        }),
    }
}

/// A line of the worker's own on stderr (never stdout: that is the
/// protocol).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// What the stdin thread hands the loop.
enum Incoming {
    /// A whole request.
    Request(WorkerRequest),
    /// The framing is lost: nothing more can be read.
    Malformed(Error),
    /// Stdin ended (or could not be read).
    End,
}

/// Reads frames from stdin until it ends or one is malformed.
fn read_requests(requests: &mpsc::UnboundedSender<Incoming>) {
    let mut stdin = std::io::stdin().lock();
    let mut decoder = FrameDecoder::new();
    let mut buffer = vec![0; 64 << 10];
    loop {
        let n = match stdin.read(&mut buffer) {
            Ok(0) => {
                let _ = requests.send(match decoder.finish() {
                    Ok(()) => Incoming::End,
                    Err(err) => Incoming::Malformed(err),
                });
                return;
            }
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                say(&format!("hype-run: worker: cannot read stdin: {err}"));
                let _ = requests.send(Incoming::End);
                return;
            }
        };
        if let Err(err) = decoder.push(&buffer[..n]) {
            let _ = requests.send(Incoming::Malformed(err));
            return;
        }
        loop {
            match decoder.next_message::<WorkerRequest>() {
                Ok(Some(request)) => {
                    if requests.send(Incoming::Request(request)).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    let _ = requests.send(Incoming::Malformed(err));
                    return;
                }
            }
        }
    }
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Idle for `idle_for` with nothing kept.
    Idle,
    /// No request for `idle_for`.
    StreamGone,
    /// `Shutdown`, and everything acknowledged.
    Shutdown,
    /// Stdin ended and the calls ended.
    InputEnded,
    /// A malformed request.
    Malformed,
}

/// The loop's state.
struct Worker {
    executable_sha256: String,
    idle_for: Duration,
    /// Where the calls' termination messages are written.
    dir: PathBuf,
    journal: Journal,
    last_request: Instant,
    idle_since: Instant,
    shutting_down: bool,
    input_ended: bool,
    events_tx: mpsc::UnboundedSender<(u64, WorkerEvent)>,
    events: mpsc::UnboundedReceiver<(u64, WorkerEvent)>,
}

impl Worker {
    fn new(executable_sha256: String, idle_for: Duration, dir: PathBuf) -> Worker {
        let (events_tx, events) = mpsc::unbounded_channel();
        let now = Instant::now();
        Worker {
            executable_sha256,
            idle_for,
            dir,
            journal: Journal::default(),
            last_request: now,
            idle_since: now,
            shutting_down: false,
            input_ended: false,
            events_tx,
            events,
        }
    }

    async fn run(mut self, mut incoming: mpsc::UnboundedReceiver<Incoming>) -> i32 {
        let exit = loop {
            if let Some(exit) = self.finished() {
                break exit;
            }
            let deadline = self.next_deadline();
            tokio::select! {
                // Events first: a call's end is recorded before a request
                // that may acknowledge it.
                biased;
                Some((id, event)) = self.events.recv() => self.record(id, event),
                next = incoming.recv(), if !self.input_ended => match next {
                    Some(Incoming::Request(request)) => {
                        self.last_request = Instant::now();
                        self.handle(request);
                    }
                    Some(Incoming::Malformed(err)) => {
                        say(&format!("hype-run: worker: {err}"));
                        self.write(&WorkerEvent::Error { id: None, message: err.to_string() });
                        break Exit::Malformed;
                    }
                    Some(Incoming::End) | None => self.input_ended = true,
                },
                () = tokio::time::sleep_until(deadline) => {}
            }
        };
        let killed = self.journal.kill_all();
        let why = match exit {
            Exit::Idle => format!("idle for {} s", self.idle_for.as_secs()),
            Exit::StreamGone => format!(
                "no request for {} s: the stream is gone{}",
                self.idle_for.as_secs(),
                if killed > 0 {
                    format!("; killed {killed} calls")
                } else {
                    String::new()
                }
            ),
            Exit::Shutdown => "shut down".to_owned(),
            Exit::InputEnded => "stdin ended".to_owned(),
            Exit::Malformed => "malformed request".to_owned(),
        };
        say(&format!("hype-run: worker exits: {why}"));
        let _ = std::io::stdout().flush();
        match exit {
            Exit::Malformed => EXIT_MALFORMED_CALL,
            _ => 0,
        }
    }

    /// Whether the worker is done, and why.
    fn finished(&self) -> Option<Exit> {
        let now = Instant::now();
        let running = self.journal.running();
        if self.input_ended && running == 0 {
            return Some(Exit::InputEnded);
        }
        if self.shutting_down && running == 0 && self.journal.is_empty() {
            return Some(Exit::Shutdown);
        }
        if now.duration_since(self.last_request) >= self.idle_for && !self.input_ended {
            return Some(Exit::StreamGone);
        }
        if running == 0
            && self.journal.is_empty()
            && now.duration_since(self.idle_since) >= self.idle_for
        {
            return Some(Exit::Idle);
        }
        None
    }

    /// When to look at the idle rules again.
    fn next_deadline(&self) -> Instant {
        let gone = self.last_request + self.idle_for;
        let idle = self.idle_since + self.idle_for;
        gone.min(idle)
            .max(Instant::now() + Duration::from_millis(10))
    }

    fn handle(&mut self, request: WorkerRequest) {
        match request {
            WorkerRequest::Attach => {
                self.write(&WorkerEvent::Ready {
                    protocol: WORKER_PROTOCOL_VERSION,
                    executable_sha256: self.executable_sha256.clone(),
                });
                for frame in self.journal.replay() {
                    write_frame(frame);
                }
                flush();
            }
            WorkerRequest::Ping => {}
            WorkerRequest::Call {
                id,
                execution_id,
                call,
            } => self.start(id, execution_id, call),
            WorkerRequest::Cancel { id } => self.journal.cancel(id),
            WorkerRequest::Ack { id } => {
                self.journal.acknowledge(id);
                if self.journal.running() == 0 && self.journal.is_empty() {
                    self.idle_since = Instant::now();
                }
            }
            WorkerRequest::Shutdown => self.shutting_down = true,
        }
    }

    fn start(&mut self, id: u64, execution_id: String, call: String) {
        if self.journal.knows(id) {
            // A call sent again after a reconnect: it runs (or ran) once.
            return;
        }
        self.journal.open(id);
        let refuse = |worker: &mut Worker, message: String| {
            worker.record(
                id,
                WorkerEvent::Error {
                    id: Some(id),
                    message,
                },
            );
            worker.record(
                id,
                WorkerEvent::Ended {
                    id,
                    status: crate::wire::ExitStatus::Code(crate::wire::EXIT_BAD_INVOCATION),
                    out_of_memory: false,
                },
            );
        };
        if self.shutting_down {
            refuse(
                self,
                "the worker is shutting down: it takes no more calls".to_owned(),
            );
            return;
        }
        match call::start(id, &execution_id, &call, &self.dir, self.events_tx.clone()) {
            Ok(process) => self.journal.started(id, process),
            Err(message) => refuse(self, message),
        }
    }

    /// Keeps a call's event for replay and sends it.
    fn record(&mut self, id: u64, event: WorkerEvent) {
        let ended = matches!(event, WorkerEvent::Ended { .. });
        match encode_frame(&event) {
            Ok(frame) => {
                write_frame(&frame);
                flush();
                self.journal.keep(id, frame, ended);
            }
            Err(err) => say(&format!("hype-run: worker: cannot encode an event: {err}")),
        }
        if ended && self.journal.running() == 0 {
            self.idle_since = Instant::now();
        }
    }

    /// Sends an event that is not kept (`Ready`, the worker's own errors).
    fn write(&self, event: &WorkerEvent) {
        match encode_frame(event) {
            Ok(frame) => {
                write_frame(&frame);
                flush();
            }
            Err(err) => say(&format!("hype-run: worker: cannot encode an event: {err}")),
        }
    }
}

/// Writes a frame to stdout. With no stream attached, a kubelet keeps the
/// bytes only in the container log; a closed stdout is ignored the same
/// way: the journal keeps what matters.
fn write_frame(frame: &[u8]) {
    let _ = std::io::stdout().lock().write_all(frame);
}

fn flush() {
    let _ = std::io::stdout().lock().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn options_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse(&args(&[])).unwrap(),
            Options {
                idle_for: DEFAULT_IDLE_FOR,
                executable: None
            }
        );
        let sha = "ab".repeat(32);
        let options = parse(&args(&[
            "--idle-for",
            "5",
            "--executable-uri",
            "gs://b/p/blobs/sha256/x",
            "--executable-sha256",
            &sha,
            "--executable-len",
            "12",
        ]))
        .unwrap();
        assert_eq!(options.idle_for, Duration::from_secs(5));
        assert_eq!(
            options.executable,
            Some(BlobRef::new("gs://b/p/blobs/sha256/x", 12, sha))
        );
        for (bad, says) in [
            (&["--idle-for", "0"][..], "out of range"),
            (&["--idle-for", "1m"][..], "whole number"),
            (&["--idle-for"][..], "needs a value"),
            (&["--executable-uri", "gs://b/x"][..], "go together"),
            (&["--executable-sha256", "xyz"][..], "64 hex"),
            (&["--frobnicate", "1"][..], "unknown flag"),
        ] {
            let err = parse(&args(bad)).unwrap_err().to_string();
            assert!(err.contains(says), "{bad:?}: {err}");
            assert!(err.contains("usage: hype-run --worker"), "{err}");
        }
    }
}
