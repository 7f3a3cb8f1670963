//! Warm workers (issue 19) on the Kubernetes test double, pods as
//! processes: many calls per worker pod over one `pods/attach` stream
//! each, every call a fresh process; at most `up_to` workers; a stream cut
//! mid-call loses and repeats nothing; a worker pod deleted mid-call is a
//! loss (`ErrorKind::Lost`) that retries recover on another worker; idle
//! workers go, warm ones stay; `close` leaves nothing; a worker's state is
//! written on its pod for `hype ps`.
//!
//! (The double's Docker mode does not serve attach: these run in process
//! mode only.)

mod common;

use std::time::Duration;

use futures::StreamExt as _;
use hype::{Error, ErrorKind, LogMode, RunEnvironment, Submitter, Workers};
use hype_tests::IMAGE;
use hype_tests::backends::KubeCluster;
use hype_tests::kube_double::KubeTestServer;
use hype_tests::{captured, containers, failures, isolation, math, process};

/// A bound on anything a test waits for.
const BOUND: Duration = Duration::from_secs(120);

struct Cluster {
    server: KubeTestServer,
    submitter: Submitter,
}

impl Cluster {
    async fn new() -> Cluster {
        Cluster::with_pods(common::backend::worker_processes()).await
    }

    /// Pods as processes (`docker` `None`) or as Docker containers (the
    /// test's name, for the loud message when no engine answers: `None`).
    async fn in_mode(docker: Option<&str>) -> Option<Cluster> {
        Some(Cluster::with_pods(common::backend::worker_pods(docker).await?).await)
    }

    async fn with_pods(options: hype_tests::kube_double::KubeletOptions) -> Cluster {
        let server = KubeTestServer::start(options);
        let cluster = KubeCluster::from_client(server.client());
        let submitter = common::backend::kube_submitter(&server, cluster).await;
        Cluster { server, submitter }
    }

    fn env(&self, workers: Workers) -> RunEnvironment {
        RunEnvironment::new(IMAGE).with_workers(workers)
    }

    async fn run<A: hype::RemoteFn>(
        &self,
        call: hype::Call<A>,
        env: &RunEnvironment,
    ) -> Result<A::Output, Error> {
        tokio::time::timeout(BOUND, self.submitter.run(call, env))
            .await
            .expect("the call ends within its bound")
    }

    /// Pods created so far (the double's request log: every create).
    fn pods_created(&self) -> usize {
        self.server
            .request_log()
            .iter()
            .filter(|(method, path)| {
                method == "POST" && path.split('?').next().is_some_and(|p| p.ends_with("/pods"))
            })
            .count()
    }

    /// The worker pods there now, not being deleted.
    fn workers(&self) -> Vec<String> {
        self.server
            .pods()
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("hype.dev/role"))
                    .map(String::as_str)
                    == Some("worker")
            })
            .filter_map(|p| p.metadata.name)
            .collect()
    }

    /// A running worker pod's name (bounded wait).
    async fn running_worker(&self) -> String {
        let deadline = tokio::time::Instant::now() + BOUND;
        loop {
            let running = self.server.pods().into_iter().find(|p| {
                p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    && p.metadata.deletion_timestamp.is_none()
            });
            if let Some(pod) = running {
                return pod.metadata.name.expect("named");
            }
            assert!(tokio::time::Instant::now() < deadline, "no worker pod runs");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Close: no pod of the session, no pod process may remain.
    async fn finish(self) {
        tokio::time::timeout(BOUND, self.submitter.close())
            .await
            .expect("close is bounded")
            .expect("close");
        let session = self.submitter.session().to_owned();
        let left = || -> Vec<String> {
            self.server
                .pods()
                .into_iter()
                .filter(|p| {
                    p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("hype.dev/session"))
                        == Some(&session)
                })
                .filter_map(|p| p.metadata.name)
                .collect()
        };
        assert!(
            hype_tests::wait_until(Duration::from_secs(20), || left().is_empty()).await,
            "pods left behind: {:?}",
            left()
        );
        assert!(
            hype_tests::wait_until(Duration::from_secs(20), || self
                .server
                .pod_processes()
                .is_empty())
            .await,
            "pod processes left: {:?}",
            self.server.pod_processes()
        );
        self.server.shutdown().await;
    }
}

/// Pods as processes, then as Docker containers (skipped loudly without
/// an engine unless `HYPE_REQUIRE_DOCKER=1`).
const MODES: [Option<&str>; 2] = [None, Some("warm workers in Docker pods")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_calls_run_on_at_most_four_workers_in_order() {
    for mode in MODES {
        if let Some(c) = Cluster::in_mode(mode).await {
            two_hundred_calls(c).await;
        }
    }
}

async fn two_hundred_calls(c: Cluster) {
    let env = c.env(Workers::up_to(4));
    let calls: Vec<_> = (0..200).map(|i| math::add(i, 1000)).collect();
    let results: Vec<(usize, Result<i64, Error>)> = tokio::time::timeout(
        BOUND,
        c.submitter
            .map(calls, &env)
            .concurrency(16)
            .progress(false)
            .collect(),
    )
    .await
    .expect("the fan-out ends within its bound");
    assert_eq!(results.len(), 200);
    for (n, (i, result)) in results.into_iter().enumerate() {
        assert_eq!(i, n, "in input order");
        let sum = result.unwrap_or_else(|err| panic!("call {i} failed: {err}"));
        assert_eq!(sum, i as i64 + 1000);
    }
    let created = c.pods_created();
    assert!(
        (1..=4).contains(&created),
        "{created} pods were created for 200 calls on up_to(4)"
    );
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_lines_come_back_once_with_the_calls_execution_id() {
    captured::install();
    let c = Cluster::new().await;
    let env = c.env(Workers::up_to(1));
    let mut ids = Vec::new();
    for i in 0..3 {
        let tag = format!("worker-say-{i}");
        let id = c.run(isolation::say(tag.clone()), &env).await.unwrap();
        let lines = captured::lines(&tag);
        let mut text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        text.sort();
        assert_eq!(
            text,
            [format!("{tag} says err"), format!("{tag} says out")],
            "each line exactly once"
        );
        assert!(
            lines.iter().all(|(line_id, _)| *line_id == id),
            "lines carry the call's execution ID {id}: {lines:?}"
        );
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "each call its own execution ID: {ids:?}");
    assert_eq!(c.pods_created(), 1, "one worker ran the three");
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_never_sees_what_the_previous_one_left_on_its_worker() {
    for mode in MODES {
        if let Some(c) = Cluster::in_mode(mode).await {
            isolation_on_one_worker(c).await;
        }
    }
}

async fn isolation_on_one_worker(c: Cluster) {
    let env = c.env(Workers::up_to(1));
    assert_eq!(c.run(isolation::swap_global(5), &env).await.unwrap(), 0);
    assert_eq!(c.run(isolation::swap_global(6), &env).await.unwrap(), 0);
    assert_eq!(c.run(isolation::leak(100), &env).await.unwrap(), 100 << 20);
    assert_eq!(c.run(isolation::bump_counter(), &env).await.unwrap(), 1);
    assert_eq!(c.run(isolation::bump_counter(), &env).await.unwrap(), 1);
    assert_eq!(c.run(isolation::swap_global(8), &env).await.unwrap(), 0);
    let panic = c.run(failures::explode("boom".into()), &env).await;
    assert!(
        matches!(&panic, Err(Error::RemotePanic { message, .. }) if message.contains("boom")),
        "{panic:?}"
    );
    assert_eq!(c.run(isolation::swap_global(9), &env).await.unwrap(), 0);
    let exited = c.run(process::exit_abruptly(3), &env).await;
    match &exited {
        Err(err @ Error::RunnerFailed { status, .. }) => {
            assert!(status.contains("code 3"), "{status}");
            assert_ne!(err.kind(), ErrorKind::Lost, "the call's own exit");
        }
        other => panic!("expected RunnerFailed, got {other:?}"),
    }
    assert_eq!(c.run(isolation::swap_global(10), &env).await.unwrap(), 0);
    assert_eq!(c.pods_created(), 1, "all on one worker");
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_call_loses_and_repeats_nothing() {
    captured::install();
    let c = Cluster::new().await;
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    // Lines shown as they come (a fan-out holds them for failures only).
    let env = c.env(Workers::up_to(2)).with_log_mode(LogMode::Stream);
    // The first streams break a few messages in, while calls print.
    for _ in 0..4 {
        c.server.faults().break_next_attach_after(3);
    }
    let tags: Vec<String> = (0..6).map(|i| format!("cut-{i}")).collect();
    let calls = tags
        .iter()
        .map(|tag| isolation::mark(ran.display().to_string(), tag.clone(), 400));
    let results: Vec<(usize, Result<String, Error>)> = tokio::time::timeout(
        BOUND,
        c.submitter
            .map(calls.collect::<Vec<_>>(), &env)
            .concurrency(4)
            .progress(false)
            .collect(),
    )
    .await
    .expect("bounded");
    for (i, result) in results {
        assert_eq!(result.expect("no call fails"), tags[i]);
    }
    let mut lines: Vec<String> = std::fs::read_to_string(&ran)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(lines, tags, "each call ran exactly once");
    for tag in &tags {
        let ticks: Vec<String> = captured::lines(&format!("{tag} tick"))
            .into_iter()
            .map(|(_, line)| line)
            .collect();
        let expected: Vec<String> = (0..20).map(|i| format!("{tag} tick {}", i * 20)).collect();
        assert_eq!(ticks, expected, "every line once, in order");
    }
    let attaches = c
        .server
        .request_log()
        .iter()
        .filter(|(m, p)| m == "GET" && p.contains("/attach?"))
        .count();
    assert!(
        attaches > 2,
        "the streams were re-opened: {attaches} attaches"
    );
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_deleted_mid_call_is_a_loss_that_a_retry_recovers() {
    let c = Cluster::new().await;
    let env = c.env(Workers::up_to(2));
    let submitter = c.submitter.clone();
    let running = env.clone();
    let call =
        tokio::spawn(async move { submitter.run(containers::sleep(60_000), &running).await });
    let worker = c.running_worker().await;
    assert!(c.server.delete_pod_as_someone_else(&worker));
    let result = tokio::time::timeout(BOUND, call)
        .await
        .expect("bounded")
        .unwrap();
    let err = result.expect_err("its worker is gone");
    assert_eq!(err.kind(), ErrorKind::Lost, "{err}");

    // With a retry, the call runs again on another worker.
    let retried = env
        .clone()
        .with_retries(1)
        .with_retry_backoff(Duration::from_millis(50));
    let submitter = c.submitter.clone();
    let call = tokio::spawn(async move { submitter.run(containers::sleep(1500), &retried).await });
    let worker = c.running_worker().await;
    assert!(c.server.delete_pod_as_someone_else(&worker));
    let result = tokio::time::timeout(BOUND, call)
        .await
        .expect("bounded")
        .unwrap();
    assert_eq!(result.expect("the retry succeeds"), 1500);
    assert!(c.pods_created() >= 3, "a new worker ran the retry");
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_workers_pod_says_so() {
    let c = Cluster::new().await;
    let env = c.env(Workers::up_to(2));
    let submitter = c.submitter.clone();
    let call = tokio::spawn(async move { submitter.run(containers::sleep(60_000), &env).await });
    let worker = c.running_worker().await;
    let annotations = || {
        let pod = c.server.pod(&worker);
        let annotations = pod.and_then(|p| p.metadata.annotations).unwrap_or_default();
        ["state", "busy", "calls"]
            .map(|key| annotations.get(&format!("hype.dev/worker-{key}")).cloned())
    };
    // The state is written when it changed, at most every 10 s: the first
    // one seen may still be `starting`.
    let busy = [Some("busy"), Some("1"), Some("0")].map(|v| v.map(str::to_owned));
    assert!(
        hype_tests::wait_until(Duration::from_secs(60), || annotations() == busy).await,
        "the worker's pod never said busy 1: {:?}",
        annotations()
    );
    call.abort();
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workers_go_and_warm_ones_stay() {
    let c = Cluster::new().await;
    let idle = c.env(Workers::up_to(2).idle_for(Duration::from_secs(1)));
    let calls = (0..4).map(|i| c.run(math::add(i, 1), &idle));
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert!(
        hype_tests::wait_until(Duration::from_secs(30), || c.workers().is_empty()).await,
        "idle workers still there: {:?}",
        c.workers()
    );

    let warm = c.env(
        Workers::up_to(3)
            .keep_warm(2)
            .idle_for(Duration::from_secs(1))
            .calls_per_worker(2),
    );
    assert_eq!(c.run(math::add(1, 1), &warm).await.unwrap(), 2);
    assert!(
        hype_tests::wait_until(BOUND, || c.workers().len() == 2).await,
        "{:?}",
        c.workers()
    );
    // Several idle times later, both are still there.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(c.workers().len(), 2, "{:?}", c.workers());
    c.finish().await;
}

/// Shipping: workers of an image that holds only the launcher fetch the
/// executable once each, before their first call. Each worker pod gets a
/// cache of its own (a relative `HYPE_CACHE_DIR`, under the pod's working
/// directory); once both have run a call, the staged executable is
/// removed from the store, and 40 more calls still run: no call fetches
/// it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_workers_fetch_the_executable_once_each() {
    let launcher = std::path::PathBuf::from(env!("CARGO_BIN_EXE_hype-launcher"));
    let server = KubeTestServer::start(
        hype_tests::kube_double::KubeletOptions::new().image(hype_tests::LAUNCHER_IMAGE, launcher),
    );
    let connecting = Submitter::builder(KubeCluster::from_client(server.client()))
        .staging(format!("file://{}", server.staging_dir().display()))
        .executable(common::worker())
        .build();
    let submitter = tokio::time::timeout(Duration::from_secs(30), connecting)
        .await
        .expect("bounded")
        .expect("submitter");
    let c = Cluster { server, submitter };
    let env = RunEnvironment::new(hype_tests::LAUNCHER_IMAGE)
        .with_env("HYPE_CACHE_DIR", "hype-cache")
        .with_workers(Workers::up_to(2).keep_warm(2));
    let meet = tempfile::tempdir().unwrap();
    let dir = meet.path().display().to_string();
    let both = (0..2).map(|_| c.run(process::rendezvous(dir.clone(), 2), &env));
    for met in futures::future::join_all(both).await {
        assert_eq!(
            met.unwrap(),
            Ok(2),
            "the two calls ran at once, one per worker"
        );
    }
    let blobs = c.server.staging_dir().join("blobs").join("sha256");
    let mut removed = 0;
    for entry in std::fs::read_dir(&blobs).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
        removed += 1;
    }
    assert!(removed >= 1, "the executable was staged");
    let calls = (0..40).map(|i| c.run(math::add(i, 2), &env));
    for (i, sum) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(sum.expect("runs without fetching"), i as i64 + 2);
    }
    assert_eq!(c.pods_created(), 2, "two workers ran the 42 calls");
    c.finish().await;
}
