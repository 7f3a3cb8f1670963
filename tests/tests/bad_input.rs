//! Bad input to `hype-run`: each case gives one clear stderr line and its
//! own exit code, and the submitter turns it into the matching `Error`.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use common::Setup;
use hype::wire::{self, BlobRef, BuildInfo, CallEnvelope, Payload, Reference};
use hype::{Error, RemoteFn, RunEnvironment};
use hype_tests::defaults::{AddOnGpuArgs, SleepBoundedArgs};
use hype_tests::math::AddArgs;

const ADD: &str = "hype_tests::math::add";

fn envelope(function: &str, signature: u64, payload: Payload, staging: &Path) -> CallEnvelope {
    CallEnvelope::new(function, signature, payload)
        .with_build(BuildInfo::current())
        .with_staging(format!("file://{}", staging.display()))
}

fn add_payload(a: i64, b: i64) -> Payload {
    Payload::Inline(wire::Bytes::from(
        wire::encode_value(ADD, "arguments", &AddArgs { a, b }).unwrap(),
    ))
}

fn inline(envelope: &CallEnvelope) -> String {
    Reference::Inline(wire::encode_call(envelope).unwrap()).to_string()
}

/// What running the worker as `hype-run` directly gave.
struct Direct {
    code: i32,
    stderr: String,
    termination: Option<String>,
}

impl Direct {
    fn run(program: &Path, args: &[OsString], dir: &Path) -> Direct {
        let termination = dir.join("termination-log");
        let _ = std::fs::remove_file(&termination);
        let output = Command::new(program)
            .arg("hype-run")
            .args(args)
            .env("HYPE_EXECUTION_ID", "hype-direct-1")
            .env("HYPE_TERMINATION_MESSAGE_PATH", &termination)
            .output()
            .expect("run worker");
        Direct {
            code: output.status.code().expect("exit code"),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            termination: std::fs::read_to_string(&termination).ok(),
        }
    }

    /// Asserts the exit code and a single `hype-run:` stderr line containing `needle`.
    fn assert_fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "stderr: {}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one stderr line, got: {lines:#?}");
        assert!(lines[0].starts_with("hype-run: "), "{}", lines[0]);
        assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
    }

    /// The error the termination message maps to.
    fn error(&self) -> Error {
        let text = self.termination.as_deref().expect("a termination message");
        let Reference::Inline(bytes) = Reference::parse(text).unwrap() else {
            panic!("inline outcome expected")
        };
        let outcome = wire::decode_outcome(&bytes).unwrap();
        let wire::Outcome::Failed(failure) = outcome.outcome else {
            panic!("failure expected, got {:?}", outcome.outcome)
        };
        failure.into_error(&outcome.function, &outcome.execution_id)
    }
}

async fn via_submitter(s: &Setup, call: String) -> Error {
    s.submitter
        .run_raw(ADD, "hype-bad-input-1", call, &RunEnvironment::local())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_valid_handmade_call_works_both_ways() {
    let s = Setup::new().await;
    let call = inline(&envelope(
        ADD,
        AddArgs::SIGNATURE,
        add_payload(20, 22),
        &s.staging_dir(),
    ));
    let bytes = s
        .submitter
        .run_raw(ADD, "hype-ok-1", call.clone(), &RunEnvironment::local())
        .await
        .unwrap();
    assert_eq!(
        wire::decode_value::<i64>(ADD, "result", &bytes).unwrap(),
        42
    );
    let direct = Direct::run(&common::worker(), &[call.into()], s.dir.path());
    assert_eq!(direct.code, 0, "{}", direct.stderr);
    assert!(direct.termination.unwrap().starts_with("inline:"));
}

#[tokio::test]
async fn garbage_bytes() {
    let s = Setup::new().await;
    let call = Reference::Inline(b"this is not a hype envelope".to_vec()).to_string();
    let err = via_submitter(&s, call.clone()).await;
    assert!(
        matches!(err, Error::MalformedEnvelope { ref reason, .. } if reason.contains("not hype data")),
        "{err:?}"
    );
    let direct = Direct::run(&common::worker(), &[call.into()], s.dir.path());
    direct.assert_fails(65, "not hype data");
    assert!(matches!(direct.error(), Error::MalformedEnvelope { .. }));
}

#[tokio::test]
async fn text_that_is_no_reference() {
    let s = Setup::new().await;
    for (call, needle) in [
        ("inline:%%%", "bad base64"),
        ("just some words", "expected `inline:<base64>`"),
    ] {
        let err = via_submitter(&s, call.to_owned()).await;
        assert!(matches!(err, Error::MalformedEnvelope { .. }), "{err:?}");
        assert!(err.to_string().contains(needle), "{err}");
        Direct::run(&common::worker(), &[call.into()], s.dir.path()).assert_fails(65, needle);
    }
}

#[tokio::test]
async fn truncated_envelope() {
    let s = Setup::new().await;
    let bytes = wire::encode_call(&envelope(
        ADD,
        AddArgs::SIGNATURE,
        add_payload(1, 2),
        &s.staging_dir(),
    ))
    .unwrap();
    for cut in [3, bytes.len() / 2, bytes.len() - 1] {
        let call = Reference::Inline(bytes[..cut].to_vec()).to_string();
        let err = via_submitter(&s, call.clone()).await;
        assert!(
            matches!(err, Error::MalformedEnvelope { .. }),
            "cut at {cut}: {err:?}"
        );
        Direct::run(&common::worker(), &[call.into()], s.dir.path())
            .assert_fails(65, "malformed call");
    }
}

#[tokio::test]
async fn unknown_function_id() {
    let s = Setup::new().await;
    const SUBTRACT: &str = "hype_tests::math::subtract";
    let call = inline(&envelope(SUBTRACT, 1, add_payload(1, 2), &s.staging_dir()));
    let err = s
        .submitter
        .run_raw(
            SUBTRACT,
            "hype-bad-input-1",
            call.clone(),
            &RunEnvironment::local(),
        )
        .await
        .unwrap_err();
    match &err {
        Error::UnknownFunction {
            function,
            known,
            execution_id,
            ..
        } => {
            assert_eq!(function, "hype_tests::math::subtract");
            assert_eq!(execution_id, "hype-bad-input-1");
            assert!(known.iter().any(|k| k == ADD), "{known:?}");
        }
        other => panic!("expected UnknownFunction, got {other:?}"),
    }
    assert!(err.to_string().contains("version skew"), "{err}");
    let direct = Direct::run(&common::worker(), &[call.into()], s.dir.path());
    direct.assert_fails(66, "hype_tests::math::subtract");
    assert!(matches!(direct.error(), Error::UnknownFunction { .. }));
}

#[tokio::test]
async fn signature_mismatch() {
    let s = Setup::new().await;
    let wrong = AddArgs::SIGNATURE ^ 0xff;
    let call = inline(&envelope(ADD, wrong, add_payload(1, 2), &s.staging_dir()));
    let err = via_submitter(&s, call.clone()).await;
    match &err {
        Error::SignatureMismatch {
            function,
            expected,
            found,
            ..
        } => {
            assert_eq!(function, ADD);
            assert_eq!(*expected, wrong);
            assert_eq!(*found, AddArgs::SIGNATURE);
        }
        other => panic!("expected SignatureMismatch, got {other:?}"),
    }
    Direct::run(&common::worker(), &[call.into()], s.dir.path())
        .assert_fails(67, "another signature");
}

#[tokio::test]
async fn arguments_that_do_not_decode() {
    let s = Setup::new().await;
    let payload = Payload::Inline(wire::Bytes::from(
        wire::encode_value(ADD, "arguments", &("not", "numbers")).unwrap(),
    ));
    let call = inline(&envelope(
        ADD,
        AddArgs::SIGNATURE,
        payload,
        &s.staging_dir(),
    ));
    let err = via_submitter(&s, call.clone()).await;
    assert!(
        matches!(
            err,
            Error::Decode {
                what: "arguments",
                ..
            }
        ),
        "{err:?}"
    );
    Direct::run(&common::worker(), &[call.into()], s.dir.path())
        .assert_fails(73, "cannot decode the arguments");
}

#[tokio::test]
async fn missing_staged_blob() {
    let s = Setup::new().await;
    let hex = "0".repeat(64);
    let blob = BlobRef::new(
        format!("file://{}/blobs/sha256/{hex}", s.staging_dir().display()),
        10,
        hex,
    );
    let call = inline(&envelope(
        ADD,
        AddArgs::SIGNATURE,
        Payload::Staged(blob.clone()),
        &s.staging_dir(),
    ));
    let err = via_submitter(&s, call.clone()).await;
    assert!(
        matches!(err, Error::StagedObjectMissing { ref uri, .. } if *uri == blob.uri),
        "{err:?}"
    );
    let direct = Direct::run(&common::worker(), &[call.into()], s.dir.path());
    direct.assert_fails(68, "does not exist");
    assert!(matches!(direct.error(), Error::StagedObjectMissing { .. }));
}

#[tokio::test]
async fn corrupted_staged_blob() {
    let s = Setup::new().await;
    let bytes = wire::encode_value(ADD, "arguments", &AddArgs { a: 1, b: 2 }).unwrap();
    let blob = s.submitter.staging().put_blob(bytes).await.unwrap();
    let path = blob.uri.strip_prefix("file://").unwrap().to_owned();
    let mut corrupt = std::fs::read(&path).unwrap();
    corrupt[1] ^= 0x01;
    std::fs::write(&path, corrupt).unwrap();
    let call = inline(&envelope(
        ADD,
        AddArgs::SIGNATURE,
        Payload::Staged(blob.clone()),
        &s.staging_dir(),
    ));
    let err = via_submitter(&s, call.clone()).await;
    match &err {
        Error::DigestMismatch {
            uri,
            expected,
            actual,
            ..
        } => {
            assert_eq!(uri, &blob.uri);
            assert_eq!(expected, &blob.sha256);
            assert_ne!(actual, expected);
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    Direct::run(&common::worker(), &[call.into()], s.dir.path()).assert_fails(69, "is corrupt");
}

#[tokio::test]
async fn a_call_staged_as_a_blob_is_verified() {
    let s = Setup::new().await;
    let bytes = wire::encode_call(&envelope(
        ADD,
        AddArgs::SIGNATURE,
        add_payload(2, 3),
        &s.staging_dir(),
    ))
    .unwrap();
    let blob = s.submitter.staging().put_blob(bytes).await.unwrap();
    let result = s
        .submitter
        .run_raw(
            ADD,
            "hype-uri-1",
            blob.uri.clone(),
            &RunEnvironment::local(),
        )
        .await
        .unwrap();
    assert_eq!(
        wire::decode_value::<i64>(ADD, "result", &result).unwrap(),
        5
    );

    std::fs::write(
        blob.uri.strip_prefix("file://").unwrap(),
        b"HYPC\x01tampered",
    )
    .unwrap();
    let err = via_submitter(&s, blob.uri.clone()).await;
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    let missing = format!(
        "file://{}/blobs/sha256/{}",
        s.staging_dir().display(),
        "1".repeat(64)
    );
    let err = via_submitter(&s, missing).await;
    assert!(matches!(err, Error::StagedObjectMissing { .. }), "{err:?}");
}

#[tokio::test]
async fn wrong_argv() {
    let s = Setup::new().await;
    let none = Direct::run(&common::worker(), &[], s.dir.path());
    none.assert_fails(64, "expected exactly one argument, got 0");
    assert!(matches!(none.error(), Error::BadInvocation { .. }));
    let two = Direct::run(
        &common::worker(),
        &["inline:AA==".into(), "extra".into()],
        s.dir.path(),
    );
    two.assert_fails(64, "got 2");
    use std::os::unix::ffi::OsStringExt as _;
    let not_utf8 = Direct::run(
        &common::worker(),
        &[OsString::from_vec(vec![0xff, 0xfe])],
        s.dir.path(),
    );
    not_utf8.assert_fails(64, "not UTF-8");
}

#[tokio::test]
async fn an_unwritable_termination_path() {
    let s = Setup::new().await;
    let call = inline(&envelope(
        ADD,
        AddArgs::SIGNATURE,
        add_payload(1, 2),
        &s.staging_dir(),
    ));
    let output = Command::new(common::worker())
        .args(["hype-run", &call])
        .env(
            "HYPE_TERMINATION_MESSAGE_PATH",
            "/nonexistent/dir/termination-log",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(wire::EXIT_OUTCOME_UNWRITABLE));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot write the outcome to /nonexistent/dir/termination-log"),
        "{stderr}"
    );
}

#[tokio::test]
async fn duplicate_ids_are_refused_at_load() {
    let dup = std::path::PathBuf::from(env!("CARGO_BIN_EXE_hype-dup-worker"));
    let s = Setup::with_program(dup.clone()).await;
    let list = Command::new(&dup)
        .args(["hype-run", "--list"])
        .output()
        .unwrap();
    assert_eq!(list.status.code(), Some(71));
    assert!(String::from_utf8_lossy(&list.stderr).contains("dup::same"));
    let call = inline(&envelope(
        "dup::same",
        0,
        Payload::Inline(wire::Bytes::new()),
        &s.staging_dir(),
    ));
    let err = s
        .submitter
        .run_raw(
            "dup::same",
            "hype-dup-1",
            call.clone(),
            &RunEnvironment::local(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DuplicateFunction { ref ids, .. } if ids == &["dup::same".to_owned()]),
        "{err:?}"
    );
    Direct::run(&dup, &[call.into()], s.dir.path())
        .assert_fails(71, "duplicate remote function ID(s) dup::same");
}

#[tokio::test]
async fn list_prints_ids_and_signatures() {
    let output = Command::new(common::worker())
        .args(["hype-run", "--list"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let line = format!("{ADD}\t{:016x}", AddArgs::SIGNATURE);
    assert!(stdout.lines().any(|l| l == line), "{stdout}");
    // A function whose attribute sets defaults: a third column, in the
    // stable text form.
    let line = format!(
        "hype_tests::defaults::add_on_gpu\t{:016x}\tcpu=2 memory=4Gi gpu=nvidia-l4:1 spot=true",
        AddOnGpuArgs::SIGNATURE
    );
    assert!(stdout.lines().any(|l| l == line), "{stdout}");
    let line = format!(
        "hype_tests::defaults::sleep_bounded\t{:016x}\ttimeout=1500ms",
        SleepBoundedArgs::SIGNATURE
    );
    assert!(stdout.lines().any(|l| l == line), "{stdout}");
}

#[test]
fn in_process_execution_gives_what_hype_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let call = inline(&envelope(
        ADD,
        AddArgs::SIGNATURE,
        add_payload(40, 2),
        dir.path(),
    ));
    let run = std::thread::spawn(move || {
        hype_runtime::__tools::execute_in_process(&call, "hype-in-process-1")
    })
    .join()
    .unwrap();
    assert_eq!(run.exit_code, 0);
    let Reference::Inline(bytes) = Reference::parse(&run.termination_message.unwrap()).unwrap()
    else {
        panic!("inline outcome expected")
    };
    let outcome = wire::decode_outcome(&bytes).unwrap();
    assert_eq!(outcome.execution_id, "hype-in-process-1");
    let wire::Outcome::Returned(Payload::Inline(value)) = outcome.outcome else {
        panic!("returned value expected, got {:?}", outcome.outcome)
    };
    assert_eq!(
        wire::decode_value::<i64>(ADD, "result", &value).unwrap(),
        42
    );

    let garbage = std::thread::spawn(|| {
        hype_runtime::__tools::execute_in_process("inline:AAAA", "hype-in-process-2")
    })
    .join()
    .unwrap();
    assert_eq!(garbage.exit_code, 65);
    assert!(garbage.termination_message.unwrap().starts_with("inline:"));
}

/// A staged blob far longer than its reference says is refused before it
/// is read: a sparse 2 GiB file declared as 3 bytes fails at once.
#[tokio::test]
async fn a_blob_longer_than_declared_is_refused_unread() {
    let s = Setup::new().await;
    let hex = "a".repeat(64);
    let dir = s.staging_dir().join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    let huge = std::fs::File::create(dir.join(&hex)).unwrap();
    huge.set_len(2 << 30).unwrap();
    drop(huge);
    let blob = BlobRef::new(
        format!("file://{}/blobs/sha256/{hex}", s.staging_dir().display()),
        3,
        hex,
    );
    let call = inline(&envelope(
        ADD,
        AddArgs::SIGNATURE,
        Payload::Staged(blob),
        &s.staging_dir(),
    ));
    let started = std::time::Instant::now();
    let err = via_submitter(&s, call.clone()).await;
    match &err {
        Error::DigestMismatch {
            actual,
            actual_len,
            expected_len,
            ..
        } => {
            assert!(actual.contains("not read"), "{actual}");
            assert_eq!((*expected_len, *actual_len), (3, 2 << 30));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    let direct = Direct::run(&common::worker(), &[call.into()], s.dir.path());
    direct.assert_fails(69, "longer than the blob");
    // Reading 2 GiB takes seconds and 2 GB of memory; refusing it, none.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

/// A call reference naming a device, a FIFO or a directory is refused with
/// its own message, without reading it (a FIFO with no writer would block
/// for ever, `/dev/zero` would fill memory).
#[tokio::test]
async fn references_to_devices_fifos_and_directories_are_refused() {
    let s = Setup::new().await;
    let fifo = s.dir.path().join("fifo");
    let c_path = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let dir = s.dir.path().join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    for (uri, needle) in [
        ("file:///dev/zero".to_owned(), "is a device"),
        (format!("file://{}", fifo.display()), "is a FIFO"),
        (format!("file://{}", dir.display()), "is a directory"),
        ("file:///tmp".to_owned(), "is a directory"),
    ] {
        let err = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            via_submitter(&s, uri.clone()),
        )
        .await
        .unwrap_or_else(|_| panic!("{uri}: no answer within 30 s"));
        assert!(
            matches!(&err, Error::Staging { message, .. } if message.contains(needle)),
            "{uri}: {err:?}"
        );
        Direct::run(&common::worker(), &[uri.into()], s.dir.path()).assert_fails(70, needle);
    }
}

/// Staged arguments outside the call's staging location are refused.
#[tokio::test]
async fn a_staged_reference_outside_the_staging_root_is_refused() {
    let s = Setup::new().await;
    let elsewhere = tempfile::tempdir().unwrap();
    let other = hype::LocalStaging::new(elsewhere.path()).unwrap();
    let bytes = wire::encode_value(ADD, "arguments", &AddArgs { a: 1, b: 2 }).unwrap();
    let blob = hype::Staging::put_blob(&other, bytes).await.unwrap();
    let call = inline(&envelope(
        ADD,
        AddArgs::SIGNATURE,
        Payload::Staged(blob),
        &s.staging_dir(),
    ));
    let err = via_submitter(&s, call.clone()).await;
    assert!(
        matches!(&err, Error::MalformedEnvelope { .. }) && err.to_string().contains("outside"),
        "{err:?}"
    );
    Direct::run(&common::worker(), &[call.into()], s.dir.path())
        .assert_fails(65, "lies outside the call's staging location");
}

/// An execution that reports its outcome somewhere outside the submitter's
/// staging location (a hostile or broken `hype-run`): the error names the
/// URI, and nothing there is read or deleted.
#[tokio::test]
async fn an_outcome_outside_the_store_is_neither_read_nor_deleted() {
    let s = Setup::new().await;
    let env = RunEnvironment::local();
    let err = s
        .submitter
        .run(
            hype_tests::process::report_outcome_at("file:///etc/hostname".into(), false),
            &env,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("file:///etc/hostname"), "{text}");
    assert!(text.contains("outside"), "{text}");

    // A valid outcome envelope beside the store, not in it.
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("outcome");
    let uri = format!("file://{}", victim.display());
    let err = s
        .submitter
        .run(
            hype_tests::process::report_outcome_at(uri.clone(), true),
            &env,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&uri), "{err}");
    assert!(victim.exists(), "the file outside the store was deleted");
}
