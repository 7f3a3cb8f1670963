//! What a retry would do, by the kind of failure (`Error::kind()`): a
//! request the API rejects for good (invalid, refused by RBAC or by
//! admission control) is tried once and not run again, a
//! store that fails for a moment is run again. Each against a real peer
//! where one can say no: the Kubernetes API test double's validation, the
//! Docker engine, fake-gcs-server behind a proxy that answers 503.

mod common;

use std::time::Duration;

use hype::{Admission, Error, ErrorKind, LocalCluster, RunEnvironment, Submitter};
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
    assert_eq!(pod_creates(server), 1, "one create attempt, no retries");
    setup.submitter.close().await.unwrap();
}

/// The pod creates in the request log.
fn pod_creates(server: &hype_tests::kube_double::KubeTestServer) -> usize {
    server
        .request_log()
        .iter()
        .filter(|(m, p)| m == "POST" && p.contains("/pods"))
        .count()
}

/// A pod that admission control refuses (Pod Security `restricted`, a
/// webhook's 400, a used up quota) is created once, even with retries, and
/// fails with `AdmissionDenied` naming what refused it and how to relax
/// it, not with `Forbidden` and its RBAC advice.
#[tokio::test]
async fn a_pod_refused_at_admission_is_created_once_and_names_what_refused_it() {
    let setup = Setup::new(Backend::KubeProcesses, "error_kinds admission")
        .await
        .expect("no engine needed");
    let server = setup.server.as_ref().expect("the double");
    let env = RunEnvironment::new(hype_tests::IMAGE)
        .with_retries(3)
        .with_retry_backoff(Duration::from_millis(10));
    type Case = (
        u16,
        &'static str,
        &'static str,
        fn(&Admission) -> bool,
        [&'static str; 2],
    );
    let cases: [Case; 3] = [
        (
            403,
            "Forbidden",
            r#"pods "{name}" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true (pod or container "hype-run" must set securityContext.runAsNonRoot=true)"#,
            |by| matches!(by, Admission::PodSecurity { level, .. } if level == "restricted:latest"),
            [
                "securityContext.runAsNonRoot=true",
                "pod-security.kubernetes.io/enforce=baseline",
            ],
        ),
        (
            400,
            "BadRequest",
            r#"admission webhook "policy.example.com" denied the request: pods must carry the label team"#,
            |by| matches!(by, Admission::Webhook { name, .. } if name == "policy.example.com"),
            ["the label team", "validatingwebhookconfigurations"],
        ),
        (
            403,
            "Forbidden",
            r#"pods "{name}" is forbidden: exceeded quota: compute, requested: limits.cpu=2, used: limits.cpu=4, limited: limits.cpu=4"#,
            |by| matches!(by, Admission::ResourceQuota { name: Some(name), .. } if name == "compute"),
            ["limits.cpu=2", "kubectl describe resourcequota"],
        ),
    ];
    for (code, reason, message, refused_by, says) in cases {
        server.clear_request_log();
        server.faults().refuse_next_create(code, reason, message);
        let err = setup
            .submitter
            .run(math::add(1, 2), &env)
            .await
            .unwrap_err();
        let Error::AdmissionDenied { by, code: got, .. } = &err else {
            panic!("expected AdmissionDenied, got {err:?}");
        };
        assert!(refused_by(by), "refused by {by:?}: {err}");
        assert_eq!(*got, code, "{err}");
        assert_eq!(err.kind(), ErrorKind::Other);
        let text = err.to_string();
        for part in says {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
        assert!(!text.contains("RBAC"), "no RBAC advice: {text}");
        assert!(!text.contains("{name}"), "the double names the pod: {text}");
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.downcast_ref::<kube::Error>().is_some(), "{source:?}");
        assert_eq!(pod_creates(server), 1, "one create attempt: {err}");
    }
    setup.submitter.close().await.unwrap();
}

/// A pod create RBAC refuses stays `Forbidden`, naming the rule, created
/// once even with retries.
#[tokio::test]
async fn a_pod_create_rbac_refuses_is_forbidden_and_tried_once() {
    let setup = Setup::new(Backend::KubeProcesses, "error_kinds rbac")
        .await
        .expect("no engine needed");
    let server = setup.server.as_ref().expect("the double");
    let env = RunEnvironment::new(hype_tests::IMAGE)
        .with_retries(3)
        .with_retry_backoff(Duration::from_millis(10));
    server.clear_request_log();
    server.faults().refuse_next_create(
        403,
        "Forbidden",
        r#"pods is forbidden: User "system:serviceaccount:default:hype-test" cannot create resource "pods" in API group "" in the namespace "default""#,
    );
    let err = setup
        .submitter
        .run(math::add(1, 2), &env)
        .await
        .unwrap_err();
    let Error::Forbidden {
        verb,
        resource,
        code,
        ..
    } = &err
    else {
        panic!("expected Forbidden, got {err:?}");
    };
    assert_eq!(
        (verb.as_str(), resource.as_str(), *code),
        ("create", "pods", 403)
    );
    assert_eq!(err.kind(), ErrorKind::Other);
    assert!(err.to_string().contains("RBAC rule"), "{err}");
    assert_eq!(pod_creates(server), 1, "one create attempt: {err}");
    // The refusal was one create's: the next call runs.
    let sum = setup.submitter.run(math::add(1, 2), &env).await.unwrap();
    assert_eq!(sum, 3);
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
