//! The Kubernetes runner end to end, against the Kubernetes API test double
//! (`hype_tests::kube_double`: real HTTP and a kubelet simulator), in two
//! modes: every test runs once with each pod's container a process of the
//! worker binary (`process_mode::…`) and once with it a real Docker container of
//! the test image (`docker_mode::…`, see `hype_tests::docker_image`), so the
//! Kubernetes path is exercised with real containers: real bind mounts,
//! `/dev/termination-log`, memory limits. The tests of the watch also run
//! with the double's resourceVersions opaque (`opaque_versions_mode::…`).
//!
//! Without a Docker engine the Docker variants skip with a loud message,
//! unless `HYPE_REQUIRE_DOCKER=1` (as `.ci/run` sets), which makes them
//! fail.
//!
//! Every test ends with [`Cluster::finish`]: the submitter closes, and no
//! pod, transient claim, Lease, pod process or pod container may remain.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hype::{ByteBuf, Error, RunEnvironment, Secret, Submitter, VolumeRequest};
use hype_tests::IMAGE;
use hype_tests::backends::KubeCluster;
use hype_tests::kube_double::{Autoscaler, KubeTestServer};
use hype_tests::{bytes, containers, failures, files, math, process};

/// How the test double runs pods' containers.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// As processes of the worker binary.
    Process,
    /// As Docker containers of the test image; the test's name, for the
    /// message when it skips.
    Docker(&'static str),
    /// As processes, with the double's resourceVersions opaque (neither
    /// numbers nor in order, as Kubernetes allows).
    OpaqueVersions,
}

/// Generates, for each test function `name(mode)`, the tests
/// `process_mode::name` and `docker_mode::name`.
macro_rules! in_both_modes {
    ($($test:ident),* $(,)?) => {
        /// The tests with each container a process.
        mod process_mode {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Mode::Process).await;
                }
            )*
        }

        /// The tests with each container a Docker container.
        mod docker_mode {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Mode::Docker(concat!("docker_mode::", stringify!($test)))).await;
                }
            )*
        }
    };
}

/// Generates, for each test function `name(mode)`, the test
/// `opaque_versions_mode::name`: the watch and the safety net must not
/// read resourceVersions as numbers.
macro_rules! with_opaque_versions {
    ($($test:ident),* $(,)?) => {
        /// The tests with the double's resourceVersions opaque.
        mod opaque_versions_mode {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Mode::OpaqueVersions).await;
                }
            )*
        }
    };
}

with_opaque_versions!(
    calls_run_in_pods_and_return_typed_values,
    a_pod_deleted_by_someone_else_is_reported_as_such,
    a_preempted_or_vanished_pod_is_run_again_with_retries,
    the_deadline_stops_the_pod,
    dropping_the_call_deletes_its_pod,
    a_dropped_watch_is_resumed,
    many_calls_share_one_watch,
    the_volume_flow_one_writer_then_ten_readers,
);

in_both_modes!(
    calls_run_in_pods_and_return_typed_values,
    the_pod_gets_env_vars_and_its_name_as_execution_id,
    a_panic_in_a_pod_comes_back_with_its_message,
    large_payloads_are_staged_both_ways,
    a_container_that_exits_without_outcome_reports_its_log_tail,
    secrets_are_mounted_read_only,
    a_missing_secret_fails_fast_naming_it,
    the_volume_flow_one_writer_then_ten_readers,
    an_image_that_cannot_be_pulled_fails_fast,
    an_unschedulable_pod_fails_after_the_pending_timeout,
    a_pod_waits_for_the_node_the_autoscaler_adds,
    a_scale_up_that_brings_no_node_fails_after_the_scale_up_timeout,
    a_pod_whose_node_groups_are_full_fails_after_the_pending_timeout,
    a_pod_no_node_group_fits_fails_at_once,
    an_oom_kill_is_reported_as_such,
    an_eviction_is_reported_as_such,
    a_pod_deleted_by_someone_else_is_reported_as_such,
    a_preempted_node_is_reported_as_such,
    a_preempted_or_vanished_pod_is_run_again_with_retries,
    retries_that_run_out_list_every_attempt,
    an_oom_kill_is_not_retried,
    the_deadline_stops_the_pod,
    dropping_the_call_deletes_its_pod,
    transient_api_errors_are_retried_and_bounded,
    a_dropped_watch_is_resumed,
    many_calls_share_one_watch,
    a_base_pod_from_yaml_is_honoured,
    keep_pods_leaves_finished_pods_for_debugging,
);

/// A test double with the worker as image `IMAGE`, and a submitter on it.
struct Cluster {
    server: KubeTestServer,
    submitter: Submitter,
    mode: Mode,
}

impl Cluster {
    /// The cluster, or `None` (after a loud message) in Docker mode when
    /// no engine answers and `HYPE_REQUIRE_DOCKER` is not `1`.
    async fn new(mode: Mode) -> Option<Cluster> {
        Cluster::with(mode, |cluster| cluster).await
    }

    async fn with(
        mode: Mode,
        configure: impl FnOnce(KubeCluster) -> KubeCluster,
    ) -> Option<Cluster> {
        let options = match mode {
            Mode::Process => common::backend::worker_pods(None).await?,
            Mode::OpaqueVersions => common::backend::worker_pods(None)
                .await?
                .opaque_resource_versions(true),
            Mode::Docker(test) => {
                let test = format!("kubernetes_runner {test}");
                common::backend::worker_pods(Some(&test)).await?
            }
        };
        let server = KubeTestServer::start(options);
        // Every pod of these tests must pass the restricted Pod Security
        // Standard, as hype's pods do by default.
        server.label_namespace(
            "default",
            "pod-security.kubernetes.io/enforce",
            "restricted",
        );
        let cluster = configure(KubeCluster::from_client(server.client()));
        let submitter = common::backend::kube_submitter(&server, cluster).await;
        Some(Cluster {
            server,
            submitter,
            mode,
        })
    }

    fn env(&self) -> RunEnvironment {
        RunEnvironment::new(IMAGE)
    }

    /// Runs a call with a bound, so a hang fails the test instead of CI.
    async fn run<A: hype::RemoteFn>(
        &self,
        call: hype::Call<A>,
        env: &RunEnvironment,
    ) -> Result<A::Output, Error> {
        tokio::time::timeout(Duration::from_secs(60), self.submitter.run(call, env))
            .await
            .expect("the call ends within 60 s")
    }

    /// The leak check: close, then nothing of this session may remain.
    async fn finish(self) {
        self.submitter.close().await.expect("close");
        let session = self.submitter.session().to_owned();
        let pods = || -> Vec<(String, bool)> {
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
                .map(|p| {
                    let terminating = p.metadata.deletion_timestamp.is_some();
                    (p.metadata.name.unwrap_or_default(), terminating)
                })
                .collect()
        };
        // A pod deleted gracefully stays (Terminating) until its containers
        // are gone, which takes a moment for a Docker container.
        let left = pods();
        assert!(
            left.iter().all(|(_, terminating)| *terminating),
            "pods left behind: {left:?}"
        );
        // (The kubelet runs on this runtime: wait without blocking it.)
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !pods().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = pods();
        assert!(
            left.is_empty(),
            "terminating pods still there after 10 s: {left:?}"
        );
        let claims: Vec<String> = self
            .server
            .pvcs()
            .into_iter()
            .filter(|c| {
                c.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("hype.dev/session"))
                    == Some(&session)
            })
            .filter_map(|c| c.metadata.name)
            .collect();
        assert!(
            claims.is_empty(),
            "transient claims left behind: {claims:?}"
        );
        let leases: Vec<String> = self
            .server
            .leases()
            .into_iter()
            .filter(|l| {
                l.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("hype.dev/session"))
                    == Some(&session)
            })
            .filter_map(|l| l.metadata.name)
            .collect();
        assert!(leases.is_empty(), "the session's lease is left: {leases:?}");
        assert!(
            hype_tests::wait_until(Duration::from_secs(10), || self
                .server
                .pod_processes()
                .is_empty())
            .await,
            "pod processes left running: {:?}",
            self.server.pod_processes()
        );
        if let Mode::Docker(_) = self.mode {
            // A finished pod's container is removed right after its status
            // is written; the runner may have seen the status first.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let mut left = self.server.pod_containers().await;
            while !left.is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
                left = self.server.pod_containers().await;
            }
            assert!(left.is_empty(), "pod containers left: {left:?}");
        }
        self.server.shutdown().await;
    }

    /// Waits until the session's only pod is Running; gives its name.
    async fn running_pod(&self) -> String {
        for _ in 0..1000 {
            let running =
                self.server.pods().into_iter().find(|p| {
                    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                });
            if let Some(pod) = running {
                return pod.metadata.name.expect("named");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no pod started running within 20 s");
    }
}

async fn calls_run_in_pods_and_return_typed_values(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    assert_eq!(c.run(math::add(40, 2), &c.env()).await.unwrap(), 42);
    assert_eq!(c.run(math::add_later(1, 2), &c.env()).await.unwrap(), 3);
    assert_eq!(
        c.run(failures::parse("12".into()), &c.env()).await.unwrap(),
        Ok(12)
    );
    let err = c
        .run(failures::parse("twelve".into()), &c.env())
        .await
        .unwrap();
    assert_eq!(err.unwrap_err().input, "twelve");
    c.finish().await;
}

async fn the_pod_gets_env_vars_and_its_name_as_execution_id(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let env = c.env().with_env("GREETING", "hej");
    assert_eq!(
        c.run(process::env_var("GREETING".into()), &env)
            .await
            .unwrap()
            .as_deref(),
        Some("hej")
    );
    let exec = c
        .run(process::env_var("HYPE_EXECUTION_ID".into()), &env)
        .await
        .unwrap()
        .unwrap();
    assert!(exec.starts_with("hype-env-var-"), "{exec}");
    c.finish().await;
}

async fn a_panic_in_a_pod_comes_back_with_its_message(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let err = c
        .run(failures::explode("kaboom".into()), &c.env())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RemotePanic { message, .. } if message == "kaboom"),
        "{err:?}"
    );
    c.finish().await;
}

async fn large_payloads_are_staged_both_ways(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let reversed = c
        .run(bytes::reverse(ByteBuf::from(data.clone())), &c.env())
        .await
        .unwrap();
    assert_eq!(reversed.len(), data.len());
    assert_eq!(reversed[0], data[data.len() - 1]);
    c.finish().await;
}

async fn a_container_that_exits_without_outcome_reports_its_log_tail(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let err = c
        .run(process::exit_abruptly(3), &c.env())
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
    c.finish().await;
}

async fn secrets_are_mounted_read_only(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    c.server.create_secret(
        "gcp-key",
        BTreeMap::from([("key.json".to_owned(), b"{\"k\":1}".to_vec())]),
    );
    let env = c.env().with_secret(Secret::new("gcp-key", "/etc/gcloud"));
    let (read, write) = c
        .run(
            containers::read_and_try_write(
                "/etc/gcloud/key.json".into(),
                "/etc/gcloud/other".into(),
            ),
            &env,
        )
        .await
        .unwrap();
    assert_eq!(read, Ok("{\"k\":1}".to_owned()));
    assert!(write.is_err(), "a secret mount must refuse writes");
    c.finish().await;
}

async fn a_missing_secret_fails_fast_naming_it(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let env = c
        .env()
        .with_secret(Secret::new("absent-key", "/etc/absent"));
    let err = c.run(math::add(1, 1), &env).await.unwrap_err();
    match &err {
        Error::ContainerConfig {
            reason, message, ..
        } => {
            assert_eq!(reason, "CreateContainerConfigError");
            assert!(message.contains("absent-key"), "{message}");
        }
        other => panic!("expected ContainerConfig, got {other:?}"),
    }
    c.finish().await;
}

async fn the_volume_flow_one_writer_then_ten_readers(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let volume = VolumeRequest::new("standard", "1Gi");
    let writer = c.env().with_mount(volume.mount_read_write("/data"));
    c.run(files::write("/data/word".into(), "hello".into()), &writer)
        .await
        .unwrap()
        .unwrap();
    assert!(
        c.server.pods().is_empty(),
        "the writer's pod is gone before readers start"
    );
    let readers = c.env().with_mount(volume.mount_read_only("/data"));
    let reads = (0..10).map(|_| {
        c.run(
            containers::read_and_try_write("/data/word".into(), "/data/mine".into()),
            &readers,
        )
    });
    for (read, write) in futures::future::try_join_all(reads).await.unwrap() {
        assert_eq!(read, Ok("hello".to_owned()));
        assert!(write.is_err(), "a read-only mount must refuse writes");
    }
    let claim = c
        .server
        .pvcs()
        .into_iter()
        .find(|p| p.metadata.name.as_deref() == Some(volume.name()));
    let spec = claim.expect("the claim exists").spec.unwrap();
    assert_eq!(
        spec.access_modes.unwrap(),
        ["ReadWriteOnce", "ReadOnlyMany"]
    );
    assert_eq!(spec.storage_class_name.as_deref(), Some("standard"));

    let kept = VolumeRequest::persistent("kept-data", "standard", "1Gi");
    let env = c.env().with_mount(kept.mount_read_write("/p"));
    c.run(files::write("/p/x".into(), "1".into()), &env)
        .await
        .unwrap()
        .unwrap();
    c.run(files::write("/p/y".into(), "2".into()), &env)
        .await
        .unwrap()
        .unwrap();
    let server_pvcs = |c: &Cluster| {
        c.server
            .pvcs()
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect::<Vec<_>>()
    };
    let before_close = server_pvcs(&c);
    assert!(
        before_close.iter().any(|n| n == volume.name())
            && before_close.contains(&"kept-data".to_owned())
    );
    c.submitter.close().await.unwrap();
    let after_close = server_pvcs(&c);
    assert!(
        !after_close.iter().any(|n| n == volume.name()),
        "a transient claim goes when the submitter closes"
    );
    assert!(
        after_close.contains(&"kept-data".to_owned()),
        "a persistent claim stays"
    );
    c.finish().await;
}

async fn an_image_that_cannot_be_pulled_fails_fast(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let env = RunEnvironment::new("registry.example.com/missing:1");
    let err = c.run(math::add(1, 1), &env).await.unwrap_err();
    match &err {
        Error::ImageUnavailable { image, reason, .. } => {
            assert_eq!(image, "registry.example.com/missing:1");
            assert!(
                reason == "ErrImagePull" || reason == "ImagePullBackOff",
                "{reason}"
            );
        }
        other => panic!("expected ImageUnavailable, got {other:?}"),
    }
    assert!(
        err.to_string().contains("registry.example.com/missing:1"),
        "{err}"
    );
    c.finish().await;
}

async fn an_unschedulable_pod_fails_after_the_pending_timeout(mode: Mode) {
    let Some(c) = Cluster::with(mode, |k| k.pending_timeout(Duration::from_millis(800))).await
    else {
        return;
    };
    c.server
        .faults()
        .unschedulable("0/1 nodes are available: 1 Insufficient cpu.");
    let err = c
        .run(math::add(1, 1), &c.env().with_request("cpu", "64"))
        .await
        .unwrap_err();
    match &err {
        Error::Unschedulable { message, after, .. } => {
            assert_eq!(message, "0/1 nodes are available: 1 Insufficient cpu.");
            assert_eq!(*after, Duration::from_millis(800));
        }
        other => panic!("expected Unschedulable, got {other:?}"),
    }
    c.server.faults().clear_unschedulable();
    c.finish().await;
}

/// The requests for events the submitter sent: each a list of one pod's
/// events (by field selector), never a watch.
fn event_reads(server: &KubeTestServer) -> Vec<String> {
    let reads: Vec<String> = server
        .request_log()
        .into_iter()
        .filter(|(_, uri)| uri.contains("/events"))
        .map(|(method, uri)| {
            assert_eq!(method, "GET", "{uri}");
            assert!(
                uri.contains("fieldSelector=involvedObject.name%3D") && !uri.contains("watch"),
                "{uri}"
            );
            uri
        })
        .collect();
    reads
}

async fn a_pod_waits_for_the_node_the_autoscaler_adds(mode: Mode) {
    let Some(c) = Cluster::with(mode, |k| {
        k.pending_timeout(Duration::from_secs(1))
            .scale_up_timeout(Duration::from_secs(4))
    })
    .await
    else {
        return;
    };
    c.server
        .faults()
        .unschedulable("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.");
    c.server.faults().autoscaler(Autoscaler::ScaleUp {
        after: Duration::from_secs(2),
    });
    let started = Instant::now();
    let sum = c.run(math::add(1, 2), &c.env()).await;
    assert_eq!(sum.expect("the call runs on the new node"), 3);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "waited for the new node: {waited:?}"
    );
    // One read at first sight, then at most one per 250 ms (a quarter of
    // the pending timeout) while the pod waits: not one per watch event.
    let reads = event_reads(&c.server);
    assert!(
        !reads.is_empty() && reads.len() <= 2 + (waited.as_millis() / 250) as usize,
        "{} reads in {waited:?}",
        reads.len()
    );
    c.server.faults().clear_unschedulable();
    c.finish().await;
}

async fn a_scale_up_that_brings_no_node_fails_after_the_scale_up_timeout(mode: Mode) {
    let Some(c) = Cluster::with(mode, |k| {
        k.pending_timeout(Duration::from_millis(500))
            .scale_up_timeout(Duration::from_secs(2))
    })
    .await
    else {
        return;
    };
    c.server
        .faults()
        .unschedulable("0/1 nodes are available: 1 Insufficient cpu.");
    c.server.faults().autoscaler(Autoscaler::ScaleUp {
        after: Duration::from_secs(60),
    });
    let started = Instant::now();
    let err = c.run(math::add(1, 1), &c.env()).await.unwrap_err();
    let waited = started.elapsed();
    match &err {
        Error::Unschedulable { message, after, .. } => {
            assert!(
                message.starts_with("0/1 nodes are available: 1 Insufficient cpu.; the cluster autoscaler started a scale-up (pod triggered scale-up:"),
                "{message}"
            );
            assert_eq!(*after, Duration::from_secs(2));
        }
        other => panic!("expected Unschedulable, got {other:?}"),
    }
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(10)).contains(&waited),
        "{waited:?}"
    );
    c.server.faults().clear_unschedulable();
    c.finish().await;
}

/// `NotTriggerScaleUp` because the node groups are full: room may free
/// up as other pods end, so the call waits the pending timeout.
async fn a_pod_whose_node_groups_are_full_fails_after_the_pending_timeout(mode: Mode) {
    let Some(c) = Cluster::with(mode, |k| {
        k.pending_timeout(Duration::from_secs(1))
            .scale_up_timeout(Duration::from_secs(30))
    })
    .await
    else {
        return;
    };
    c.server
        .faults()
        .unschedulable("0/1 nodes are available: 1 Insufficient cpu.");
    c.server.faults().autoscaler(Autoscaler::NoScaleUp);
    let started = Instant::now();
    let err = c.run(math::add(1, 1), &c.env()).await.unwrap_err();
    let waited = started.elapsed();
    match &err {
        Error::Unschedulable { message, after, .. } => {
            assert_eq!(
                message,
                "0/1 nodes are available: 1 Insufficient cpu.; the cluster autoscaler will not add a node: pod didn't trigger scale-up: 1 max node group size reached"
            );
            assert_eq!(*after, Duration::from_secs(1));
        }
        other => panic!("expected Unschedulable, got {other:?}"),
    }
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert!(!event_reads(&c.server).is_empty());
    c.server.faults().clear_unschedulable();
    c.finish().await;
}

/// `NotTriggerScaleUp` because no node group fits the pod: waiting cannot
/// help, so the call fails at once, long before its pending timeout.
async fn a_pod_no_node_group_fits_fails_at_once(mode: Mode) {
    let pending = Duration::from_secs(600);
    let Some(c) = Cluster::with(mode, |k| {
        k.pending_timeout(pending)
            .scale_up_timeout(Duration::from_secs(1200))
    })
    .await
    else {
        return;
    };
    c.server.faults().unschedulable(
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
    );
    c.server.faults().autoscaler(Autoscaler::NoScaleUpBecause(
        "1 node(s) didn't match Pod's node affinity/selector",
    ));
    let err = c.run(math::add(1, 1), &c.env()).await.unwrap_err();
    match &err {
        Error::Unschedulable { message, after, .. } => {
            assert_eq!(
                message,
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.; the cluster autoscaler will not add a node: pod didn't trigger scale-up: 1 node(s) didn't match Pod's node affinity/selector"
            );
            assert!(
                *after < pending,
                "failed before the pending timeout: {after:?}"
            );
        }
        other => panic!("expected Unschedulable, got {other:?}"),
    }
    assert!(!event_reads(&c.server).is_empty());
    c.server.faults().clear_unschedulable();
    c.finish().await;
}

async fn an_oom_kill_is_reported_as_such(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    c.server.faults().oom_kill_next();
    let err = c
        .run(
            containers::sleep(10_000),
            &c.env().with_limit("memory", "64Mi"),
        )
        .await
        .unwrap_err();
    match &err {
        Error::OutOfMemory { limit, .. } => assert_eq!(limit.as_deref(), Some("64Mi")),
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    c.finish().await;
}

async fn an_eviction_is_reported_as_such(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let submitter = c.submitter.clone();
    let env = c.env();
    let call = tokio::spawn(async move { submitter.run(containers::sleep(30_000), &env).await });
    c.running_pod().await;
    c.server.faults().evict_next();
    let result = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("bounded")
        .unwrap();
    match result {
        Err(Error::Evicted { message, .. }) => {
            assert!(message.contains("low on resource"), "{message}")
        }
        other => panic!("expected Evicted, got {other:?}"),
    }
    c.finish().await;
}

async fn a_pod_deleted_by_someone_else_is_reported_as_such(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let submitter = c.submitter.clone();
    let env = c.env();
    let call = tokio::spawn(async move { submitter.run(containers::sleep(30_000), &env).await });
    let name = c.running_pod().await;
    assert!(c.server.delete_pod_as_someone_else(&name));
    let result = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("bounded")
        .unwrap();
    assert!(
        matches!(result, Err(Error::DeletedExternally { ref execution_id, .. }) if *execution_id == name),
        "{result:?}"
    );
    c.finish().await;
}

/// The pods of the test double created so far, by name.
fn pods_created(c: &Cluster) -> usize {
    c.server
        .request_log()
        .iter()
        .filter(|(method, path)| {
            method == "POST" && path.split('?').next().is_some_and(|p| p.ends_with("/pods"))
        })
        .count()
}

async fn a_preempted_node_is_reported_as_such(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let submitter = c.submitter.clone();
    let env = c.env();
    let call = tokio::spawn(async move { submitter.run(containers::sleep(30_000), &env).await });
    c.running_pod().await;
    c.server.faults().preempt_next();
    let result = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("bounded")
        .unwrap();
    match result {
        Err(err @ Error::Preempted { .. }) => {
            let Error::Preempted {
                reason, message, ..
            } = &err
            else {
                unreachable!()
            };
            assert_eq!(reason, "Terminated");
            assert!(message.contains("imminent node shutdown"), "{message}");
            assert_eq!(err.kind(), hype::ErrorKind::Lost);
            assert!(err.to_string().contains("with_retries"), "{err}");
        }
        other => panic!("expected Preempted, got {other:?}"),
    }
    c.finish().await;
}

/// With retries, a call whose pod lost its node (failed as GKE reports a
/// reclaimed spot VM) or vanished (deleted, as the pod garbage collector
/// does for a lost node) runs again in a new pod and succeeds.
async fn a_preempted_or_vanished_pod_is_run_again_with_retries(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let env = c
        .env()
        .with_retries(2)
        .with_retry_backoff(Duration::from_millis(50));
    for vanish in [false, true] {
        c.server.clear_request_log();
        let submitter = c.submitter.clone();
        let env = env.clone();
        let call = tokio::spawn(async move { submitter.run(containers::sleep(1_500), &env).await });
        let first = c.running_pod().await;
        if vanish {
            assert!(c.server.delete_pod_as_someone_else(&first));
        } else {
            c.server.faults().preempt_next();
        }
        let result = tokio::time::timeout(Duration::from_secs(60), call)
            .await
            .expect("bounded")
            .unwrap();
        assert_eq!(result.unwrap(), 1_500, "vanish: {vanish}");
        assert_eq!(
            pods_created(&c),
            2,
            "one pod per attempt (vanish: {vanish})"
        );
    }
    c.finish().await;
}

async fn retries_that_run_out_list_every_attempt(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let env = c
        .env()
        .with_retries(1)
        .with_retry_backoff(Duration::from_millis(50));
    let submitter = c.submitter.clone();
    let call = tokio::spawn(async move { submitter.run(containers::sleep(30_000), &env).await });
    let first = c.running_pod().await;
    c.server.faults().preempt_next();
    // The second attempt's pod: another name.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let second = loop {
        let running = c.server.pods().into_iter().find(|p| {
            p.metadata.name.as_deref() != Some(first.as_str())
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        });
        if let Some(pod) = running {
            break pod.metadata.name.unwrap_or_default();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no second attempt ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    c.server.faults().preempt_next();
    let result = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("bounded")
        .unwrap();
    let Err(Error::RetriesExhausted { attempts, .. }) = &result else {
        panic!("expected RetriesExhausted, got {result:?}");
    };
    let ids: Vec<&str> = attempts.iter().map(|a| a.execution_id.as_str()).collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    for attempt in attempts {
        assert!(
            matches!(attempt.error, Error::Preempted { .. }),
            "{attempt:?}"
        );
        assert!(attempt.took > Duration::ZERO);
    }
    c.finish().await;
}

async fn an_oom_kill_is_not_retried(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    c.server.clear_request_log();
    c.server.faults().oom_kill_next();
    let env = c
        .env()
        .with_retries(3)
        .with_retry_backoff(Duration::from_millis(10));
    let err = c.run(containers::sleep(10), &env).await.unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err:?}");
    assert_eq!(pods_created(&c), 1, "not retried");
    c.finish().await;
}

async fn the_deadline_stops_the_pod(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let env = c.env().with_timeout(Duration::from_secs(2));
    let err = c.run(containers::sleep(30_000), &env).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    c.finish().await;
}

async fn dropping_the_call_deletes_its_pod(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let env = c.env();
    let call = c.submitter.run(containers::sleep(30_000), &env);
    tokio::select! {
        result = call => panic!("the call ended: {result:?}"),
        _ = c.running_pod() => {}
    }
    // The call's future is dropped: its pod goes, without waiting for close.
    let gone = async {
        while !c.server.pods().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), gone)
        .await
        .expect("the pod is deleted");
    c.finish().await;
}

async fn transient_api_errors_are_retried_and_bounded(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    c.server.faults().fail_next_creates(2, 429);
    assert_eq!(c.run(math::add(1, 2), &c.env()).await.unwrap(), 3);
    c.server.faults().fail_next_creates(2, 503);
    assert_eq!(c.run(math::add(2, 2), &c.env()).await.unwrap(), 4);
    c.server.faults().fail_next_creates(100, 500);
    let err = c.run(math::add(3, 3), &c.env()).await.unwrap_err();
    assert!(matches!(err, Error::Cluster { .. }), "{err:?}");
    assert!(err.to_string().contains("create pod"), "{err}");
    c.server.faults().clear();
    c.finish().await;
}

async fn a_dropped_watch_is_resumed(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let submitter = c.submitter.clone();
    let env = c.env();
    let call = tokio::spawn(async move { submitter.run(containers::sleep(1500), &env).await });
    c.running_pod().await;
    let before = c.server.watch_connections();
    c.server.faults().drop_watches();
    let result = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("bounded")
        .unwrap();
    assert_eq!(result.unwrap(), 1500);
    assert!(
        c.server.watch_connections() > before,
        "the watch reconnected"
    );
    c.finish().await;
}

async fn many_calls_share_one_watch(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let env = c.env();
    let calls = (0..20).map(|i| c.run(math::add(i, i), &env));
    let sums = futures::future::try_join_all(calls).await.unwrap();
    assert_eq!(sums, (0..20).map(|i| 2 * i).collect::<Vec<_>>());
    assert_eq!(
        c.server.watch_connections(),
        1,
        "one shared watch for every call"
    );
    let creates = c
        .server
        .request_log()
        .iter()
        .filter(|(m, p)| m == "POST" && p.contains("/pods"))
        .count();
    assert_eq!(creates, 20, "one create per call, no retries");
    c.finish().await;
}

async fn a_base_pod_from_yaml_is_honoured(mode: Mode) {
    let Some(c) = Cluster::new(mode).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pod.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: hype-run\n      args: [\"replaced\"]\n      env:\n        - name: FROM_BASE\n          value: base\n",
    )
    .unwrap();
    let env = RunEnvironment::from_yaml(&path).unwrap().with_image(IMAGE);
    assert_eq!(
        c.run(process::env_var("FROM_BASE".into()), &env)
            .await
            .unwrap()
            .as_deref(),
        Some("base")
    );

    std::fs::write(
        &path,
        "spec:\n  containers:\n    - name: main\n      image: x\n",
    )
    .unwrap();
    let bad = RunEnvironment::from_yaml(&path).unwrap().with_image(IMAGE);
    let err = c.run(math::add(1, 1), &bad).await.unwrap_err();
    assert!(
        err.to_string().contains("container named `hype-run`"),
        "{err}"
    );
    c.finish().await;
}

async fn keep_pods_leaves_finished_pods_for_debugging(mode: Mode) {
    let Some(c) = Cluster::with(mode, |k| k.keep_pods(true)).await else {
        return;
    };
    assert_eq!(c.run(math::add(1, 1), &c.env()).await.unwrap(), 2);
    let pods = c.server.pods();
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
    // The submitter and its runner share one session: the pod carries the
    // session the submitter reports.
    assert_eq!(
        pod.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("hype.dev/session"))
            .map(String::as_str),
        Some(c.submitter.session())
    );
    // What a debugging user would do: delete it by label.
    let name = pod.metadata.name.clone().unwrap();
    assert!(c.server.delete_pod_as_someone_else(&name));
    c.finish().await;
}

/// A Kubernetes submitter built without a staging store is refused with
/// the reason, instead of staging where its pods cannot read.
#[tokio::test]
async fn a_submitter_without_staging_is_refused_for_kubernetes() {
    let server = KubeTestServer::start(common::backend::worker_processes());
    let err = Submitter::builder(KubeCluster::from_client(server.client()))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("temporary files"), "{text}");
    assert!(text.contains(".staging("), "{text}");
}

/// What only real containers can show.
mod docker_only {
    use super::*;

    /// A real memory limit: the kernel's OOM killer kills the container,
    /// the engine reports `State.OOMKilled`, the kubelet `OOMKilled` with
    /// exit code 137, and the runner [`Error::OutOfMemory`].
    #[tokio::test]
    async fn a_real_memory_limit_gets_the_pod_oom_killed() {
        let Some(c) = Cluster::with(
            Mode::Docker("docker_only::a_real_memory_limit_gets_the_pod_oom_killed"),
            |k| k.keep_pods(true),
        )
        .await
        else {
            return;
        };
        let env = c.env().with_limit("memory", "32Mi");
        let err = c.run(containers::allocate(512), &env).await.unwrap_err();
        match &err {
            Error::OutOfMemory {
                function, limit, ..
            } => {
                assert_eq!(function, "hype_tests::containers::allocate");
                assert_eq!(limit.as_deref(), Some("32Mi"));
            }
            other => panic!("expected OutOfMemory, got {other:?}"),
        }
        // Within its limit the same function is fine.
        assert_eq!(c.run(containers::allocate(4), &env).await.unwrap(), 4 * 256);

        // The kept pods show what the kubelet saw.
        let mut pods = c.server.pods();
        pods.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
        assert_eq!(pods.len(), 2);
        let terminated = |i: usize| {
            let status = pods[i].status.clone().unwrap();
            let container = status.container_statuses.unwrap().remove(0);
            (
                status.phase.unwrap(),
                container.container_id.unwrap_or_default(),
                container.state.unwrap().terminated.unwrap(),
            )
        };
        let (phase, id, oom) = terminated(0);
        assert_eq!(phase, "Failed");
        assert!(id.starts_with("docker://"), "{id}");
        assert_eq!(oom.reason.as_deref(), Some("OOMKilled"));
        assert_eq!(oom.exit_code, 137);
        let (phase, _, fine) = terminated(1);
        assert_eq!(phase, "Succeeded");
        assert_eq!(fine.reason.as_deref(), Some("Completed"));
        for pod in &pods {
            assert!(
                c.server
                    .delete_pod_as_someone_else(pod.metadata.name.as_deref().unwrap())
            );
        }
        c.finish().await;
    }
}
