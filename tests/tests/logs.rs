//! The remote function's output, streamed back to the caller line by line
//! with its execution ID, on every backend: every line exactly once,
//! including the last lines before a clean exit and the lines written just
//! before a crash; `LogMode::OnFailure` and `LogMode::Off`; long lines
//! split; a broken pod log stream reopened without a repeated or lost line.
//!
//! Lines are checked as the `tracing` events the caller emits for them
//! (`hype_tests::captured`); the same lines go to the caller's stderr.

mod common;

use std::time::Duration;

use common::backend::{Backend, Setup};
use hype::{Error, LogMode};
use hype_tests::{captured, output};

on_every_backend!(
    every_line_arrives_once_with_its_execution_id,
    the_lines_before_a_crash_arrive,
);

/// A tag unique to one test run, so lines of other tests do not count.
fn tag(name: &str, backend: Backend) -> String {
    format!("{name}-{backend:?}-{}", std::process::id())
}

/// The lines `chatter` writes for `tag`, in any order.
fn expected(tag: &str, lines: u32) -> Vec<String> {
    let mut all: Vec<String> = (0..lines)
        .flat_map(|i| [format!("{tag} out {i}"), format!("{tag} err {i}")])
        .collect();
    all.sort();
    all
}

/// The captured lines of `tag`, sorted, and the execution IDs they carried.
fn seen(tag: &str) -> (Vec<String>, Vec<String>) {
    let lines = captured::lines(tag);
    let mut ids: Vec<String> = lines.iter().map(|(id, _)| id.clone()).collect();
    ids.dedup();
    let mut text: Vec<String> = lines.into_iter().map(|(_, line)| line).collect();
    text.sort();
    (text, ids)
}

const BOUND: Duration = Duration::from_secs(120);

async fn every_line_arrives_once_with_its_execution_id(backend: Backend) {
    captured::install();
    let Some(s) = Setup::new(backend, "every_line_arrives_once").await else {
        return;
    };
    let tag = tag("once", backend);
    let n = tokio::time::timeout(
        BOUND,
        s.submitter
            .run(output::chatter(tag.clone(), 200, 300, false), &s.env),
    )
    .await
    .expect("bounded")
    .unwrap();
    assert_eq!(n, 200);
    let (lines, ids) = seen(&tag);
    assert_eq!(lines, expected(&tag, 200), "every line, exactly once");
    assert_eq!(ids.len(), 1, "one execution: {ids:?}");
    assert!(ids[0].starts_with("hype-chatter-"), "{ids:?}");
    s.finish().await;
}

async fn the_lines_before_a_crash_arrive(backend: Backend) {
    captured::install();
    let Some(s) = Setup::new(backend, "the_lines_before_a_crash_arrive").await else {
        return;
    };
    let tag = tag("crash", backend);
    let err = tokio::time::timeout(
        BOUND,
        s.submitter
            .run(output::chatter(tag.clone(), 20, 0, true), &s.env),
    )
    .await
    .expect("bounded")
    .unwrap_err();
    assert!(matches!(err, Error::RunnerFailed { .. }), "{err:?}");
    let (lines, _) = seen(&tag);
    let mut want = expected(&tag, 20);
    want.push(format!("{tag} last words"));
    want.sort();
    assert_eq!(lines, want, "every line up to the crash, exactly once");
    s.finish().await;
}

#[tokio::test]
async fn on_failure_shows_only_failed_calls_and_off_shows_nothing() {
    captured::install();
    let s = Setup::new(Backend::Local, "modes").await.unwrap();
    let on_failure = s.env.clone().with_log_mode(LogMode::OnFailure);

    let ok = tag("held-ok", Backend::Local);
    s.submitter
        .run(output::chatter(ok.clone(), 5, 0, false), &on_failure)
        .await
        .unwrap();
    assert!(
        seen(&ok).0.is_empty(),
        "a call that succeeded shows nothing"
    );

    let failed = tag("held-failed", Backend::Local);
    s.submitter
        .run(output::chatter(failed.clone(), 5, 0, true), &on_failure)
        .await
        .unwrap_err();
    let mut want = expected(&failed, 5);
    want.push(format!("{failed} last words"));
    want.sort();
    assert_eq!(seen(&failed).0, want, "a failed call shows all it wrote");

    let off = tag("off", Backend::Local);
    let err = s
        .submitter
        .run(
            output::chatter(off.clone(), 5, 0, true),
            &s.env.clone().with_log_mode(LogMode::Off),
        )
        .await
        .unwrap_err();
    assert!(seen(&off).0.is_empty());
    let Error::RunnerFailed { stderr_tail, .. } = err else {
        panic!("expected RunnerFailed");
    };
    assert!(
        stderr_tail.contains(&format!("{off} last words")),
        "the error keeps the end of stderr: {stderr_tail}"
    );
    s.finish().await;
}

#[tokio::test]
async fn a_fan_out_shows_the_output_of_failed_calls_only_by_default() {
    captured::install();
    let s = Setup::new(Backend::Local, "fan-out modes").await.unwrap();
    let ok = tag("fan-ok", Backend::Local);
    let failed = tag("fan-failed", Backend::Local);
    let calls = vec![
        output::chatter(ok.clone(), 3, 0, false),
        output::chatter(failed.clone(), 3, 0, true),
    ];
    let results: Vec<_> =
        futures::StreamExt::collect(s.submitter.map(calls, &s.env).progress(false)).await;
    assert!(results[0].1.is_ok() && results[1].1.is_err(), "{results:?}");
    assert!(seen(&ok).0.is_empty(), "{:?}", seen(&ok));
    assert_eq!(seen(&failed).0.len(), 7, "{:?}", seen(&failed));
    s.finish().await;
}

#[tokio::test]
async fn a_long_line_is_split_not_held_whole() {
    captured::install();
    let s = Setup::new(Backend::Local, "long line").await.unwrap();
    let tag = tag("long", Backend::Local);
    let len = 2 * hype::logs::MAX_LINE + 100;
    s.submitter
        .run(output::long_line(tag.clone(), len), &s.env)
        .await
        .unwrap();
    let first = captured::lines(&tag);
    assert_eq!(first.len(), 1, "the tag starts one piece: {first:?}");
    let pieces: Vec<usize> = captured::lines_of(&first[0].0)
        .iter()
        .map(String::len)
        .collect();
    let max = hype::logs::MAX_LINE;
    assert_eq!(pieces, [max, max, tag.len() + len - 2 * max], "{pieces:?}");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_pod_log_stream_is_reopened_without_a_lost_or_repeated_line() {
    captured::install();
    let s = Setup::new(Backend::KubeProcesses, "broken log stream")
        .await
        .unwrap();
    let server = s.server.as_ref().unwrap();
    server.faults().break_next_log_stream();
    let tag = tag("reopened", Backend::KubeProcesses);
    // A pause halfway: the first chunk is delivered, the stream breaks,
    // and the rest comes on the reopened one.
    s.submitter
        .run(output::chatter(tag.clone(), 100, 1_000, false), &s.env)
        .await
        .unwrap();
    assert_eq!(seen(&tag).0, expected(&tag, 100));
    let opened = server
        .request_log()
        .iter()
        .filter(|(_, path)| path.contains("/log") && path.contains("follow=true"))
        .count();
    assert_eq!(opened, 2, "the stream was opened again once");
    s.finish().await;
}

/// How `chatter_with` treats the submitter's stderr.
#[derive(Debug, Clone, Copy)]
enum Stderr {
    /// File descriptor 2 is closed.
    Closed,
    /// A pipe whose read end is closed: every write is EPIPE.
    BrokenPipe,
    /// A pipe nobody reads: writes block once it is full.
    NeverRead,
}

/// Runs `hype-test-submitter chatter` (100 calls that print 40 KB each,
/// streamed to its stderr) with `stderr`; gives its exit status and
/// stdout, or fails after two minutes.
fn chatter_with(stderr: Stderr) -> (std::process::ExitStatus, String) {
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_hype-test-submitter");
    let mut command = match stderr {
        Stderr::Closed => {
            let mut sh = Command::new("sh");
            sh.args(["-c", r#"exec "$0" chatter - 2>&-"#, bin]);
            sh
        }
        Stderr::BrokenPipe | Stderr::NeverRead => {
            let mut c = Command::new(bin);
            c.args(["chatter", "-"]).stderr(Stdio::piped());
            c
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut child = command
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start hype-test-submitter");
    // Held (never read) until the child is gone, or dropped at once.
    let _unread = match stderr {
        Stderr::BrokenPipe => {
            drop(child.stderr.take());
            None
        }
        _ => child.stderr.take(),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hype-test-submitter chatter with stderr {stderr:?} still runs after 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    (status, out)
}

/// Remote lines go to the caller's stderr through one thread of hype's
/// own: a closed stderr, a broken pipe and a pipe nobody reads (64 KiB of
/// the 8 MB written fit in it) neither panic nor stall the calls. Before,
/// `eprintln!` panicked on the first two and blocked the runtime's worker
/// threads for good on the third.
#[test]
fn a_closed_broken_or_unread_stderr_neither_panics_nor_stalls_the_calls() {
    for stderr in [Stderr::Closed, Stderr::BrokenPipe, Stderr::NeverRead] {
        let (status, out) = chatter_with(stderr);
        assert!(
            status.success(),
            "stderr {stderr:?}: {status}; stdout: {out}"
        );
        assert_eq!(
            out.trim(),
            "done 100",
            "stderr {stderr:?}: every call returned"
        );
    }
}
