//! The Docker runner on the real engine: calls run in containers of a test
//! image built here without pulling (see `hype_tests::docker_image`), and
//! every test checks that nothing of its session (container or transient
//! volume) is left once its submitter closes.
//!
//! Without an engine these tests skip with a loud message, unless
//! `HYPE_REQUIRE_DOCKER=1` (as `.ci/run` sets), which makes them fail.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum, Volume};
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, ListVolumesOptions, RemoveContainerOptions,
};
use hype::{ByteBuf, Error, RunEnvironment, Secret, Submitter, VolumeRequest};
use hype_tests::backends::DockerCluster;
use hype_tests::docker_image;
use hype_tests::{bytes, containers, failures, files, math, process};

/// A submitter on the engine with its own staging and secrets directories,
/// the test image, and a client for looking at what the runner created.
struct DockerSetup {
    dir: tempfile::TempDir,
    submitter: Submitter,
    docker: Docker,
    image: String,
}

fn worker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hype-test-worker"))
}

/// The setup, or `None` (after a loud message) when no engine answers.
async fn setup(what: &str) -> Option<DockerSetup> {
    setup_with(what, |cluster| cluster).await
}

async fn setup_with(
    what: &str,
    configure: impl FnOnce(DockerCluster) -> DockerCluster,
) -> Option<DockerSetup> {
    let docker = docker_image::engine_or_skip(what).await?;
    let image = docker_image::worker_image(&docker, &worker())
        .await
        .expect("build the test image");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    let cluster = configure(DockerCluster::new().secrets_dir(dir.path().join("secrets")));
    let staging = format!("file://{}", dir.path().join("staging").display());
    // The worker is also the image's hype-run, so shipping it (a bind
    // mount, the default) and the baked image give the same program; the
    // shipping tests below use images without it.
    let submitter = Submitter::builder(cluster)
        .staging(staging)
        .executable(worker())
        .build()
        .await
        .expect("submitter");
    Some(DockerSetup {
        dir,
        submitter,
        docker,
        image,
    })
}

fn session_filter(session: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        vec![
            "app.kubernetes.io/managed-by=hype".to_owned(),
            format!("hype.dev/session={session}"),
        ],
    )])
}

impl DockerSetup {
    fn env(&self) -> RunEnvironment {
        RunEnvironment::new(&self.image)
    }

    /// The containers of this session, running or not.
    async fn containers(&self) -> Vec<ContainerSummary> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(session_filter(self.submitter.session())),
            ..Default::default()
        };
        self.docker
            .list_containers(Some(options))
            .await
            .expect("list containers")
    }

    /// The volumes labelled with this session (transient ones).
    async fn volumes(&self) -> Vec<Volume> {
        let options = ListVolumesOptions {
            filters: Some(session_filter(self.submitter.session())),
        };
        self.docker
            .list_volumes(Some(options))
            .await
            .expect("list volumes")
            .volumes
            .unwrap_or_default()
    }

    /// Closes the submitter and checks that nothing of its session is left.
    async fn close_and_check_clean(self) {
        self.submitter.close().await.expect("close");
        let containers = self.containers().await;
        assert!(
            containers.is_empty(),
            "containers left: {:?}",
            containers.iter().map(|c| &c.names).collect::<Vec<_>>()
        );
        let volumes = self.volumes().await;
        assert!(
            volumes.is_empty(),
            "volumes left: {:?}",
            volumes.iter().map(|v| &v.name).collect::<Vec<_>>()
        );
    }
}

/// Polls `check` until it holds or `bound` passes.
async fn eventually<F: Future<Output = bool>>(
    bound: Duration,
    mut check: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn calls_run_in_containers_with_the_environment() {
    let Some(s) = setup("calls_run_in_containers_with_the_environment").await else {
        return;
    };
    let env = s
        .env()
        .with_env("GREETING", "hej")
        .with_env("HYPE_EXECUTION_ID", "spoofed");
    assert_eq!(s.submitter.run(math::add(2, 40), &env).await.unwrap(), 42);
    assert_eq!(
        s.submitter.run(math::add_later(2, 5), &env).await.unwrap(),
        7
    );
    let greeting = s
        .submitter
        .run(process::env_var("GREETING".into()), &env)
        .await
        .unwrap();
    assert_eq!(greeting.as_deref(), Some("hej"));
    let execution_id = s
        .submitter
        .run(process::env_var("HYPE_EXECUTION_ID".into()), &env)
        .await
        .unwrap()
        .expect("HYPE_EXECUTION_ID is set");
    assert!(
        execution_id.starts_with("hype-env-var-"),
        "hype's execution ID (the container's name) wins: {execution_id}"
    );
    let hostname = s
        .submitter
        .run(process::env_var("HOSTNAME".into()), &env)
        .await
        .unwrap()
        .expect("HOSTNAME is set");
    assert!(hostname.starts_with("hype-env-var-"), "{hostname}");
    let pid = s.submitter.run(process::pid(), &env).await.unwrap();
    assert_eq!(pid, 1, "hype-run is the container's first process");
    s.close_and_check_clean().await;
}

/// The uid, gid and effective capabilities in `/proc/self/status`.
fn identity(status: &str) -> (String, String, String) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| {
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    (field("Uid:"), field("Gid:"), field("CapEff:"))
}

/// By default a call runs as 65532:65532 without capabilities or new
/// privileges, on a read-only root with a writable `/tmp`; the
/// environment relaxes that on purpose.
#[tokio::test]
async fn calls_run_as_65532_on_a_read_only_root_without_privileges() {
    let Some(s) = setup("calls_run_as_65532_on_a_read_only_root_without_privileges").await else {
        return;
    };
    let status = |env: RunEnvironment| {
        let submitter = &s.submitter;
        async move {
            submitter
                .run(files::read("/proc/self/status".into()), &env)
                .await
                .unwrap()
                .expect("/proc/self/status is readable")
        }
    };
    let text = status(s.env()).await;
    assert_eq!(
        identity(&text),
        ("65532".into(), "65532".into(), "0000000000000000".into()),
        "{text}"
    );
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    let root = s
        .submitter
        .run(files::write("/written".into(), "x".into()), &s.env())
        .await
        .unwrap();
    assert!(
        root.as_ref()
            .is_err_and(|e| e.contains("Read-only file system")),
        "{root:?}"
    );
    s.submitter
        .run(files::write("/tmp/written".into(), "x".into()), &s.env())
        .await
        .unwrap()
        .expect("/tmp is writable");

    let relaxed = s.env().with_run_as_user(1000).with_read_only_root(false);
    let text = status(relaxed.clone()).await;
    assert_eq!(identity(&text).0, "1000", "{text}");
    let written = s
        .submitter
        .run(files::write("/written".into(), "x".into()), &relaxed)
        .await
        .unwrap();
    // Writable root, but / is root's: refused by permissions, not EROFS.
    assert!(
        written
            .as_ref()
            .is_err_and(|e| e.contains("Permission denied")),
        "{written:?}"
    );
    s.close_and_check_clean().await;
}

/// The Kubernetes-only options of an environment (GPUs, Spot, node
/// selectors, tolerations, priority class, service account, labels,
/// annotations) are ignored here, not refused.
#[tokio::test]
async fn kubernetes_only_options_are_ignored() {
    let Some(s) = setup("kubernetes_only_options_are_ignored").await else {
        return;
    };
    let env = s
        .env()
        .with_gpu(hype::Gpu::nvidia(1).model("nvidia-l4"))
        .with_spot(true)
        .with_node_selector("pool", "batch")
        .with_toleration(hype::Toleration::exists(
            "dedicated",
            hype::TaintEffect::NoSchedule,
        ))
        .with_priority_class("batch-low")
        .with_service_account("reader")
        .with_service_account_token(false)
        .with_labels([("team", "data")])
        .with_annotations([("note", "free text")]);
    assert_eq!(s.submitter.run(math::add(2, 40), &env).await.unwrap(), 42);
    s.close_and_check_clean().await;
}

#[tokio::test]
async fn a_secret_is_readable_and_not_writable() {
    let Some(s) = setup("a_secret_is_readable_and_not_writable").await else {
        return;
    };
    let secret_dir = s.dir.path().join("secrets/gcp-key");
    std::fs::create_dir(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("key.json"), "{\"key\": 1}").unwrap();
    let env = s.env().with_secret(Secret::new("gcp-key", "/etc/gcloud"));
    let (read, written) = s
        .submitter
        .run(
            containers::read_and_try_write(
                "/etc/gcloud/key.json".into(),
                "/etc/gcloud/key.json".into(),
            ),
            &env,
        )
        .await
        .unwrap();
    assert_eq!(read.as_deref(), Ok("{\"key\": 1}"));
    let refused = written.expect_err("a secret must not be writable");
    assert!(refused.contains("Read-only file system"), "{refused}");
    assert_eq!(
        std::fs::read_to_string(secret_dir.join("key.json")).unwrap(),
        "{\"key\": 1}"
    );

    let missing = s.env().with_secret(Secret::new("nope", "/etc/nope"));
    let err = s
        .submitter
        .run(math::add(1, 1), &missing)
        .await
        .unwrap_err();
    let Error::InvalidEnvironment { problems, .. } = &err else {
        panic!("expected InvalidEnvironment, got {err:?}");
    };
    assert!(problems[0].contains("secret nope"), "{err}");
    s.close_and_check_clean().await;
}

#[tokio::test]
async fn one_writer_then_ten_parallel_readers_share_a_volume() {
    let Some(s) = setup("one_writer_then_ten_parallel_readers_share_a_volume").await else {
        return;
    };
    let volume = VolumeRequest::new("standard", "1Gi");
    let writer = s.env().with_mount(volume.mount_read_write("/data"));
    s.submitter
        .run(
            hype_tests::files::write("/data/word".into(), "hype".into()),
            &writer,
        )
        .await
        .unwrap()
        .expect("the writer writes");
    let reader = s.env().with_mount(volume.mount_read_only("/data"));
    let reads = futures::future::try_join_all((0..10).map(|i| {
        s.submitter.run(
            containers::read_and_try_write("/data/word".into(), format!("/data/reader-{i}")),
            &reader,
        )
    }))
    .await
    .unwrap();
    assert_eq!(reads.len(), 10);
    for (read, written) in reads {
        assert_eq!(read.as_deref(), Ok("hype"));
        let refused = written.expect_err("a read-only mount must refuse writes");
        assert!(refused.contains("Read-only file system"), "{refused}");
    }
    let volumes = s.volumes().await;
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(volumes[0].name, volume.name());
    assert_eq!(volumes[0].labels["hype.dev/lifetime"], "transient");
    s.close_and_check_clean().await;
}

#[tokio::test]
async fn a_call_over_its_memory_limit_is_reported_out_of_memory() {
    let Some(s) = setup("a_call_over_its_memory_limit_is_reported_out_of_memory").await else {
        return;
    };
    let env = s.env().with_limit("memory", "32Mi");
    let err = s
        .submitter
        .run(containers::allocate(512), &env)
        .await
        .unwrap_err();
    match &err {
        Error::OutOfMemory {
            function,
            execution_id,
            limit,
            ..
        } => {
            assert_eq!(function, "hype_tests::containers::allocate");
            assert!(execution_id.starts_with("hype-allocate-"), "{execution_id}");
            assert_eq!(limit.as_deref(), Some("32Mi"));
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    assert!(err.to_string().contains("32Mi"), "{err}");
    // Within its limit the same function is fine.
    let pages = s
        .submitter
        .run(containers::allocate(4), &env)
        .await
        .unwrap();
    assert_eq!(pages, 4 * 256);
    s.close_and_check_clean().await;
}

#[tokio::test]
async fn a_missing_image_is_reported_unavailable() {
    let Some(s) = setup_with("a_missing_image_is_reported_unavailable", |c| {
        c.pull_timeout(Duration::from_secs(60))
    })
    .await
    else {
        return;
    };
    let image = format!("hype-missing-image-{}:1", std::process::id());
    let err = s
        .submitter
        .run(math::add(1, 2), &RunEnvironment::new(&image))
        .await
        .unwrap_err();
    match &err {
        Error::ImageUnavailable {
            image: reported,
            reason,
            ..
        } => {
            assert_eq!(reported, &image);
            assert_eq!(reason, "NotFound");
        }
        other => panic!("expected ImageUnavailable, got {other:?}"),
    }
    assert!(err.to_string().contains(&image), "{err}");

    let err = s
        .submitter
        .run(math::add(1, 2), &RunEnvironment::local())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidEnvironment { problems, .. } if problems[0].contains("RunEnvironment::new")),
        "{err:?}"
    );
    s.close_and_check_clean().await;
}

#[tokio::test]
async fn dropping_the_call_removes_its_container() {
    let Some(s) = setup("dropping_the_call_removes_its_container").await else {
        return;
    };
    let call = tokio::spawn({
        let submitter = s.submitter.clone();
        let env = s.env();
        async move { submitter.run(containers::sleep(120_000), &env).await }
    });
    let running = eventually(Duration::from_secs(60), || async {
        let containers = s.containers().await;
        containers.len() == 1 && containers[0].state == Some(ContainerSummaryStateEnum::RUNNING)
    })
    .await;
    assert!(
        running,
        "the call's container never ran: {:?}",
        s.containers().await
    );
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    let gone = eventually(Duration::from_secs(30), || async {
        s.containers().await.is_empty()
    })
    .await;
    assert!(
        gone,
        "the container outlived its call: {:?}",
        s.containers().await
    );
    s.close_and_check_clean().await;
}

#[tokio::test]
async fn a_timeout_stops_and_removes_the_container() {
    let Some(s) = setup("a_timeout_stops_and_removes_the_container").await else {
        return;
    };
    let env = s.env().with_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let err = s
        .submitter
        .run(containers::sleep(120_000), &env)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { after, .. } if *after == Duration::from_secs(2)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let left = s.containers().await;
    assert!(
        left.is_empty(),
        "removed before the error is returned: {left:?}"
    );
    s.close_and_check_clean().await;
}

#[tokio::test]
async fn large_arguments_and_results_travel_through_the_mounted_staging() {
    let Some(s) = setup("large_arguments_and_results_travel_through_the_mounted_staging").await
    else {
        return;
    };
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let reversed = s
        .submitter
        .run(bytes::reverse(ByteBuf::from(data.clone())), &s.env())
        .await
        .unwrap();
    let mut expected = data;
    expected.reverse();
    assert_eq!(reversed.into_vec(), expected);
    let blobs = std::fs::read_dir(s.dir.path().join("staging/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 2, "the argument and the result were staged");
    let outcomes = std::fs::read_dir(s.dir.path().join("staging/outcomes"))
        .unwrap()
        .count();
    assert_eq!(outcomes, 0, "outcome objects are deleted once read");
    let made = s
        .submitter
        .run(bytes::make(1 << 20, 7), &s.env())
        .await
        .unwrap();
    assert_eq!(made.len(), 1 << 20);
    assert_eq!(made[1000], 7u8.wrapping_add(1000u32 as u8));
    s.close_and_check_clean().await;
}

#[tokio::test]
async fn a_panic_and_an_abrupt_exit_come_back_as_errors() {
    let Some(s) = setup("a_panic_and_an_abrupt_exit_come_back_as_errors").await else {
        return;
    };
    let err = s
        .submitter
        .run(
            failures::explode("the flux capacitor broke".into()),
            &s.env(),
        )
        .await
        .unwrap_err();
    match &err {
        Error::RemotePanic {
            message,
            location,
            execution_id,
            ..
        } => {
            assert_eq!(message, "the flux capacitor broke");
            let location = location.as_deref().expect("location");
            assert!(location.starts_with("tests/src/lib.rs:"), "{location}");
            assert!(execution_id.starts_with("hype-explode-"), "{execution_id}");
        }
        other => panic!("expected RemotePanic, got {other:?}"),
    }
    let err = s
        .submitter
        .run(process::exit_abruptly(3), &s.env())
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
    s.close_and_check_clean().await;
}

#[tokio::test]
async fn kept_containers_show_labels_and_limits() {
    let Some(s) = setup_with("kept_containers_show_labels_and_limits", |c| {
        c.keep_containers(true)
    })
    .await
    else {
        return;
    };
    let env = s
        .env()
        .with_limit("cpu", "500m")
        .with_request("memory", "64Mi");
    assert_eq!(s.submitter.run(math::add(1, 2), &env).await.unwrap(), 3);
    let kept = s.containers().await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let id = kept[0].id.clone().unwrap();
    let inspected = s
        .docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let host = inspected.host_config.unwrap();
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    let labels = inspected.config.unwrap().labels.unwrap();
    assert_eq!(labels["hype.dev/function"], "add");
    assert_eq!(labels["hype.dev/function-id"], "hype_tests::math::add");
    let name = inspected.name.unwrap();
    assert_eq!(
        format!("/{}", labels["hype.dev/execution-id"]),
        name,
        "the container is named by its execution ID"
    );
    let state = inspected.state.unwrap();
    assert_eq!(state.exit_code, Some(0));
    s.submitter.close().await.unwrap();
    assert_eq!(s.containers().await.len(), 1, "close keeps kept containers");
    s.docker
        .remove_container(
            &id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    s.close_and_check_clean().await;
}

#[tokio::test]
async fn closing_the_submitter_cancels_calls_and_removes_everything() {
    let Some(s) = setup("closing_the_submitter_cancels_calls_and_removes_everything").await else {
        return;
    };
    let volume = VolumeRequest::new("standard", "1Gi");
    let env = s.env().with_mount(volume.mount_read_write("/data"));
    let calls = futures::future::join_all(
        (0..3).map(|_| s.submitter.run(containers::sleep(120_000), &env)),
    );
    let closing = async {
        let running = eventually(Duration::from_secs(60), || async {
            s.containers()
                .await
                .iter()
                .filter(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING))
                .count()
                == 3
        })
        .await;
        assert!(running, "{:?}", s.containers().await);
        s.submitter.close().await.expect("close");
    };
    let (results, ()) = tokio::join!(calls, closing);
    for result in results {
        assert!(matches!(result, Err(Error::Cancelled { .. })), "{result:?}");
    }
    assert!(s.containers().await.is_empty());
    assert!(s.volumes().await.is_empty());
    s.close_and_check_clean().await;
}

/// `HYPE_CLUSTER=docker` alone (no `HYPE_STAGING`) gives a Docker submitter
/// with temporary staging. Environment variables are process-wide, so the
/// check runs in a child process: this test binary, filtered to this test,
/// which then takes the child's branch.
#[tokio::test]
async fn hype_cluster_docker_selects_the_docker_runner() {
    const NAME: &str = "hype_cluster_docker_selects_the_docker_runner";
    if let Ok(image) = std::env::var("HYPE_DOCKER_TEST_CHILD_IMAGE") {
        let submitter = Submitter::from_env().await.expect("from_env");
        let n = submitter
            .run(math::add(20, 22), &RunEnvironment::new(image))
            .await
            .unwrap();
        assert_eq!(n, 42);
        submitter.close().await.unwrap();
        return;
    }
    let Some(s) = setup(NAME).await else {
        return;
    };
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--test-threads", "1"])
        .env("HYPE_DOCKER_TEST_CHILD_IMAGE", &s.image)
        .env("HYPE_CLUSTER", "docker")
        // A test harness cannot run calls: ship the worker instead.
        .env("HYPE_EXECUTABLE", worker())
        .env_remove("HYPE_STAGING")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    s.close_and_check_clean().await;
}

/// A container removed from under its call (as an engine restart or a
/// `docker rm -f` does) is an execution lost: with retries the call runs
/// again in a new container and succeeds.
#[tokio::test]
async fn a_vanished_container_is_run_again_with_retries() {
    let Some(s) = setup("a_vanished_container_is_run_again_with_retries").await else {
        return;
    };
    let env = s
        .env()
        .with_retries(1)
        .with_retry_backoff(Duration::from_millis(50));
    let call = tokio::spawn({
        let submitter = s.submitter.clone();
        async move { submitter.run(containers::sleep(3_000), &env).await }
    });
    let running = eventually(Duration::from_secs(60), || async {
        let containers = s.containers().await;
        containers.len() == 1 && containers[0].state == Some(ContainerSummaryStateEnum::RUNNING)
    })
    .await;
    assert!(running, "the call's container never ran");
    let first = s.containers().await[0].id.clone().expect("an ID");
    s.docker
        .remove_container(
            &first,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .expect("remove the container from under its call");
    let result = tokio::time::timeout(Duration::from_secs(90), call)
        .await
        .expect("bounded")
        .unwrap();
    assert_eq!(result.unwrap(), 3_000, "the second attempt ran to its end");
    s.close_and_check_clean().await;
}
