//! `hype-run --worker` as a process, spoken to over its stdin and stdout
//! as a submitter does through an attached stream (`docs/protocol.md` §8):
//! each call a fresh process (globals, panics, exits, leaks stay with their
//! call), output lines once, replay on `Attach`, cancel, no call run twice,
//! the idle and stream-gone exits, a malformed request, and the launcher
//! fetching the shipped executable once. Every wait is bounded.

mod common;

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hype::RemoteFn;
use hype::wire::{
    self, BlobRef, BuildInfo, CallEnvelope, ExitStatus, FrameDecoder, OutputStream, Payload,
    Reference, WORKER_PROTOCOL_VERSION, WorkerEvent, WorkerRequest, encode_frame,
};
use hype::{LocalStaging, Staging};
use hype_tests::{containers, failures, isolation, math, output, process};
use serde::Serialize;

const WAIT: Duration = Duration::from_secs(30);

/// A running `hype-run --worker` and its events.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<WorkerEvent>,
    staging: tempfile::TempDir,
}

impl Worker {
    /// `hype-test-worker hype-run --worker <args>`.
    fn start(args: &[&str]) -> Worker {
        Worker::start_program(&common::worker(), args, &[])
    }

    fn start_program(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Worker {
        let mut child = Command::new(program)
            .arg("hype-run")
            .arg("--worker")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            let mut decoder = FrameDecoder::new();
            let mut buffer = [0u8; 8192];
            while let Ok(n) = stdout.read(&mut buffer) {
                if n == 0 {
                    return;
                }
                decoder.push(&buffer[..n]).unwrap();
                while let Some(event) = decoder.next_message::<WorkerEvent>().unwrap() {
                    if tx.send(event).is_err() {
                        return;
                    }
                }
            }
        });
        Worker {
            stdin: child.stdin.take(),
            child,
            events,
            staging: tempfile::tempdir().unwrap(),
        }
    }

    fn send(&mut self, request: &WorkerRequest) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(&encode_frame(request).unwrap()).unwrap();
        stdin.flush().unwrap();
    }

    fn next(&self) -> WorkerEvent {
        self.events
            .recv_timeout(WAIT)
            .expect("the worker sends its next event in time")
    }

    /// `Attach`, and the `Ready` that answers it.
    fn attach(&mut self) -> String {
        self.send(&WorkerRequest::Attach);
        match self.next() {
            WorkerEvent::Ready {
                protocol,
                executable_sha256,
            } => {
                assert_eq!(protocol, WORKER_PROTOCOL_VERSION);
                executable_sha256
            }
            other => panic!("Ready expected, got {other:?}"),
        }
    }

    /// The `hype-run` argument of a call of `A`.
    fn call_text<A: RemoteFn + Serialize>(&self, args: A) -> String {
        let envelope = CallEnvelope::new(
            A::ID,
            A::SIGNATURE,
            Payload::Inline(wire::Bytes::from(
                wire::encode_value(A::ID, "arguments", &args).unwrap(),
            )),
        )
        .with_build(BuildInfo::current())
        .with_staging(format!("file://{}", self.staging.path().display()));
        Reference::Inline(wire::encode_call(&envelope).unwrap()).to_string()
    }

    fn call<A: RemoteFn + Serialize>(&mut self, id: u64, args: A) {
        let text = self.call_text(args);
        self.send(&WorkerRequest::call(id, &format!("hype-w-{id}"), text));
    }

    /// The call's events up to its `Ended`, which it checks are all of
    /// call `id` and start with `Started`.
    fn until_ended(&self, id: u64) -> Vec<WorkerEvent> {
        let mut seen = Vec::new();
        loop {
            let event = self.next();
            let done = matches!(event, WorkerEvent::Ended { .. });
            seen.push(event);
            if done {
                break;
            }
        }
        assert!(
            matches!(&seen[0], WorkerEvent::Started { id: i, execution_id } if *i == id && *execution_id == format!("hype-w-{id}")),
            "{seen:?}"
        );
        for event in &seen {
            assert_eq!(call_id(event), Some(id), "{seen:?}");
        }
        seen
    }

    /// Waits for the worker to exit; its exit code.
    fn exit_code(&mut self, bound: Duration) -> i32 {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().expect("the worker exits, not killed");
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not exit within {bound:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call_id(event: &WorkerEvent) -> Option<u64> {
    match event {
        WorkerEvent::Started { id, .. }
        | WorkerEvent::Output { id, .. }
        | WorkerEvent::Outcome { id, .. }
        | WorkerEvent::Ended { id, .. } => Some(*id),
        WorkerEvent::Error { id, .. } => *id,
        _ => None,
    }
}

/// The value the call's `Outcome` holds.
fn returned<T: serde::de::DeserializeOwned>(function: &str, events: &[WorkerEvent]) -> T {
    let message = events
        .iter()
        .find_map(|e| match e {
            WorkerEvent::Outcome { message, .. } => Some(message.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("an Outcome expected: {events:?}"));
    let Reference::Inline(bytes) = Reference::parse(&message).unwrap() else {
        panic!("inline outcome expected: {message}")
    };
    match wire::decode_outcome(&bytes).unwrap().outcome {
        wire::Outcome::Returned(Payload::Inline(value)) => {
            wire::decode_value(function, "result", &value).unwrap()
        }
        other => panic!("a returned value expected, got {other:?}"),
    }
}

fn ended(events: &[WorkerEvent]) -> (ExitStatus, bool) {
    match events.last() {
        Some(WorkerEvent::Ended {
            status,
            out_of_memory,
            ..
        }) => (*status, *out_of_memory),
        other => panic!("Ended expected last, got {other:?}"),
    }
}

#[test]
fn every_call_is_a_fresh_process_whatever_the_last_one_did() {
    let mut worker = Worker::start(&["--idle-for", "60"]);
    let own = hype_runtime::__tools::hash_file(&common::worker()).unwrap();
    assert_eq!(
        worker.attach(),
        own.sha256,
        "Ready names the worker's own binary"
    );

    worker.call(1, math::AddArgs { a: 2, b: 3 });
    let events = worker.until_ended(1);
    assert_eq!(returned::<i64>(math::AddArgs::ID, &events), 5);
    assert_eq!(ended(&events), (ExitStatus::Code(0), false));

    // A global set by one call is not seen by the next.
    for id in [2, 3] {
        worker.call(id, isolation::BumpCounterArgs {});
        let events = worker.until_ended(id);
        assert_eq!(returned::<u64>(isolation::BumpCounterArgs::ID, &events), 1);
    }
    // A leak, a panic and an exit stay with their calls.
    worker.call(4, isolation::LeakArgs { mib: 100 });
    let events = worker.until_ended(4);
    assert_eq!(
        returned::<usize>(isolation::LeakArgs::ID, &events),
        100 << 20
    );
    worker.call(
        5,
        failures::ExplodeArgs {
            message: "boom".into(),
        },
    );
    let events = worker.until_ended(5);
    assert_eq!(ended(&events).0, ExitStatus::Code(wire::EXIT_PANICKED));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, WorkerEvent::Outcome { .. })),
        "a panic writes an outcome"
    );
    worker.call(6, process::ExitAbruptlyArgs { code: 3 });
    let events = worker.until_ended(6);
    assert_eq!(ended(&events), (ExitStatus::Code(3), false));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, WorkerEvent::Outcome { .. })),
        "{events:?}"
    );

    worker.call(7, isolation::BumpCounterArgs {});
    let events = worker.until_ended(7);
    assert_eq!(returned::<u64>(isolation::BumpCounterArgs::ID, &events), 1);
    worker.call(8, math::AddArgs { a: 40, b: 2 });
    assert_eq!(
        returned::<i64>(math::AddArgs::ID, &worker.until_ended(8)),
        42
    );
}

#[test]
fn output_comes_once_and_unacknowledged_calls_are_replayed_on_attach() {
    let mut worker = Worker::start(&[]);
    worker.attach();
    worker.call(
        1,
        output::ChatterArgs {
            tag: "w".into(),
            lines: 3,
            pause_ms: 0,
            crash: false,
        },
    );
    let first = worker.until_ended(1);
    let lines: Vec<_> = first
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Output { stream, line, .. } => Some((*stream, line.to_vec())),
            _ => None,
        })
        .collect();
    let of = |stream: OutputStream| -> Vec<String> {
        lines
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, l)| String::from_utf8(l.clone()).unwrap())
            .collect()
    };
    // Each line exactly once, in order, without its line end.
    assert_eq!(of(OutputStream::Stdout), ["w out 0", "w out 1", "w out 2"]);
    assert_eq!(of(OutputStream::Stderr), ["w err 0", "w err 1", "w err 2"]);

    // A second call, then a new stream: Ready, then both calls' events
    // again, each call's in its first order.
    worker.call(2, math::AddArgs { a: 1, b: 1 });
    let second = worker.until_ended(2);
    worker.send(&WorkerRequest::Attach);
    assert!(matches!(worker.next(), WorkerEvent::Ready { .. }));
    let replayed: Vec<_> = (0..first.len() + second.len())
        .map(|_| worker.next())
        .collect();
    assert_eq!(replayed, [first.clone(), second].concat());

    // Acknowledged calls are forgotten: the next stream replays nothing
    // of them, and sending call 1 again does not run it again.
    worker.send(&WorkerRequest::Ack { id: 1 });
    worker.send(&WorkerRequest::Ack { id: 2 });
    worker.call(1, math::AddArgs { a: 5, b: 5 });
    worker.send(&WorkerRequest::Attach);
    assert!(matches!(worker.next(), WorkerEvent::Ready { .. }));
    worker.call(3, math::AddArgs { a: 2, b: 2 });
    let third = worker.until_ended(3);
    assert_eq!(returned::<i64>(math::AddArgs::ID, &third), 4);
}

#[test]
fn a_call_sent_twice_runs_once_and_a_cancel_kills_only_its_call() {
    let mut worker = Worker::start(&[]);
    worker.attach();
    worker.call(1, containers::SleepArgs { millis: 60_000 });
    worker.call(1, containers::SleepArgs { millis: 60_000 });
    assert!(matches!(worker.next(), WorkerEvent::Started { id: 1, .. }));
    worker.send(&WorkerRequest::Cancel { id: 1 });
    let event = worker.next();
    assert!(
        matches!(
            event,
            WorkerEvent::Ended {
                id: 1,
                status: ExitStatus::Signal(9),
                out_of_memory: false
            }
        ),
        "a cancelled call ends by SIGKILL, not as an OOM kill, and was started once: {event:?}"
    );
    worker.call(2, math::AddArgs { a: 1, b: 2 });
    assert_eq!(
        returned::<i64>(math::AddArgs::ID, &worker.until_ended(2)),
        3
    );
}

#[test]
fn an_idle_worker_exits_and_so_does_one_whose_stream_is_gone() {
    // Idle: pings keep the stream, but no call comes.
    let mut idle = Worker::start(&["--idle-for", "1"]);
    idle.attach();
    idle.send(&WorkerRequest::Ping);
    assert_eq!(idle.exit_code(WAIT), 0);

    // Stream gone: a call runs, and no request comes for the idle time.
    let mut gone = Worker::start(&["--idle-for", "2"]);
    gone.attach();
    gone.call(1, containers::SleepArgs { millis: 60_000 });
    assert!(matches!(gone.next(), WorkerEvent::Started { id: 1, .. }));
    assert_eq!(gone.exit_code(WAIT), 0);

    // Shutdown: exits once its call ended and was acknowledged.
    let mut worker = Worker::start(&[]);
    worker.attach();
    worker.call(1, math::AddArgs { a: 1, b: 2 });
    worker.until_ended(1);
    worker.send(&WorkerRequest::Shutdown);
    worker.call(2, math::AddArgs { a: 1, b: 2 });
    let refused = worker.next();
    assert!(
        matches!(&refused, WorkerEvent::Error { id: Some(2), message } if message.contains("shutting down")),
        "{refused:?}"
    );
    assert!(matches!(worker.next(), WorkerEvent::Ended { id: 2, .. }));
    worker.send(&WorkerRequest::Ack { id: 1 });
    worker.send(&WorkerRequest::Ack { id: 2 });
    assert_eq!(worker.exit_code(WAIT), 0);
}

#[test]
fn a_malformed_request_is_an_error_and_bad_options_are_named() {
    let mut worker = Worker::start(&[]);
    let stdin = worker.stdin.as_mut().unwrap();
    stdin.write_all(&[0, 0, 0, 2, 0xc1, 0xc1]).unwrap();
    stdin.flush().unwrap();
    let event = worker.next();
    assert!(
        matches!(&event, WorkerEvent::Error { id: None, message } if message.contains("malformed worker frame")),
        "{event:?}"
    );
    assert_eq!(worker.exit_code(WAIT), wire::EXIT_MALFORMED_CALL);

    let output = Command::new(common::worker())
        .args(["hype-run", "--worker", "--idle-for", "soon"])
        .env("HYPE_TERMINATION_MESSAGE_PATH", "/dev/null")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(wire::EXIT_BAD_INVOCATION));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--idle-for \"soon\""), "{stderr}");
}

/// A launcher worker fetches the shipped executable into its cache before
/// the first call, and every call runs it from there: one fetch.
#[test]
fn a_launcher_worker_fetches_the_executable_once() {
    let dir = tempfile::tempdir().unwrap();
    let staging = LocalStaging::new(dir.path().join("staging")).unwrap();
    let digest = hype_runtime::__tools::hash_file(&common::worker()).unwrap();
    let blob: BlobRef = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(staging.put_file(&common::worker(), &digest))
        .unwrap();
    let cache = dir.path().join("cache");
    let len = blob.len.to_string();
    let mut worker = Worker::start_program(
        Path::new(env!("CARGO_BIN_EXE_hype-launcher")),
        &[
            "--executable-uri",
            &blob.uri,
            "--executable-sha256",
            &blob.sha256,
            "--executable-len",
            &len,
        ],
        &[("HYPE_CACHE_DIR", cache.to_str().unwrap())],
    );
    assert_eq!(worker.attach(), digest.sha256);
    let cached = || std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
    assert!(
        cached() >= 1,
        "the executable is in the cache before any call"
    );
    // Remove the staged copy: calls must run from the cache.
    std::fs::remove_file(blob.uri.strip_prefix("file://").unwrap()).unwrap();
    for id in 1..=3 {
        let args = math::AddArgs { a: id as i64, b: 1 };
        let envelope = CallEnvelope::new(
            math::AddArgs::ID,
            math::AddArgs::SIGNATURE,
            Payload::Inline(wire::Bytes::from(
                wire::encode_value(math::AddArgs::ID, "arguments", &args).unwrap(),
            )),
        )
        .with_build(BuildInfo::current())
        .with_staging(format!("file://{}", staging.root().display()))
        .with_executable(blob.clone());
        let text = Reference::Inline(wire::encode_call(&envelope).unwrap()).to_string();
        worker.send(&WorkerRequest::call(id, &format!("hype-w-{id}"), text));
        let events = worker.until_ended(id);
        assert_eq!(returned::<i64>(math::AddArgs::ID, &events), id as i64 + 1);
    }
}
