//! The Kubernetes runner under API faults, against the test double (pods
//! as processes of the worker): a lost create response, a watch answered
//! with 403, a watch gone silent, the API unreachable while a delete is
//! sent; and the session's Lease. Each test ends like the runner's tests:
//! the submitter closes, and no pod, claim or Lease of the session remains.
//!
//! Each fault's time to detection is printed (`cargo test -- --nocapture`
//! shows it); the bounds asserted are generous, the targets are in the
//! README.

mod common;

use std::time::{Duration, Instant};

use hype::{Error, RunEnvironment, Submitter};
use hype_tests::IMAGE;
use hype_tests::backends::KubeCluster;
use hype_tests::fault_proxy::FaultProxy;
use hype_tests::kube_double::{KubeTestServer, KubeletOptions};
use hype_tests::{containers, math};

struct Cluster {
    server: KubeTestServer,
    submitter: Submitter,
}

impl Cluster {
    /// A double, and a submitter on it reached through `client`.
    async fn connect(server: KubeTestServer, client: kube::Client) -> Cluster {
        let submitter =
            common::backend::kube_submitter(&server, KubeCluster::from_client(client)).await;
        Cluster { server, submitter }
    }

    fn options() -> KubeletOptions {
        common::backend::worker_processes()
    }

    fn server() -> KubeTestServer {
        KubeTestServer::start(Cluster::options())
    }

    /// A double started with `options`, and a submitter on it whose
    /// cluster `configure` sets up.
    async fn with(
        options: KubeletOptions,
        configure: impl FnOnce(KubeCluster) -> KubeCluster,
    ) -> Cluster {
        let server = KubeTestServer::start(options);
        let cluster = configure(KubeCluster::from_client(server.client()));
        let submitter = common::backend::kube_submitter(&server, cluster).await;
        Cluster { server, submitter }
    }

    /// A double and a submitter on it.
    async fn plain() -> Cluster {
        let server = Cluster::server();
        let client = server.client();
        Cluster::connect(server, client).await
    }

    /// A double, a [`FaultProxy`] in front of it, and a submitter reaching
    /// the double through the proxy.
    async fn behind_proxy() -> (Cluster, FaultProxy) {
        let server = Cluster::server();
        let proxy = FaultProxy::start(server.url()).await;
        let client = server.client_via(proxy.url());
        (Cluster::connect(server, client).await, proxy)
    }

    fn env(&self) -> RunEnvironment {
        RunEnvironment::new(IMAGE)
    }

    fn of_session(&self, labels: Option<&std::collections::BTreeMap<String, String>>) -> bool {
        labels
            .and_then(|l| l.get("hype.dev/session"))
            .map(String::as_str)
            == Some(self.submitter.session())
    }

    /// Whether a pod of the double is Running.
    fn a_pod_runs(&self) -> bool {
        self.server
            .pods()
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    }

    fn pods(&self) -> Vec<String> {
        self.server
            .pods()
            .into_iter()
            .filter(|p| self.of_session(p.metadata.labels.as_ref()))
            .filter_map(|p| p.metadata.name)
            .collect()
    }

    fn leases(&self) -> Vec<String> {
        self.server
            .leases()
            .into_iter()
            .filter(|l| self.of_session(l.metadata.labels.as_ref()))
            .filter_map(|l| l.metadata.name)
            .collect()
    }

    /// Close; then no pod, claim or Lease of the session may remain.
    async fn finish(self) {
        self.close_clean().await;
        self.server.shutdown().await;
    }

    /// Close; then no pod, claim or Lease of the session may remain (the
    /// double goes on).
    async fn close_clean(&self) {
        tokio::time::timeout(Duration::from_secs(90), self.submitter.close())
            .await
            .expect("close within 90 s")
            .expect("close");
        assert!(
            hype_tests::wait_until(Duration::from_secs(10), || self.pods().is_empty()).await,
            "pods left behind: {:?}",
            self.pods()
        );
        let claims: Vec<_> = self
            .server
            .pvcs()
            .into_iter()
            .filter(|c| self.of_session(c.metadata.labels.as_ref()))
            .collect();
        assert!(claims.is_empty(), "claims left behind: {claims:?}");
        assert!(self.leases().is_empty(), "leases left: {:?}", self.leases());
    }
}

/// Drives `call` until `ready` holds (looked at every 20 ms, for at most
/// 30 s); the call ending first, or the bound, fails the test.
async fn until<F: std::future::Future<Output = Result<T, Error>> + Unpin, T: std::fmt::Debug>(
    call: &mut F,
    ready: impl Fn() -> bool,
) {
    let ready = async {
        while !ready() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        waited = tokio::time::timeout(Duration::from_secs(30), ready) => {
            waited.expect("ready within 30 s");
        }
        result = call => panic!("the call ended early: {result:?}"),
    }
}

/// POSTs of pods in the request log.
fn pod_creates(server: &KubeTestServer) -> usize {
    server
        .request_log()
        .iter()
        .filter(|(method, path)| {
            method == "POST" && path.starts_with("/api/v1/namespaces/default/pods")
        })
        .count()
}

#[tokio::test]
async fn a_lost_create_response_adopts_the_pod_it_created() {
    let cluster = Cluster::plain().await;
    cluster.server.faults().lose_next_create_responses(1);
    let started = Instant::now();
    let sum = tokio::time::timeout(
        Duration::from_secs(60),
        cluster.submitter.run(math::add(1, 2), &cluster.env()),
    )
    .await
    .expect("the call ends within 60 s");
    println!(
        "lost create response: the call returned after {:?}",
        started.elapsed()
    );
    assert_eq!(sum.expect("the call runs once and succeeds"), 3);
    assert!(
        pod_creates(&cluster.server) >= 2,
        "the create was sent again after its lost answer"
    );
    cluster.finish().await;
}

#[tokio::test]
async fn a_pod_whose_create_failed_after_it_was_stored_is_deleted() {
    let cluster = Cluster::plain().await;
    // The first create is stored but its answer lost; every retry fails.
    cluster.server.faults().lose_next_create_responses(1);
    cluster.server.faults().fail_next_creates(20, 500);
    let env = cluster.env();
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        cluster.submitter.run(containers::sleep(30_000), &env),
    )
    .await
    .expect("the call ends within 60 s")
    .expect_err("the create never got an answer");
    assert!(matches!(err, Error::Cluster { .. }), "{err:?}");
    // The stored pod ran on; the guard armed before the first attempt
    // deletes it.
    assert!(
        hype_tests::wait_until(Duration::from_secs(20), || cluster.pods().is_empty()).await,
        "the pod of the failed create is still there: {:?}",
        cluster.pods()
    );
    cluster.server.faults().clear();
    cluster.finish().await;
}

#[tokio::test]
async fn a_forbidden_watch_fails_the_waiting_calls_within_seconds() {
    let cluster = Cluster::plain().await;
    let env = cluster.env();
    let waiting = cluster.submitter.run(containers::sleep(60_000), &env);
    let mut waiting = Box::pin(waiting);
    // Until its pod runs, then take the watch's rights away.
    until(&mut waiting, || cluster.a_pod_runs()).await;
    cluster.server.faults().forbid_watches();
    cluster.server.faults().drop_watches();
    let refused_at = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the waiting call fails, not waits out its timeout")
        .expect_err("its watch is refused");
    let detected = refused_at.elapsed();
    println!("watch answered 403: the waiting call failed after {detected:?}");
    // A bound, not a speed claim: the call must fail because its watch was
    // refused, long before the 60 s sleep or the 30 s above, and 10 s is
    // room for a noisy 2-core CI machine running other builds. How fast
    // it is (tens of milliseconds, the README's "within 50 ms") is the
    // time printed above, read with `--nocapture`, not asserted.
    assert!(detected < Duration::from_secs(10), "{detected:?}");
    match &err {
        Error::Forbidden {
            verb,
            resource,
            namespace,
            code,
            ..
        } => {
            assert_eq!((verb.as_str(), resource.as_str()), ("watch", "pods"));
            assert_eq!((namespace.as_str(), *code), ("default", 403));
        }
        other => panic!("not Forbidden: {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(r#"verbs: ["watch"]"#) && text.contains("docs/rbac.yaml"),
        "the error names the missing rule: {text}"
    );

    // A new call fails at once, before creating a pod.
    let creates = pod_creates(&cluster.server);
    let err = cluster
        .submitter
        .run(math::add(1, 2), &env)
        .await
        .expect_err("the watch is still refused");
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    assert_eq!(
        pod_creates(&cluster.server),
        creates,
        "no pod for a call that cannot be watched"
    );

    // Rights back: calls work again once the watch is.
    cluster.server.faults().allow_watches();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match cluster.submitter.run(math::add(2, 3), &env).await {
            Ok(sum) => {
                assert_eq!(sum, 5);
                break;
            }
            Err(Error::Forbidden { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => panic!("calls do not recover: {err:?}"),
        }
    }
    cluster.finish().await;
}

#[tokio::test]
async fn a_silent_watch_is_noticed_and_re_established() {
    // The default bounds: a 30 s safety-net list, a 75 s idle bound.
    let cluster = Cluster::plain().await;
    // The session's watch opens in the background after connecting.
    assert!(
        hype_tests::wait_until(Duration::from_secs(10), || cluster
            .server
            .watch_connections()
            > 0)
        .await,
        "the watch never opened"
    );
    let before = cluster.server.watch_connections();
    cluster.server.faults().silence_open_watches();
    let silenced_at = Instant::now();
    let sum = tokio::time::timeout(
        Duration::from_secs(60),
        cluster.submitter.run(math::add(20, 22), &cluster.env()),
    )
    .await
    .expect("the safety net hands the call its pod within 60 s");
    let answered = silenced_at.elapsed();
    assert_eq!(sum.expect("the call succeeds"), 42);
    println!("silent watch: the call got its result (safety-net list) after {answered:?}");
    assert!(
        hype_tests::wait_until(Duration::from_secs(120), || cluster
            .server
            .watch_connections()
            > before)
        .await,
        "the silent watch was never re-established"
    );
    let reestablished = silenced_at.elapsed();
    println!("silent watch: re-established after {reestablished:?}");
    assert!(
        reestablished < Duration::from_secs(120),
        "{reestablished:?}"
    );
    // And the new watch works: a call is woken by it.
    let started = Instant::now();
    assert_eq!(
        cluster
            .submitter
            .run(math::add(1, 1), &cluster.env())
            .await
            .unwrap(),
        2
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    cluster.finish().await;
}

#[tokio::test]
async fn the_api_unreachable_while_a_delete_is_sent() {
    let (cluster, proxy) = Cluster::behind_proxy().await;
    proxy.down_at_next(
        "DELETE /api/v1/namespaces/default/pods/",
        Duration::from_secs(8),
    );
    let started = Instant::now();
    let sum = tokio::time::timeout(
        Duration::from_secs(60),
        cluster.submitter.run(math::add(3, 4), &cluster.env()),
    )
    .await
    .expect("the call ends within 60 s");
    assert_eq!(sum.expect("the call itself succeeded"), 7);
    println!(
        "unreachable delete: the call returned after {:?}",
        started.elapsed()
    );
    assert!(
        !proxy.armed(),
        "the delete was sent while the API was unreachable"
    );
    assert!(proxy.refused() > 0, "the retries met the unreachable API");
    // The delete goes on in the background until the API is back.
    assert!(
        hype_tests::wait_until(Duration::from_secs(40), || cluster.pods().is_empty()).await,
        "the pod was never deleted: {:?}",
        cluster.pods()
    );
    println!(
        "unreachable delete: the pod was gone after {:?}",
        started.elapsed()
    );
    cluster.finish().await;
}

#[tokio::test]
async fn the_session_holds_a_lease_that_owns_its_pods() {
    let cluster = Cluster::plain().await;
    let leases: Vec<_> = cluster
        .server
        .leases()
        .into_iter()
        .filter(|l| cluster.of_session(l.metadata.labels.as_ref()))
        .collect();
    assert_eq!(leases.len(), 1, "{leases:?}");
    let lease = &leases[0];
    let spec = lease.spec.as_ref().expect("a spec");
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    assert!(
        holder.starts_with(&format!("{}.", std::process::id())),
        "the holder is this process: {holder}"
    );
    assert_eq!(spec.lease_duration_seconds, Some(60));
    let env = cluster.env();
    let call = cluster.submitter.run(containers::sleep(30_000), &env);
    let mut call = Box::pin(call);
    until(&mut call, || !cluster.server.pods().is_empty()).await;
    let pod = cluster.server.pods().remove(0);
    let owners = pod.metadata.owner_references.unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].name.as_str()),
        ("Lease", lease.metadata.name.as_deref().unwrap())
    );
    assert_eq!(Some(&owners[0].uid), lease.metadata.uid.as_ref());
    // Renewed while the submitter lives (every 20 s).
    let first = spec.renew_time.clone();
    let renewed = async {
        loop {
            let now = cluster
                .server
                .leases()
                .into_iter()
                .find(|l| l.metadata.name == lease.metadata.name);
            if now.and_then(|l| l.spec).and_then(|s| s.renew_time) != first {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(Duration::from_secs(40), renewed) => {}
        result = &mut call => panic!("the call ended early: {result:?}"),
    }
    assert_ne!(
        cluster
            .server
            .leases()
            .into_iter()
            .find(|l| l.metadata.name == lease.metadata.name)
            .and_then(|l| l.spec)
            .and_then(|s| s.renew_time),
        first,
        "renewed within 40 s"
    );
    drop(call);
    cluster.finish().await;
}

#[tokio::test]
async fn deleting_the_lease_lets_the_garbage_collector_remove_the_pods() {
    let cluster = Cluster::plain().await;
    let env = cluster.env();
    let call = cluster.submitter.run(containers::sleep(30_000), &env);
    let mut call = Box::pin(call);
    until(&mut call, || !cluster.pods().is_empty()).await;
    // As `hype gc` does to a stale session: the Lease goes, the
    // collector removes what it owned, and the call learns its pod went.
    let client = cluster.server.client();
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client, "default");
    let name = cluster.leases().pop().expect("the session's lease");
    leases
        .delete(&name, &kube::api::DeleteParams::background())
        .await
        .expect("delete the lease");
    let err = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the call learns within 30 s")
        .expect_err("its pod was collected");
    assert!(matches!(err, Error::DeletedExternally { .. }), "{err:?}");
    assert!(
        hype_tests::wait_until(Duration::from_secs(40), || cluster.pods().is_empty()).await,
        "the collector left the pod: {:?}",
        cluster.pods()
    );
    cluster.finish().await;
}

#[tokio::test]
async fn a_submitter_dropped_without_close_leaves_nothing_for_long() {
    let cluster = Cluster::plain().await;
    let scratch = hype::VolumeRequest::new("standard", "1Gi");
    let env = cluster
        .env()
        .with_mount(scratch.mount_read_write("/scratch"));
    let wrote = tokio::time::timeout(
        Duration::from_secs(60),
        cluster.submitter.run(
            hype_tests::files::write("/scratch/x".into(), "x".into()),
            &env,
        ),
    )
    .await
    .expect("within 60 s");
    wrote.expect("the call runs").expect("it writes");
    let session = cluster.submitter.session().to_owned();
    let Cluster { server, submitter } = cluster;
    drop(submitter);
    // The Lease is deleted in the background; the garbage collector takes
    // the transient claim it owned.
    let of_session = |labels: Option<&std::collections::BTreeMap<String, String>>| {
        labels.and_then(|l| l.get("hype.dev/session")) == Some(&session)
    };
    let left = || {
        let leases = server
            .leases()
            .into_iter()
            .filter(|l| of_session(l.metadata.labels.as_ref()))
            .count();
        let claims = server
            .pvcs()
            .into_iter()
            .filter(|c| of_session(c.metadata.labels.as_ref()))
            .count();
        (leases, claims)
    };
    assert!(
        hype_tests::wait_until(Duration::from_secs(20), || left() == (0, 0)).await,
        "left by a dropped submitter (leases, claims): {:?}",
        left()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_api_server_down_for_10_s_is_waited_for_without_a_hot_loop() {
    let (cluster, proxy) = Cluster::behind_proxy().await;
    let env = cluster.env();
    let call = cluster.submitter.run(containers::sleep(3_000), &env);
    let mut call = Box::pin(call);
    until(&mut call, || cluster.a_pod_runs()).await;
    // The pod ends while the API server cannot be reached.
    proxy.down_for(Duration::from_secs(10));
    let started = Instant::now();
    let slept = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the call ends within 60 s of the outage");
    assert_eq!(slept.expect("the call survives the outage"), 3_000);
    let after = started.elapsed();
    println!(
        "API down 10 s: the call returned {after:?} after the outage began; {} connections were refused meanwhile",
        proxy.refused()
    );
    assert!(after >= Duration::from_secs(10), "{after:?}");
    // Backing off (200 ms doubling, with jitter) makes a handful of
    // attempts in 10 s; a hot loop would make thousands.
    assert!(
        proxy.refused() < 60,
        "{} connections refused",
        proxy.refused()
    );
    cluster.finish().await;
}

#[tokio::test]
async fn an_expired_watch_version_lists_again() {
    expired_watch_version_lists_again(false).await;
}

#[tokio::test]
async fn an_expired_watch_version_lists_again_with_opaque_versions() {
    expired_watch_version_lists_again(true).await;
}

async fn expired_watch_version_lists_again(opaque: bool) {
    let options = Cluster::options().opaque_resource_versions(opaque);
    let cluster = Cluster::with(options, |c| c).await;
    let env = cluster.env();
    let call = cluster.submitter.run(containers::sleep(1_500), &env);
    let mut call = Box::pin(call);
    until(&mut call, || cluster.a_pod_runs()).await;
    cluster.server.clear_request_log();
    // The watch resumes from a version the history no longer has: 410.
    // (A change of another kind moves the versions past the watch's; the
    // watch is silent first, so no later event moves its version on.)
    cluster.server.faults().silence_open_watches();
    cluster
        .server
        .create_secret("unrelated", std::collections::BTreeMap::new());
    cluster.server.faults().expire_watch_history();
    cluster.server.faults().drop_watches();
    let slept = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the call ends within 30 s");
    assert_eq!(slept.expect("the call succeeds"), 1_500);
    let lists = cluster
        .server
        .request_log()
        .iter()
        .filter(|(method, path)| {
            method == "GET"
                && path.starts_with("/api/v1/namespaces/default/pods?")
                && !path.contains("watch=")
        })
        .count();
    assert!(lists >= 1, "the watcher listed again after 410 Gone");
    cluster.finish().await;
}

/// GETs of the session's pods that are watches.
fn watch_requests(server: &KubeTestServer) -> usize {
    server
        .request_log()
        .iter()
        .filter(|(method, path)| {
            method == "GET"
                && path.starts_with("/api/v1/namespaces/default/pods?")
                && path.contains("watch=")
        })
        .count()
}

#[tokio::test]
async fn a_410_on_the_watch_request_itself_lists_again() {
    let cluster = Cluster::plain().await;
    let env = cluster.env();
    let call = cluster.submitter.run(containers::sleep(1_500), &env);
    let mut call = Box::pin(call);
    until(&mut call, || cluster.a_pod_runs()).await;
    // The watch resumes from a version the history no longer has, and the
    // server says so on the request (HTTP 410), not in the stream. (Silent
    // first, so no later event moves the watch's version on.)
    cluster.server.faults().silence_open_watches();
    cluster.server.faults().refuse_expired_watches_with_410();
    cluster
        .server
        .create_secret("unrelated", std::collections::BTreeMap::new());
    cluster.server.faults().expire_watch_history();
    let (opened, watches) = (
        cluster.server.watch_connections(),
        watch_requests(&cluster.server),
    );
    cluster.server.faults().drop_watches();
    let slept = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the call ends within 30 s");
    assert_eq!(slept.expect("the call succeeds"), 1_500);
    // A watch from the list's version is open again, after at most a
    // couple of refused requests: the stale version is not tried again.
    assert!(
        hype_tests::wait_until(Duration::from_secs(10), || cluster
            .server
            .watch_connections()
            > opened)
        .await,
        "no watch opened again after the 410 ({} watch requests)",
        watch_requests(&cluster.server) - watches
    );
    let tried = watch_requests(&cluster.server) - watches;
    assert!(tried <= 3, "{tried} watch requests after the 410");
    cluster.finish().await;
}

#[tokio::test]
async fn a_pod_deleted_while_the_watch_is_silent_is_noticed_with_opaque_versions() {
    pod_deleted_while_the_watch_is_silent(true).await;
}

#[tokio::test]
async fn a_pod_deleted_while_the_watch_is_silent_is_noticed() {
    pod_deleted_while_the_watch_is_silent(false).await;
}

/// Only the safety net (a list each second) can see the deletion: the
/// watch is silent and would be re-established only after 10 minutes.
async fn pod_deleted_while_the_watch_is_silent(opaque: bool) {
    let options = Cluster::options().opaque_resource_versions(opaque);
    let cluster = Cluster::with(options, |c| {
        c.watch_bounds(Duration::from_secs(600), Duration::from_secs(1))
    })
    .await;
    let env = cluster.env();
    let call = cluster.submitter.run(containers::sleep(60_000), &env);
    let mut call = Box::pin(call);
    until(&mut call, || cluster.a_pod_runs()).await;
    cluster.server.faults().silence_open_watches();
    let pod = cluster.pods().pop().expect("the call's pod");
    assert!(cluster.server.delete_pod_as_someone_else(&pod));
    let err = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the safety net notices the deletion within 30 s")
        .expect_err("the pod was deleted");
    assert!(matches!(err, Error::DeletedExternally { .. }), "{err:?}");
    cluster.finish().await;
}

#[tokio::test]
async fn bounds_of_duration_max_mean_never() {
    let cluster = Cluster::with(Cluster::options(), |c| {
        c.pending_timeout(Duration::MAX)
            .watch_bounds(Duration::MAX, Duration::MAX)
    })
    .await;
    let env = cluster.env().with_timeout(Duration::MAX);
    let sum = tokio::time::timeout(
        Duration::from_secs(30),
        cluster.submitter.run(math::add(2, 40), &env),
    )
    .await
    .expect("the call ends within 30 s");
    assert_eq!(sum.expect("the call succeeds"), 42);
    cluster.finish().await;
}

/// The `tracing` events of this test binary: warnings from hype, and the
/// remote output lines (target `hype::remote`) with their execution IDs.
mod events {
    use std::sync::{Mutex, Once};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

    /// (level, target, execution ID, message and fields).
    type Event = (tracing::Level, String, String, String);

    static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());

    #[derive(Default)]
    struct Fields {
        execution_id: String,
        text: String,
    }

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            match field.name() {
                "execution_id" => self.execution_id = value.to_owned(),
                _ => self.record_debug(field, &value),
            }
        }

        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            match field.name() {
                "message" => self.text.insert_str(0, &format!("{value:?}")),
                "execution_id" => self.execution_id = format!("{value:?}"),
                name => self.text.push_str(&format!(" {name}={value:?}")),
            }
        }
    }

    struct Capture;

    impl<S: tracing::Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let meta = event.metadata();
            let remote = meta.target() == "hype::remote";
            if !remote && *meta.level() > tracing::Level::WARN {
                return;
            }
            let mut fields = Fields::default();
            event.record(&mut fields);
            EVENTS.lock().unwrap_or_else(|e| e.into_inner()).push((
                *meta.level(),
                meta.target().to_owned(),
                fields.execution_id,
                fields.text,
            ));
        }
    }

    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(Capture);
            tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        });
    }

    /// The warnings whose text contains `needle`.
    pub fn warnings(needle: &str) -> Vec<String> {
        EVENTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(level, target, _, text)| {
                *level == tracing::Level::WARN && target != "hype::remote" && text.contains(needle)
            })
            .map(|(_, _, _, text)| text.clone())
            .collect()
    }

    /// The remote output lines of execution `execution_id`.
    pub fn output_of(execution_id: &str) -> Vec<String> {
        EVENTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, target, id, _)| target == "hype::remote" && id == execution_id)
            .map(|(_, _, _, text)| text.clone())
            .collect()
    }
}

#[tokio::test]
async fn pods_log_answering_500_is_said_once_and_calls_still_work() {
    unreadable_logs(500, "InternalError").await;
}

#[tokio::test]
async fn pods_log_forbidden_is_said_once_and_calls_still_work() {
    unreadable_logs(403, "forbidden").await;
}

/// With every `pods/log` request failing (HTTP `code`): the calls' results
/// are unaffected, one warning per session names the reason (`reason`)
/// and what to check, and a failed call held for `LogMode::OnFailure`
/// says its output could not be read.
async fn unreadable_logs(code: u16, reason: &str) {
    events::install();
    let cluster = Cluster::plain().await;
    cluster.server.faults().fail_logs(code);
    let session = cluster.submitter.session().to_owned();
    let env = cluster.env();
    for i in 0..3 {
        let sum = cluster.submitter.run(math::add(i, 1), &env).await;
        assert_eq!(sum.expect("the result does not need the log"), i + 1);
    }
    let held = env.clone().with_log_mode(hype::LogMode::OnFailure);
    let err = cluster
        .submitter
        .run(hype_tests::failures::explode("boom".into()), &held)
        .await
        .expect_err("it panics");
    let Error::RemotePanic { execution_id, .. } = &err else {
        panic!("not a panic: {err:?}");
    };
    let shown = events::output_of(execution_id);
    assert!(
        shown
            .iter()
            .any(|line| line.contains("could not be read") && line.contains(reason)),
        "the failed call says its output could not be read: {shown:?}"
    );
    let warned = events::warnings(&session);
    assert_eq!(warned.len(), 1, "one warning per session: {warned:?}");
    let warning = &warned[0];
    for needed in [reason, "pods/log", "10250", "docs/rbac.yaml"] {
        assert!(warning.contains(needed), "{needed:?} in {warning}");
    }
    cluster.server.faults().clear();
    cluster.finish().await;
}

#[tokio::test]
async fn close_without_deletecollection_answered_405_deletes_by_name() {
    close_without_deletecollection(405).await;
}

#[tokio::test]
async fn close_without_deletecollection_answered_404_deletes_by_name() {
    close_without_deletecollection(404).await;
}

/// An API server without `deletecollection` and without a garbage
/// collector: `close()` still removes the session's transient claim and
/// its Lease.
async fn close_without_deletecollection(code: u16) {
    let options = Cluster::options().garbage_collector(false);
    let cluster = Cluster::with(options, |c| c).await;
    cluster.server.faults().refuse_delete_collections(code);
    let volume = hype::VolumeRequest::new("standard", "1Gi");
    let writer = cluster.env().with_mount(volume.mount_read_write("/data"));
    let written = cluster
        .submitter
        .run(
            hype_tests::files::write("/data/word".into(), "hello".into()),
            &writer,
        )
        .await;
    written.expect("the call runs").expect("it writes");
    assert_eq!(cluster.server.pvcs().len(), 1, "the transient claim");
    cluster.close_clean().await;
    let collection_deletes = cluster
        .server
        .request_log()
        .iter()
        .filter(|(method, path)| {
            method == "DELETE"
                && (path.starts_with("/api/v1/namespaces/default/pods?")
                    || path.starts_with("/api/v1/namespaces/default/persistentvolumeclaims?"))
        })
        .count();
    assert!(
        collection_deletes >= 2,
        "close tried deletecollection first (answered {code})"
    );
    cluster.server.shutdown().await;
}
