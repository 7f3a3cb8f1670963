//! `docs/rbac.yaml` is the truth: a session that uses every Kubernetes
//! feature of a submitter (calls, an unschedulable pod's events, a failed
//! call's log tail, a transient and
//! a persistent volume, a lost create response, a warm worker, its
//! attach stream and its state written on its pod, close) sends only requests
//! the `hype-submitter` Role allows, and the Role grants nothing that
//! session does not use; and the file, which names no namespace, applies
//! in any namespace (`kubectl apply -n batch -f docs/rbac.yaml`) and grants
//! a session there what it needs.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use hype::{RunEnvironment, VolumeRequest};
use hype_tests::IMAGE;
use hype_tests::backends::KubeCluster;
use hype_tests::kube_double::{Autoscaler, KubeTestServer};
use hype_tests::{files, math, process, rbac};

#[tokio::test]
async fn a_session_needs_exactly_the_submitter_role() {
    let server = KubeTestServer::start(common::backend::worker_processes());
    let cluster = KubeCluster::from_client(server.client()).pending_timeout(Duration::from_secs(1));
    let submitter = common::backend::kube_submitter(&server, cluster).await;
    let env = RunEnvironment::new(IMAGE);
    let bound = Duration::from_secs(60);
    // Unschedulable until the autoscaler's node is up: its events are read.
    server
        .faults()
        .unschedulable("0/1 nodes are available: 1 Insufficient cpu.");
    server.faults().autoscaler(Autoscaler::ScaleUp {
        after: Duration::from_millis(500),
    });
    let sum = tokio::time::timeout(bound, submitter.run(math::add(1, 2), &env)).await;
    assert_eq!(sum.expect("within 60 s").unwrap(), 3);
    server.faults().clear_unschedulable();
    server.faults().lose_next_create_responses(1);
    let sum = tokio::time::timeout(bound, submitter.run(math::add(2, 2), &env)).await;
    assert_eq!(sum.expect("within 60 s").unwrap(), 4);
    let failed = tokio::time::timeout(bound, submitter.run(process::exit_abruptly(3), &env)).await;
    failed
        .expect("within 60 s")
        .expect_err("a failed call reads its log tail");
    let scratch = VolumeRequest::new("standard", "1Gi");
    let data = VolumeRequest::persistent("rbac-data", "standard", "1Gi");
    let with_volumes = env
        .clone()
        .with_mount(scratch.mount_read_write("/scratch"))
        .with_mount(data.mount_read_write("/data"));
    let wrote = tokio::time::timeout(
        bound,
        submitter.run(files::write("/scratch/x".into(), "x".into()), &with_volumes),
    )
    .await;
    wrote
        .expect("within 60 s")
        .expect("the call runs")
        .expect("writes");
    // A warm worker: its pod, and its pods/attach stream.
    let warm = env.clone().with_workers(hype::Workers::up_to(1));
    let sum = tokio::time::timeout(bound, submitter.run(math::add(3, 4), &warm)).await;
    assert_eq!(sum.expect("within 60 s").unwrap(), 7);
    // The worker's state, written on its pod for `hype ps` (a pods patch).
    let patched = || {
        server
            .request_log()
            .iter()
            .any(|(method, uri)| method == "PATCH" && uri.contains("/pods/hype-worker-"))
    };
    assert!(
        hype_tests::wait_until(bound, patched).await,
        "the worker's state was never written on its pod"
    );
    submitter.close().await.expect("close");

    let used: BTreeSet<_> = server
        .request_log()
        .iter()
        .filter_map(|(method, uri)| rbac::request(method, uri))
        .collect();
    let role = rbac::granted("hype-submitter");
    let missing: Vec<_> = used.difference(&role).collect();
    assert!(
        missing.is_empty(),
        "requests docs/rbac.yaml does not allow: {missing:?}"
    );
    // Renewal (patch every 20 s) is too slow to wait for here, and the
    // Lease is read only after its own create response was lost. The
    // attach stream is a GET here; newer API servers authorize the same
    // request as `create`.
    let unused: Vec<_> = role
        .difference(&used)
        .filter(|(_, resource, verb)| !(resource == "leases" && (verb == "patch" || verb == "get")))
        .filter(|(_, resource, verb)| !(resource == "pods/attach" && verb == "create"))
        .collect();
    assert!(
        unused.is_empty(),
        "rules no request of a session used: {unused:?}"
    );
    server.shutdown().await;
}

/// `kubectl apply -n batch -f docs/rbac.yaml`: no document names another
/// namespace, and the bindings grant the ServiceAccount `hype` of `batch`
/// (not `default`'s) every request a session in `batch` sends.
#[tokio::test]
async fn the_roles_apply_in_any_namespace() {
    let applied = rbac::apply_in("batch").expect("applies with -n batch");
    assert_eq!(applied.roles.len(), 2, "{applied:?}");
    assert_eq!(applied.bindings.len(), 2, "{applied:?}");
    for binding in &applied.bindings {
        for subject in binding.subjects.iter().flatten() {
            assert!(
                subject.namespace.is_none(),
                "a subject naming a namespace ties the file to it: {subject:?}"
            );
        }
    }
    assert_eq!(
        applied.granted_to_service_account("batch", "hype"),
        rbac::granted("hype-submitter")
            .union(&rbac::granted("hype-operator"))
            .cloned()
            .collect()
    );
    assert!(
        applied
            .granted_to_service_account("default", "hype")
            .is_empty(),
        "applied in batch, it grants nothing to default's account"
    );

    let server = KubeTestServer::start(common::backend::worker_processes());
    let cluster = KubeCluster::from_client(server.client()).namespace("batch");
    let submitter = common::backend::kube_submitter(&server, cluster).await;
    let env = RunEnvironment::new(IMAGE);
    let sum = tokio::time::timeout(
        Duration::from_secs(60),
        submitter.run(math::add(1, 2), &env),
    )
    .await;
    assert_eq!(sum.expect("within 60 s").unwrap(), 3);
    submitter.close().await.expect("close");

    let granted = applied.granted_to_service_account("batch", "hype");
    let mut sent = 0;
    for (method, uri) in server.request_log() {
        let Some(rule) = rbac::request(&method, &uri) else {
            continue;
        };
        sent += 1;
        assert_eq!(
            rbac::request_namespace(&uri).as_deref(),
            Some("batch"),
            "{method} {uri}"
        );
        assert!(
            granted.contains(&rule),
            "{method} {uri} ({rule:?}) is not granted by docs/rbac.yaml applied in batch"
        );
    }
    assert!(sent > 0, "the session sent requests");
    server.shutdown().await;
}
