//! Pods in a namespace that enforces the `restricted` Pod Security
//! Standard (issue 22 §3), on the Kubernetes API test double, whose Pod
//! Security admission is written from the Kubernetes documentation's rules,
//! not from hype's code: every kind of pod hype makes is admitted there
//! and runs; a base pod or an option that asks for root or privileges is
//! refused with `Error::AdmissionDenied`, naming the policy and the field,
//! and not retried.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use hype::{Admission, Error, Gpu, RunEnvironment, Secret, TaintEffect, Toleration, VolumeRequest};
use hype_tests::IMAGE;
use hype_tests::backends::KubeCluster;
use hype_tests::kube_double::KubeTestServer;
use hype_tests::{containers, files, math};
use serde_bytes::ByteBuf;

const ENFORCE: &str = "pod-security.kubernetes.io/enforce";

/// A double whose pods run the worker as processes, namespace `default`
/// labelled `restricted`, and a submitter on it.
async fn restricted() -> (KubeTestServer, hype::Submitter) {
    let server = KubeTestServer::start(common::backend::worker_processes());
    server.label_namespace("default", ENFORCE, "restricted");
    let cluster = KubeCluster::from_client(server.client());
    let submitter = common::backend::kube_submitter(&server, cluster).await;
    (server, submitter)
}

/// Runs a call with a bound, so a hang fails the test instead of CI.
async fn run<A: hype::RemoteFn>(
    submitter: &hype::Submitter,
    call: hype::Call<A>,
    env: &RunEnvironment,
) -> Result<A::Output, Error> {
    tokio::time::timeout(Duration::from_secs(60), submitter.run(call, env))
        .await
        .expect("the call ends within 60 s")
}

/// The pod creates in the request log.
fn pod_creates(server: &KubeTestServer) -> usize {
    server
        .request_log()
        .iter()
        .filter(|(m, p)| m == "POST" && p.contains("/pods"))
        .count()
}

fn base_pod(dir: &tempfile::TempDir, name: &str, yaml: &str) -> RunEnvironment {
    let path = dir.path().join(name);
    std::fs::write(&path, yaml).unwrap();
    RunEnvironment::from_yaml(&path).unwrap().with_image(IMAGE)
}

#[tokio::test]
async fn every_kind_of_pod_hype_makes_is_admitted_in_a_restricted_namespace() {
    let (server, submitter) = restricted().await;
    let plain = RunEnvironment::new(IMAGE);
    assert_eq!(run(&submitter, math::add(1, 2), &plain).await.unwrap(), 3);

    // The read-only root's writable /tmp.
    run(
        &submitter,
        files::write("/tmp/scratch".into(), "x".into()),
        &plain,
    )
    .await
    .unwrap()
    .expect("/tmp is writable");

    server.create_secret(
        "gcp-key",
        BTreeMap::from([("key.json".to_owned(), b"{}".to_vec())]),
    );
    let secret = plain
        .clone()
        .with_secret(Secret::new("gcp-key", "/etc/gcloud"));
    assert_eq!(
        run(
            &submitter,
            files::read("/etc/gcloud/key.json".into()),
            &secret
        )
        .await
        .unwrap(),
        Ok("{}".to_owned())
    );

    let volume = VolumeRequest::new("standard", "1Gi");
    let writer = plain.clone().with_mount(volume.mount_read_write("/data"));
    run(
        &submitter,
        files::write("/data/w".into(), "hello".into()),
        &writer,
    )
    .await
    .unwrap()
    .unwrap();
    let reader = plain.clone().with_mount(volume.mount_read_only("/data"));
    let (read, _) = run(
        &submitter,
        containers::read_and_try_write("/data/w".into(), "/data/no".into()),
        &reader,
    )
    .await
    .unwrap();
    assert_eq!(read, Ok("hello".to_owned()));

    let placed = plain
        .clone()
        .with_gpu(Gpu::nvidia(1).model("nvidia-l4"))
        .with_spot(true)
        .with_node_selector("pool", "batch")
        .with_toleration(Toleration::exists("dedicated", TaintEffect::NoSchedule))
        .with_priority_class("batch-low")
        .with_service_account("default")
        .with_service_account_token(false)
        .with_labels([("team", "data")])
        .with_annotations([("note", "restricted")])
        .with_cpu("500m")
        .with_memory("256Mi");
    assert_eq!(run(&submitter, math::add(2, 2), &placed).await.unwrap(), 4);

    // Arguments too large to travel inline are staged; so is the result.
    let big = ByteBuf::from(vec![7u8; 2 << 20]);
    let echoed = run(&submitter, hype_tests::echo(big.clone()), &plain)
        .await
        .unwrap();
    assert_eq!(echoed, big);

    // A base pod that says nothing of security gets hype's defaults.
    let dir = tempfile::tempdir().unwrap();
    let based = base_pod(
        &dir,
        "plain.yaml",
        "metadata:\n  labels:\n    team: data\nspec:\n  containers:\n    - name: hype-run\n",
    );
    assert_eq!(run(&submitter, math::add(3, 3), &based).await.unwrap(), 6);

    assert!(
        !server
            .request_log()
            .iter()
            .any(|(m, p)| m == "POST" && p.ends_with("/namespaces")),
        "the namespace was labelled, not created"
    );
    submitter.close().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn root_or_privileged_pods_are_refused_naming_the_policy_and_field_once() {
    let (server, submitter) = restricted().await;
    let dir = tempfile::tempdir().unwrap();
    let retried = |env: RunEnvironment| {
        env.with_retries(3)
            .with_retry_backoff(Duration::from_millis(10))
    };
    let cases = [
        (
            retried(base_pod(
                &dir,
                "root.yaml",
                "spec:\n  containers:\n    - name: hype-run\n      securityContext:\n        runAsUser: 0\n",
            )),
            r#"runAsUser=0 (container "hype-run" must not set runAsUser=0)"#,
        ),
        (
            retried(base_pod(
                &dir,
                "privileged.yaml",
                "spec:\n  containers:\n    - name: hype-run\n      securityContext:\n        privileged: true\n",
            )),
            r#"privileged (container "hype-run" must not set securityContext.privileged=true)"#,
        ),
        (
            retried(RunEnvironment::new(IMAGE).with_run_as_user(0)),
            r#"runAsNonRoot != true (pod or container "hype-run" must set securityContext.runAsNonRoot=true)"#,
        ),
    ];
    for (env, field) in cases {
        server.clear_request_log();
        let err = run(&submitter, math::add(1, 2), &env).await.unwrap_err();
        let Error::AdmissionDenied { by, code, .. } = &err else {
            panic!("expected AdmissionDenied, got {err:?}");
        };
        assert!(
            matches!(by, Admission::PodSecurity { level, .. } if level == "restricted:latest"),
            "{by:?}"
        );
        assert_eq!(*code, 403);
        let text = err.to_string();
        assert!(text.contains(field), "{field:?} not in {text}");
        assert!(
            text.contains(r#"violates PodSecurity "restricted:latest""#),
            "{text}"
        );
        assert!(!text.contains("RBAC"), "no RBAC advice: {text}");
        assert_eq!(pod_creates(&server), 1, "one create attempt: {text}");
    }
    assert!(server.pods().is_empty(), "no pod was admitted");
    submitter.close().await.unwrap();
    server.shutdown().await;
}

/// A namespace created with the label through the API enforces it; one
/// without the label admits the same pod.
#[tokio::test]
async fn only_a_namespace_labelled_restricted_enforces_it() {
    use k8s_openapi::api::core::v1::Namespace;
    let server = KubeTestServer::start(common::backend::worker_processes());
    let namespaces: kube::Api<Namespace> = kube::Api::all(server.client());
    let secure: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "secure", "labels": {ENFORCE: "restricted"}}
    }))
    .unwrap();
    namespaces
        .create(&kube::api::PostParams::default(), &secure)
        .await
        .expect("create the namespace");
    let dir = tempfile::tempdir().unwrap();
    let root = base_pod(
        &dir,
        "root.yaml",
        "spec:\n  securityContext:\n    runAsUser: 0\n  containers:\n    - name: hype-run\n",
    );
    let in_secure = common::backend::kube_submitter(
        &server,
        KubeCluster::from_client(server.client()).namespace("secure"),
    )
    .await;
    let err = run(&in_secure, math::add(1, 2), &root).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"runAsUser=0 (pod must not set runAsUser=0)"#),
        "{err}"
    );
    let in_default =
        common::backend::kube_submitter(&server, KubeCluster::from_client(server.client())).await;
    assert_eq!(run(&in_default, math::add(1, 2), &root).await.unwrap(), 3);
    in_secure.close().await.unwrap();
    in_default.close().await.unwrap();
    server.shutdown().await;
}

/// In the double's Docker mode the pod's security context is applied to
/// the container: a call in a restricted namespace runs as 65532 without
/// capabilities or new privileges, on a read-only root with a writable
/// `/tmp`.
#[tokio::test]
async fn in_docker_mode_a_call_runs_as_65532_on_a_read_only_root() {
    let Some(options) = common::backend::worker_pods(Some("pod_security docker mode")).await else {
        return;
    };
    let server = KubeTestServer::start(options);
    server.label_namespace("default", ENFORCE, "restricted");
    let submitter =
        common::backend::kube_submitter(&server, KubeCluster::from_client(server.client())).await;
    let env = RunEnvironment::new(IMAGE);
    let status = run(&submitter, files::read("/proc/self/status".into()), &env)
        .await
        .unwrap()
        .expect("/proc/self/status is readable");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("Uid:"), "65532", "{status}");
    assert_eq!(field("Gid:"), "65532", "{status}");
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Groups:") && l.contains("65532")),
        "fsGroup is a supplementary group: {status}"
    );
    let root = run(
        &submitter,
        files::write("/written".into(), "x".into()),
        &env,
    )
    .await
    .unwrap();
    assert!(
        root.as_ref()
            .is_err_and(|e| e.contains("Read-only file system")),
        "{root:?}"
    );
    run(
        &submitter,
        files::write("/tmp/written".into(), "x".into()),
        &env,
    )
    .await
    .unwrap()
    .expect("/tmp is writable");
    // A claim is the fsGroup's: the call writes it as 65532.
    let volume = VolumeRequest::new("standard", "1Gi");
    let writer = env.clone().with_mount(volume.mount_read_write("/data"));
    run(
        &submitter,
        files::write("/data/w".into(), "x".into()),
        &writer,
    )
    .await
    .unwrap()
    .expect("the claim is writable by the fsGroup");
    submitter.close().await.unwrap();
    server.shutdown().await;
}
