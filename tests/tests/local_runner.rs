//! The local runner end to end: calls run in child processes of the worker
//! binary and their typed results, typed errors and panics come back.

mod common;

use std::time::Duration;

use common::Setup;
use hype::{ByteBuf, Error, RunEnvironment, Secret, VolumeRequest};
use hype_tests::failures::ParseFailure;
use hype_tests::{bytes, defaults, failures, files, math, process};

fn local() -> RunEnvironment {
    RunEnvironment::local()
}

#[tokio::test]
async fn functions_in_several_modules_return_typed_values() {
    let s = Setup::new().await;
    assert_eq!(
        s.submitter.run(math::add(2, 40), &local()).await.unwrap(),
        42
    );
    assert_eq!(
        s.submitter
            .run(math::word_count("a b  c\nd".into()), &local())
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        s.submitter
            .run(math::add_later(-1, 8), &local())
            .await
            .unwrap(),
        7
    );
    let p = hype_tests::Point { x: 1.5, y: -2.0 };
    assert_eq!(
        s.submitter
            .run(hype_tests::mirror(p), &local())
            .await
            .unwrap(),
        hype_tests::Point { x: -1.5, y: 2.0 }
    );
    assert_eq!(
        s.submitter
            .run(hype_tests::renamed(), &local())
            .await
            .unwrap(),
        "renamed"
    );
}

#[tokio::test]
async fn ids_are_module_paths_or_the_override() {
    assert_eq!(math::add(1, 2).id(), "hype_tests::math::add");
    assert_eq!(
        failures::parse(String::new()).id(),
        "hype_tests::failures::parse"
    );
    assert_eq!(hype_tests::renamed().id(), "hype-tests/renamed");
}

#[tokio::test]
async fn run_here_round_trips_in_process() {
    assert_eq!(math::add(2, 3).run_here().await.unwrap(), 5);
    assert_eq!(math::add_later(2, 3).run_here().await.unwrap(), 5);
    let err = failures::parse("x".into()).run_here().await.unwrap();
    assert!(err.is_err());
}

#[tokio::test]
async fn the_call_runs_in_another_process_with_the_environment() {
    let s = Setup::new().await;
    let env = local()
        .with_env("GREETING", "hej")
        .with_env("HYPE_EXECUTION_ID", "spoofed");
    let pid = s.submitter.run(process::pid(), &env).await.unwrap();
    assert_ne!(pid, std::process::id());
    let greeting = s
        .submitter
        .run(process::env_var("GREETING".into()), &env)
        .await
        .unwrap();
    assert_eq!(greeting.as_deref(), Some("hej"));
    let exec = s
        .submitter
        .run(process::env_var("HYPE_EXECUTION_ID".into()), &env)
        .await
        .unwrap()
        .expect("HYPE_EXECUTION_ID is set");
    assert!(
        exec.starts_with("hype-env-var-"),
        "hype's execution ID wins over the user's: {exec}"
    );
}

/// The Kubernetes-only options (and the resources) are ignored by the
/// local runner, not refused.
#[tokio::test]
async fn kubernetes_only_options_are_ignored() {
    let s = Setup::new().await;
    let env = local()
        .with_cpu("2")
        .with_memory("1Gi")
        .with_gpu(hype::Gpu::nvidia(1).model("nvidia-l4"))
        .with_spot(true)
        .with_node_selector("pool", "batch")
        .with_toleration(hype::Toleration::no_execute_for("k", 30))
        .with_priority_class("batch-low")
        .with_service_account("reader")
        .with_labels([("team", "data")])
        .with_annotations([("note", "free text")]);
    assert_eq!(s.submitter.run(math::add(2, 40), &env).await.unwrap(), 42);
}

#[tokio::test]
async fn a_user_error_comes_back_typed() {
    let s = Setup::new().await;
    let ok = s
        .submitter
        .run(failures::parse(" 17 ".into()), &local())
        .await
        .unwrap();
    assert_eq!(ok, Ok(17));
    let err = s
        .submitter
        .run(failures::parse("seventeen".into()), &local())
        .await
        .unwrap();
    assert_eq!(
        err,
        Err(ParseFailure {
            input: "seventeen".into(),
            reason: "invalid digit found in string".into(),
        })
    );
}

#[tokio::test]
async fn a_panic_comes_back_with_message_and_location() {
    let s = Setup::new().await;
    let err = s
        .submitter
        .run(
            failures::explode("the flux capacitor broke".into()),
            &local(),
        )
        .await
        .unwrap_err();
    match &err {
        Error::RemotePanic {
            function,
            message,
            location,
            execution_id,
            ..
        } => {
            assert_eq!(function, "hype_tests::failures::explode");
            assert_eq!(message, "the flux capacitor broke");
            let location = location.as_deref().expect("location");
            assert!(location.starts_with("tests/src/lib.rs:"), "{location}");
            assert!(execution_id.starts_with("hype-explode-"), "{execution_id}");
        }
        other => panic!("expected RemotePanic, got {other:?}"),
    }
    assert!(
        err.to_string().contains("the flux capacitor broke"),
        "{err}"
    );
}

#[tokio::test]
async fn a_panic_too_long_for_a_termination_message_is_staged() {
    let s = Setup::new().await;
    let err = s
        .submitter
        .run(failures::explode_at_length(10_000), &local())
        .await
        .unwrap_err();
    let Error::RemotePanic { message, .. } = err else {
        panic!("expected RemotePanic, got {err:?}");
    };
    assert_eq!(message.len(), 10_000);
    let left: Vec<_> = Setup::files_under(&s.staging_dir().join("outcomes"));
    assert!(
        left.is_empty(),
        "outcome objects are deleted once read: {left:?}"
    );
}

#[tokio::test]
async fn large_arguments_and_results_are_staged_and_verified() {
    let s = Setup::new().await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let reversed = s
        .submitter
        .run(bytes::reverse(ByteBuf::from(data.clone())), &local())
        .await
        .unwrap();
    let mut expected = data.clone();
    expected.reverse();
    assert_eq!(reversed.into_vec(), expected);
    let blobs = Setup::files_under(&s.staging_dir().join("blobs/sha256"));
    assert_eq!(
        blobs.len(),
        2,
        "one argument blob and one result blob: {blobs:?}"
    );

    // The same arguments again: the blob is reused, not written twice.
    let again = s
        .submitter
        .run(bytes::reverse(ByteBuf::from(data)), &local())
        .await
        .unwrap();
    assert_eq!(again.len(), 300_000);
    assert_eq!(
        Setup::files_under(&s.staging_dir().join("blobs/sha256")).len(),
        2
    );
}

#[tokio::test]
async fn small_calls_touch_no_staging() {
    let s = Setup::new().await;
    let made = s
        .submitter
        .run(bytes::make(1000, 7), &local())
        .await
        .unwrap();
    assert_eq!(made.len(), 1000);
    assert!(
        Setup::files_under(&s.staging_dir()).is_empty(),
        "small arguments and results travel inline"
    );
    let big = s
        .submitter
        .run(bytes::make(5000, 7), &local())
        .await
        .unwrap();
    assert_eq!(big[4999], 7u8.wrapping_add((4999 % 256) as u8));
    assert_eq!(Setup::files_under(&s.staging_dir().join("blobs")).len(), 1);
}

#[tokio::test]
async fn many_calls_run_at_once() {
    let s = Setup::new().await;
    let dir = s.path("rendezvous");
    std::fs::create_dir(&dir).unwrap();
    let n = 12;
    let env = local();
    let calls = (0..n).map(|_| {
        s.submitter
            .run(process::rendezvous(dir.display().to_string(), n), &env)
    });
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap(), Ok(n));
    }
}

#[tokio::test]
async fn a_timeout_stops_the_call_and_its_children() {
    let s = Setup::new().await;
    let pids = s.path("pids");
    std::fs::create_dir(&pids).unwrap();
    let env = local().with_timeout(Duration::from_millis(1500));
    let err = s
        .submitter
        .run(
            process::sleep_with_grandchild(pids.display().to_string(), 60),
            &env,
        )
        .await
        .unwrap_err();
    match &err {
        Error::Timeout {
            function, after, ..
        } => {
            assert_eq!(function, "hype_tests::process::sleep_with_grandchild");
            assert_eq!(*after, Duration::from_millis(1500));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_killed(&pids).await;
}

#[tokio::test]
async fn dropping_the_call_kills_the_process_group() {
    let s = Setup::new().await;
    let pids = s.path("pids");
    std::fs::create_dir(&pids).unwrap();
    let env = local();
    let call = s.submitter.run(
        process::sleep_with_grandchild(pids.display().to_string(), 60),
        &env,
    );
    let pid_file_written = {
        let pids = pids.clone();
        async move {
            while std::fs::read_dir(&pids).unwrap().count() == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    tokio::select! {
        result = call => panic!("the call finished: {result:?}"),
        _ = tokio::time::timeout(Duration::from_secs(20), pid_file_written) => {}
    }
    // `call` is dropped here.
    assert_killed(&pids).await;
}

/// Reads `<pid> <grandchild pid>` and checks both processes are gone.
async fn assert_killed(pids: &std::path::Path) {
    let entries: Vec<_> = std::fs::read_dir(pids).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "the function started once");
    let text = std::fs::read_to_string(entries[0].path()).unwrap();
    let ids: Vec<u32> = text
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    for pid in ids {
        assert!(
            hype_tests::wait_until(Duration::from_secs(10), || !hype_tests::process_alive(pid))
                .await,
            "process {pid} is still running"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_submitter_cancels_calls_in_flight() {
    let s = Setup::new().await;
    let pids = s.path("pids");
    std::fs::create_dir(&pids).unwrap();
    let submitter = s.submitter.clone();
    let dir = pids.display().to_string();
    let call = tokio::spawn(async move {
        submitter
            .run(
                process::sleep_with_grandchild(dir, 60),
                &RunEnvironment::local(),
            )
            .await
    });
    assert!(
        hype_tests::wait_until(Duration::from_secs(20), || std::fs::read_dir(&pids)
            .unwrap()
            .count()
            == 1)
        .await
    );
    s.submitter.close().await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("bounded")
        .unwrap();
    assert!(matches!(result, Err(Error::Cancelled { .. })), "{result:?}");
    assert_killed(&pids).await;
    let after = s
        .submitter
        .run(math::add(1, 1), &local())
        .await
        .unwrap_err();
    assert!(
        matches!(after, Error::Cancelled { ref reason, .. } if reason.contains("closed")),
        "{after}"
    );
}

#[tokio::test]
async fn an_exit_without_outcome_reports_status_and_stderr() {
    let s = Setup::new().await;
    let err = s
        .submitter
        .run(process::exit_abruptly(3), &local())
        .await
        .unwrap_err();
    match &err {
        Error::RunnerFailed {
            status,
            stderr_tail,
            ..
        } => {
            assert!(status.contains("exited with code 3"), "{status}");
            assert!(
                stderr_tail.contains("about to exit with 3 on purpose"),
                "{stderr_tail}"
            );
        }
        other => panic!("expected RunnerFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn secrets_are_local_directories() {
    let s = Setup::new().await;
    let secret_dir = s.path("secrets/gcp-key");
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("key.json"), "{\"k\":1}").unwrap();
    let env = local().with_secret(Secret::new("gcp-key", "/etc/gcloud"));
    let read = s
        .submitter
        .run(files::read("/etc/gcloud/key.json".into()), &env)
        .await
        .unwrap();
    assert_eq!(read, Ok("{\"k\":1}".to_owned()));

    let missing = local()
        .with_secret(Secret::new("absent", "/etc/absent"))
        .with_secret(Secret::new("also-absent", "/etc/x"));
    let err = s
        .submitter
        .run(files::read("/etc/absent/k".into()), &missing)
        .await
        .unwrap_err();
    match &err {
        Error::InvalidEnvironment { problems, .. } => {
            assert_eq!(problems.len(), 2, "{problems:?}");
            assert!(problems[0].contains("secret absent"), "{}", problems[0]);
        }
        other => panic!("expected InvalidEnvironment, got {other:?}"),
    }
}

#[tokio::test]
async fn the_volume_flow_write_once_then_read_in_parallel() {
    let s = Setup::new().await;
    let volume = VolumeRequest::new("standard", "1Gi");
    let writer = local().with_mount(volume.mount_read_write("/data"));
    s.submitter
        .run(files::write("/data/word".into(), "hello".into()), &writer)
        .await
        .unwrap()
        .unwrap();
    let reader = local().with_mount(volume.mount_read_only("/data"));
    let reads = (0..10).map(|_| s.submitter.run(files::read("/data/word".into()), &reader));
    for read in futures::future::join_all(reads).await {
        assert_eq!(read.unwrap(), Ok("hello".to_owned()));
    }

    let persistent = VolumeRequest::persistent("kept", "standard", "1Gi");
    s.submitter
        .run(
            files::write("/p/x".into(), "kept".into()),
            &local().with_mount(persistent.mount_read_write("/p")),
        )
        .await
        .unwrap()
        .unwrap();
    let transient_dir = s.path("volumes").join(volume.name());
    assert!(transient_dir.join("word").exists());
    s.submitter.close().await.unwrap();
    assert!(
        !transient_dir.exists(),
        "a transient volume goes when the submitter closes"
    );
    assert!(
        s.path("volumes/kept/x").exists(),
        "a persistent volume stays"
    );
}

#[tokio::test]
async fn invalid_environments_are_refused_before_running() {
    let s = Setup::new().await;
    let env = local().with_env("BAD=NAME", "x");
    let err = s.submitter.run(math::add(1, 2), &env).await.unwrap_err();
    assert!(matches!(err, Error::InvalidEnvironment { .. }), "{err}");
    assert!(err.to_string().contains("BAD=NAME"), "{err}");
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error() {
    let s = Setup::with_program("/nonexistent/hype-worker".into()).await;
    let err = s
        .submitter
        .run(math::add(1, 2), &local())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/hype-worker"),
        "{err}"
    );
}

/// The builder takes a store built in code and stages in it; without one,
/// a temporary directory is used and removed with the submitter.
#[tokio::test]
async fn the_builder_stages_in_a_store_given_in_code_or_a_temporary_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = hype::LocalStaging::new(dir.path().join("given")).unwrap();
    let cluster = || hype::LocalCluster::new().program(common::worker());
    let submitter = hype::Submitter::builder(cluster())
        .staging(store)
        .build()
        .await
        .unwrap();
    assert_eq!(
        submitter.staging().location(),
        format!("file://{}", dir.path().join("given").display())
    );
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
    let n = submitter
        .run(bytes::reverse(ByteBuf::from(data)), &local())
        .await
        .unwrap()
        .len();
    assert_eq!(n, 300_000);
    assert_eq!(
        Setup::files_under(&dir.path().join("given/blobs/sha256")).len(),
        2,
        "the argument and result blobs are in the given store"
    );
    submitter.close().await.unwrap();

    let temporary = hype::Submitter::builder(cluster()).build().await.unwrap();
    let location = temporary.staging().location().to_owned();
    let path = std::path::PathBuf::from(location.strip_prefix("file://").unwrap());
    assert_eq!(temporary.run(math::add(2, 3), &local()).await.unwrap(), 5);
    temporary.close().await.unwrap();
    drop(temporary);
    assert!(!path.exists(), "{} outlived its submitter", path.display());
}

/// A child killed by SIGKILL without writing an outcome is an execution
/// lost ([`hype::ErrorKind::Lost`]): reported as such without retries, and
/// run again, as a new execution, with them. SIGABRT (the program's own
/// abort) is not retried.
#[tokio::test]
async fn a_killed_child_is_lost_and_retried_when_asked() {
    let s = Setup::new().await;
    let marker = |name: &str| s.path(name).display().to_string();

    let err = s
        .submitter
        .run(
            process::killed_once(marker("once-a"), libc::SIGKILL),
            &local(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RunnerFailed {
                signal: Some(9),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), hype::ErrorKind::Lost);

    let env = local()
        .with_retries(2)
        .with_retry_backoff(Duration::from_millis(20));
    let value = s
        .submitter
        .run(process::killed_once(marker("once-b"), libc::SIGKILL), &env)
        .await
        .unwrap();
    assert_eq!(value, 7, "the second attempt ran to its end");

    let err = s
        .submitter
        .run(process::killed_once(marker("once-c"), libc::SIGABRT), &env)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RunnerFailed {
                signal: Some(6),
                ..
            }
        ),
        "an abort is the program's own doing, not retried: {err:?}"
    );
    assert_eq!(err.kind(), hype::ErrorKind::Other);
}

/// A panic is not retried unless asked for by kind; asked, every attempt
/// fails the same way and the error lists each with its own execution.
#[tokio::test]
async fn panics_are_retried_only_by_kind_and_the_attempts_are_listed() {
    let s = Setup::new().await;
    let env = local()
        .with_retries(2)
        .with_retry_backoff(Duration::from_millis(10));
    let err = s
        .submitter
        .run(failures::explode("boom".into()), &env)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RemotePanic { .. }), "{err:?}");

    let err = s
        .submitter
        .run(
            failures::explode("boom".into()),
            &env.clone().with_retry_on(hype::ErrorKind::Panicked),
        )
        .await
        .unwrap_err();
    let Error::RetriesExhausted { attempts, .. } = &err else {
        panic!("expected RetriesExhausted, got {err:?}");
    };
    assert_eq!(attempts.len(), 3, "the first run and two retries");
    let ids: std::collections::BTreeSet<&str> =
        attempts.iter().map(|a| a.execution_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "each attempt is its own execution");
    for attempt in attempts {
        assert!(
            matches!(attempt.error, Error::RemotePanic { .. }),
            "{attempt:?}"
        );
    }
    let text = err.to_string();
    for id in &ids {
        assert!(text.contains(id), "{text} names {id}");
    }
    assert!(text.contains("attempt 3"), "{text}");
}

/// Arguments above 16 KiB are staged by default, so a pod's spec stays
/// small; `inline_arguments_limit` moves the line up to 64 KiB (or to 0)
/// and refuses more.
#[tokio::test]
async fn arguments_above_the_inline_limit_are_staged() {
    let data = || ByteBuf::from((0..20_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let cluster = || hype::LocalCluster::new().program(common::worker());
    let blobs = |dir: &std::path::Path| Setup::files_under(&dir.join("blobs/sha256")).len();
    for (limit, staged) in [(None, 1), (Some(64 * 1024), 0), (Some(0), 1)] {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = hype::Submitter::builder(cluster())
            .staging(hype::LocalStaging::new(dir.path().join("store")).unwrap());
        if let Some(limit) = limit {
            builder = builder.inline_arguments_limit(limit);
        }
        let submitter = builder.build().await.unwrap();
        // The 20 KB result is staged in every case (it cannot fit in a
        // termination message); only the argument's blob depends on the
        // limit.
        let result = submitter.run(bytes::reverse(data()), &local()).await;
        assert_eq!(result.unwrap().len(), 20_000);
        assert_eq!(
            blobs(&dir.path().join("store")),
            staged + 1,
            "limit {limit:?}: {staged} argument blob(s) and the result's"
        );
        submitter.close().await.unwrap();
    }
    let err = hype::Submitter::builder(cluster())
        .inline_arguments_limit(64 * 1024 + 1)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("65537"), "{err}");
}

/// The attribute's `timeout = "1500ms"` bounds a call whose environment
/// sets no timeout; an environment's `with_timeout` wins over it.
#[tokio::test]
async fn the_attribute_timeout_applies_unless_the_environment_sets_one() {
    let s = Setup::new().await;
    let err = s
        .submitter
        .run(defaults::sleep_bounded(60), &local())
        .await
        .unwrap_err();
    match &err {
        Error::Timeout { after, .. } => assert_eq!(*after, Duration::from_millis(1500)),
        other => panic!("expected Timeout, got {other:?}"),
    }
    let err = s
        .submitter
        .run(
            defaults::sleep_bounded(60),
            &local().with_timeout(Duration::from_millis(700)),
        )
        .await
        .unwrap_err();
    match &err {
        Error::Timeout { after, .. } => assert_eq!(*after, Duration::from_millis(700)),
        other => panic!("expected Timeout, got {other:?}"),
    }
}

/// The attribute's `retries = 2` runs a lost call again without
/// `with_retries`; `with_retries(0)` in the environment turns that off.
#[tokio::test]
async fn the_attribute_retries_apply_unless_the_environment_sets_them() {
    let s = Setup::new().await;
    let marker = |name: &str| s.path(name).display().to_string();
    let env = local().with_retry_backoff(Duration::from_millis(20));
    let value = s
        .submitter
        .run(defaults::killed_once_retried(marker("once-a")), &env)
        .await
        .unwrap();
    assert_eq!(value, 7, "the retry from the attribute ran to its end");
    let err = s
        .submitter
        .run(
            defaults::killed_once_retried(marker("once-b")),
            &env.with_retries(0),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), hype::ErrorKind::Lost, "{err:?}");
}
