//! What a retry would do, by the kind of failure (`Error::kind()`): a
//! request the API rejects for good is tried once and not run again, a
//! store that fails for a moment is run again. Each against a real peer
//! where one can say no: the Kubernetes API test double's validation, the
//! Docker engine, fake-gcs-server behind a proxy that answers 503.

mod common;

use std::time::Duration;

use hype::{Error, ErrorKind, LocalCluster, RunEnvironment, Submitter};
use hype_tests::gcs_server::GcsServer;
use hype_tests::http_faults::HttpFaults;
use hype_tests::math;

use common::backend::{Backend, Setup};

/// A pod the API server refuses with 422 (its base pod asks for a negative
/// grace period) is created once, even with retries, and the error names
/// the field.
#[tokio::test]
async fn a_pod_the_api_rejects_is_created_once_and_names_the_field() {
    let setup = Setup::new(Backend::KubeProcesses, "error_kinds 422")
        .await
        .expect("no engine needed");
    let server = setup.server.as_ref().expect("the double");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pod.yaml");
    std::fs::write(
        &path,
        "spec:\n  terminationGracePeriodSeconds: -5\n  containers:\n    - name: hype-run\n",
    )
    .unwrap();
    let env = RunEnvironment::from_yaml(&path)
        .unwrap()
        .with_image(hype_tests::IMAGE)
        .with_retries(3)
        .with_retry_backoff(Duration::from_millis(10));
    server.clear_request_log();
    let err = setup
        .submitter
        .run(math::add(1, 2), &env)
        .await
        .unwrap_err();
    let Error::Rejected { code, message, .. } = &err else {
        panic!("expected Rejected, got {err:?}");
    };
    assert_eq!(*code, 422, "{err}");
    assert!(
        message.contains("spec.terminationGracePeriodSeconds"),
        "the error names the field: {err}"
    );
    assert_eq!(err.kind(), ErrorKind::Other);
    // The typed client error stays the source.
    let source = std::error::Error::source(&err).expect("a source");
    assert!(source.downcast_ref::<kube::Error>().is_some(), "{source:?}");
    let creates = server
        .request_log()
        .iter()
        .filter(|(m, p)| m == "POST" && p.contains("/pods"))
        .count();
    assert_eq!(creates, 1, "one create attempt, no retries");
    setup.submitter.close().await.unwrap();
}

/// A create the Docker engine refuses with 400 (more CPUs than the machine
/// has) is not run again, even with retries.
#[tokio::test]
async fn a_container_the_engine_refuses_is_not_run_again() {
    let Some(setup) = Setup::new(Backend::Docker, "error_kinds docker 400").await else {
        return;
    };
    let env = setup
        .env
        .clone()
        .with_limit("cpu", "4096")
        .with_retries(3)
        .with_retry_backoff(Duration::from_millis(10));
    let err = setup
        .submitter
        .run(math::add(1, 2), &env)
        .await
        .unwrap_err();
    assert!(
        !matches!(err, Error::RetriesExhausted { .. }),
        "a refusal is not retried: {err}"
    );
    assert_eq!(err.kind(), ErrorKind::Other, "{err:?}");
    assert!(
        err.to_string().contains("CPU"),
        "the engine's reason: {err}"
    );
    setup.submitter.close().await.unwrap();
    assert!(setup.executions_left().await.is_empty());
}

/// A store that answers 503 to the first two reads of a call's result:
/// each is a lost execution, run again, and the third attempt succeeds.
#[tokio::test]
async fn a_store_that_answers_503_twice_is_retried_and_succeeds() {
    let Some(server) = GcsServer::start("a_store_that_answers_503_twice_is_retried_and_succeeds")
    else {
        return;
    };
    server.create_bucket("hype-staging").await;
    let proxy = HttpFaults::start(server.endpoint()).await;
    // The submitter reaches the store through the proxy, with no retries
    // of the client's own; the worker reaches it directly.
    let staging = hype_tests::backends::GcsStaging::builder("gs://hype-staging/kinds")
        .endpoint(proxy.url())
        .anonymous(true)
        .attempts(1)
        .timeout(Duration::from_secs(20))
        .resumable_upload_threshold(usize::MAX)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::new()
        .program(common::worker())
        .secrets_dir(dir.path().join("secrets"))
        .volumes_dir(dir.path().join("volumes"));
    let submitter = Submitter::builder(cluster)
        .staging(staging)
        .build()
        .await
        .unwrap();
    let env = RunEnvironment::local()
        .with_env("STORAGE_EMULATOR_HOST", server.endpoint())
        .with_retry_backoff(Duration::from_millis(10));

    // Without retries the first 503 is the call's error, and a loss.
    proxy.fail_next(1, "GET", "alt=media", 503);
    let err = submitter
        .run(hype_tests::bytes::make(200_000, 1), &env)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::StagingUnavailable { .. }),
        "expected StagingUnavailable, got {err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Lost, "{err}");
    assert!(err.to_string().contains("503"), "{err}");

    proxy.fail_next(2, "GET", "alt=media", 503);
    let made = submitter
        .run(hype_tests::bytes::make(200_000, 2), &env.with_retries(3))
        .await
        .expect("the third attempt reads its result");
    assert_eq!(made.len(), 200_000);
    assert_eq!(proxy.injected(), 3, "every injected 503 was met");
    submitter.close().await.unwrap();
}
