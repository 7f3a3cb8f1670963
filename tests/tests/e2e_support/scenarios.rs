//! What the e2e target checks on the cluster, one `async fn` each, on the
//! run's submitter (which ships this program to an image holding only
//! the launcher). Each call is bounded; each scenario leaves no pod.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::FutureExt as _;
use futures::StreamExt as _;
use hype::{Error, Secret, VolumeRequest};
use hype_tests::{captured, containers, failures, files, math, output, process};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};

use super::setup::{self, Ctx};

/// A bound on one call, so a hang fails the scenario instead of the run.
const CALL: Duration = Duration::from_secs(300);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(CALL, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {CALL:?}"))
}

/// A call and its typed result, through the launcher of the image: the
/// executable that ran it is the one shipped (`HYPE_LAUNCHED`).
pub async fn a_call_returns_its_typed_result(c: &Ctx) {
    let add = bounded("add", c.submitter.run(math::add(40, 2), &c.env)).await;
    assert_eq!(add.unwrap(), 42);
    let parsed = bounded(
        "parse",
        c.submitter.run(failures::parse("12".into()), &c.env),
    )
    .await;
    assert_eq!(parsed.unwrap(), Ok(12));
    let refused = bounded(
        "parse",
        c.submitter.run(failures::parse("twelve".into()), &c.env),
    )
    .await;
    assert_eq!(refused.unwrap().unwrap_err().input, "twelve");
    let p = hype_tests::Point { x: 1.5, y: -2.0 };
    let mirrored = bounded("mirror", c.submitter.run(hype_tests::mirror(p), &c.env)).await;
    assert_eq!(mirrored.unwrap(), hype_tests::Point { x: -1.5, y: 2.0 });
    let launched = bounded(
        "env_var",
        c.submitter
            .run(process::env_var("HYPE_LAUNCHED".into()), &c.env),
    )
    .await
    .unwrap();
    assert!(
        launched.as_deref().is_some_and(|d| d.len() == 64),
        "the call ran in the shipped executable, started by the image's launcher: HYPE_LAUNCHED={launched:?}"
    );
    let id = bounded(
        "env_var",
        c.submitter
            .run(process::env_var("HYPE_EXECUTION_ID".into()), &c.env),
    )
    .await
    .unwrap()
    .unwrap_or_default();
    assert!(id.starts_with("hype-env-var-"), "{id}");
}

/// A panic comes back with its message.
pub async fn a_panic_comes_back_with_its_message(c: &Ctx) {
    let err = bounded(
        "explode",
        c.submitter.run(failures::explode("kaboom".into()), &c.env),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::RemotePanic { message, .. } if message == "kaboom"),
        "{err:?}"
    );
}

/// The timeout is the pod's `activeDeadlineSeconds`, and a call past it
/// ends as a timeout.
pub async fn a_timeout_is_the_pods_active_deadline(c: &Ctx) {
    let env = c.env.clone().with_timeout(Duration::from_secs(30));
    let submitter = c.submitter.clone();
    let call = tokio::spawn(async move { submitter.run(containers::sleep(600_000), &env).await });
    let session = c.submitter.session().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let deadline_seconds = loop {
        if let Some(pod) = c.pods_of(&session).await.into_iter().next() {
            break pod.spec.and_then(|s| s.active_deadline_seconds);
        }
        assert!(tokio::time::Instant::now() < deadline, "no pod within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(deadline_seconds, Some(30));
    let err = bounded("sleep", call).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

/// A secret is mounted, and read-only.
pub async fn a_secret_is_mounted_read_only(c: &Ctx) {
    setup::create_secret(
        &c.client,
        &c.namespace.name,
        "hype-e2e-key",
        BTreeMap::from([("key.json".to_owned(), b"{\"k\":1}".to_vec())]),
    )
    .await;
    let env = c
        .env
        .clone()
        .with_secret(Secret::new("hype-e2e-key", "/etc/hype-e2e"));
    let (read, write) = bounded(
        "read_and_try_write",
        c.submitter.run(
            containers::read_and_try_write(
                "/etc/hype-e2e/key.json".into(),
                "/etc/hype-e2e/other".into(),
            ),
            &env,
        ),
    )
    .await
    .unwrap();
    assert_eq!(read, Ok("{\"k\":1}".to_owned()));
    assert!(write.is_err(), "a secret mount must refuse writes");
}

/// A transient claim written by one call is read by 3 readers at once,
/// which cannot write it.
pub async fn a_claim_written_once_is_read_by_three_readers(c: &Ctx) {
    let volume = VolumeRequest::new(&c.config.storage_class, "1Gi");
    let writer = c.env.clone().with_mount(volume.mount_read_write("/data"));
    bounded(
        "write",
        c.submitter
            .run(files::write("/data/word".into(), "hello".into()), &writer),
    )
    .await
    .unwrap()
    .unwrap();
    let readers = c.env.clone().with_mount(volume.mount_read_only("/data"));
    let reads = (0..3).map(|_| {
        c.submitter.run(
            containers::read_and_try_write("/data/word".into(), "/data/mine".into()),
            &readers,
        )
    });
    let results = bounded("readers", futures::future::try_join_all(reads))
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    for (read, write) in results {
        assert_eq!(read, Ok("hello".to_owned()));
        assert!(write.is_err(), "a read-only mount must refuse writes");
    }
}

/// Env vars, requests and limits and a base pod reach the pod: the calls
/// see the env, and the kept pods carry the resources and the base pod's
/// label.
pub async fn env_resources_and_a_base_pod_reach_the_pod(c: &Ctx) {
    let submitter = setup::connect(&c.config, &c.client, &c.namespace.name, |k| {
        k.keep_pods(true)
    })
    .await
    .unwrap();
    let env = c
        .config
        .env(
            c.dir.path(),
            "      env:\n        - name: FROM_BASE\n          value: base\n",
            "    hype-e2e/base: \"yes\"\n",
        )
        .with_env("GREETING", "hej")
        .with_request("cpu", "100m")
        .with_limit("memory", "512Mi");
    for (key, value) in [("GREETING", "hej"), ("FROM_BASE", "base")] {
        let seen = bounded("env_var", submitter.run(process::env_var(key.into()), &env))
            .await
            .unwrap();
        assert_eq!(seen.as_deref(), Some(value), "{key}");
    }
    let session = submitter.session().to_owned();
    let pods = c.pods_of(&session).await;
    assert_eq!(pods.len(), 2, "the two kept pods");
    for pod in &pods {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("hype-e2e/base").map(String::as_str), Some("yes"));
        let spec = pod.spec.clone().unwrap_or_default();
        let container = spec
            .containers
            .iter()
            .find(|c| c.name == "hype-run")
            .expect("the hype-run container");
        let resources = container.resources.clone().unwrap_or_default();
        let request = resources.requests.unwrap_or_default().get("cpu").cloned();
        let limit = resources.limits.unwrap_or_default().get("memory").cloned();
        assert_eq!(request.map(|q| q.0).as_deref(), Some("100m"));
        assert_eq!(limit.map(|q| q.0).as_deref(), Some("512Mi"));
        assert_eq!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded")
        );
    }
    let api: Api<Pod> = Api::namespaced(c.client.clone(), &c.namespace.name);
    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        api.delete(&name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete kept pod {name}: {e}"));
    }
    submitter.close().await.unwrap();
    let left =
        setup::wait_for_none(&c.client, &c.namespace.name, &session, setup::BOUND_GONE).await;
    assert!(left.is_empty(), "left: {left:?}");
}

/// A missing image is diagnosed while the pod is Pending.
pub async fn pending_diagnosis_names_a_missing_image(c: &Ctx) {
    let image = "registry.invalid/hype-e2e/missing:1";
    let env = c.env.clone().with_image(image);
    let err = bounded("add", c.submitter.run(math::add(1, 1), &env))
        .await
        .unwrap_err();
    match &err {
        Error::ImageUnavailable {
            image: named,
            reason,
            ..
        } => {
            assert_eq!(named, image);
            assert!(
                reason == "ErrImagePull" || reason == "ImagePullBackOff",
                "{reason}"
            );
        }
        other => panic!("expected ImageUnavailable, got {other:?}"),
    }
}

/// A missing secret is diagnosed while the pod is Pending, naming it.
pub async fn pending_diagnosis_names_a_missing_secret(c: &Ctx) {
    // A bound below the scenario's: a pod stuck without a diagnosis ends
    // as a timeout, which fails below with what the runner did see.
    let env = c
        .env
        .clone()
        .with_secret(Secret::new("hype-e2e-absent", "/etc/absent"))
        .with_timeout(Duration::from_secs(120));
    let err = bounded("add", c.submitter.run(math::add(1, 1), &env))
        .await
        .unwrap_err();
    match &err {
        Error::ContainerConfig { message, .. } => {
            assert!(message.contains("hype-e2e-absent"), "{message}")
        }
        other => panic!(
            "expected ContainerConfig naming the secret, got {other:?} (a kubelet that cannot mount a \
             missing secret volume leaves the container ContainerCreating and reports a FailedMount event)"
        ),
    }
}

/// Every line a call prints arrives once, with its execution ID.
pub async fn every_log_line_arrives_exactly_once(c: &Ctx) {
    let tag = format!("e2e-logs-{}", setup::unique());
    let n = bounded(
        "chatter",
        c.submitter
            .run(output::chatter(tag.clone(), 50, 300, false), &c.env),
    )
    .await
    .unwrap();
    assert_eq!(n, 50);
    let lines = captured::lines(&tag);
    let mut ids: Vec<&str> = lines.iter().map(|(id, _)| id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 1, "one execution: {ids:?}");
    assert!(ids[0].starts_with("hype-chatter-"), "{ids:?}");
    let mut text: Vec<&str> = lines.iter().map(|(_, line)| line.as_str()).collect();
    text.sort();
    let mut expected: Vec<String> = (0..50)
        .flat_map(|i| [format!("{tag} out {i}"), format!("{tag} err {i}")])
        .collect();
    expected.sort();
    assert_eq!(text, expected, "every line, exactly once");
}

/// `map` of 50 calls: every result, in input order.
pub async fn map_of_fifty_calls(c: &Ctx) {
    let calls = (0..50).map(|i| math::add(i, 1000));
    let results: Vec<(usize, Result<i64, Error>)> = tokio::time::timeout(
        Duration::from_secs(900),
        c.submitter.map(calls, &c.env).progress(false).collect(),
    )
    .await
    .expect("the fan-out ends within 900 s");
    assert_eq!(results.len(), 50);
    for (i, (index, result)) in results.into_iter().enumerate() {
        assert_eq!(index, i);
        assert_eq!(result.unwrap(), i as i64 + 1000, "call {i}");
    }
}

/// Runs `f`, catching a panic as its message.
pub async fn caught(f: impl std::future::Future<Output = ()>) -> Result<(), String> {
    std::panic::AssertUnwindSafe(f)
        .catch_unwind()
        .await
        .map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic".to_owned())
        })
}
