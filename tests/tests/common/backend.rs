//! Setups of one submitter on each backend, for tests that run the same
//! checks everywhere: the local runner, the Kubernetes test double with
//! pods as processes and as Docker containers, and the Docker runner; and
//! the check that nothing of a session is left.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use hype::{RunEnvironment, Submitter};
use hype_tests::backends::{DockerCluster, KubeCluster};
use hype_tests::kube_double::{DockerExecutor, Executor, KubeTestServer, KubeletOptions};
use hype_tests::{IMAGE, docker_image};

/// Kubelet options for the Kubernetes test double with the worker as image
/// [`IMAGE`], each pod's container a process of the worker.
pub fn worker_processes() -> KubeletOptions {
    KubeletOptions::new().image(IMAGE, super::worker())
}

/// Kubelet options for the Kubernetes test double with the worker as image
/// [`IMAGE`]: each pod's container a process of the worker, or with
/// `docker` (the test's name, for the message when it skips) a Docker
/// container of the test image built from the worker. `None` (after a loud
/// message) in Docker mode when no engine answers and
/// `HYPE_REQUIRE_DOCKER` is not `1`.
pub async fn worker_pods(docker: Option<&str>) -> Option<KubeletOptions> {
    image_pods(IMAGE, super::worker(), docker).await
}

/// As [`worker_pods`], for image `image` holding `program` as `hype-run`.
pub async fn image_pods(
    image: &str,
    program: PathBuf,
    docker: Option<&str>,
) -> Option<KubeletOptions> {
    let Some(test) = docker else {
        return Some(KubeletOptions::new().image(image, program));
    };
    docker_image::engine_or_skip(test).await?;
    let executor = DockerExecutor::connect()
        .await
        .expect("the engine answered a moment ago");
    let local = docker_image::worker_image(executor.docker(), &program)
        .await
        .expect("build the test image");
    Some(
        KubeletOptions::new()
            .executor(Executor::Docker(executor))
            .docker_image(image, local),
    )
}

/// A submitter on `cluster` (a `KubeCluster` reaching `server`, directly or
/// through a proxy), staging in the double's staging directory. It ships
/// nothing: [`IMAGE`] has the worker baked in (shipping is tested in
/// `shipping.rs`). Connecting is bounded, so a hang fails the test instead
/// of CI.
pub async fn kube_submitter(server: &KubeTestServer, cluster: KubeCluster) -> Submitter {
    let staging = format!("file://{}", server.staging_dir().display());
    let connecting = Submitter::builder(cluster)
        .staging(staging)
        .ship_executable(false)
        .build();
    tokio::time::timeout(Duration::from_secs(30), connecting)
        .await
        .expect("connect within 30 s")
        .expect("connect")
}

/// Where the calls run.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Local,
    KubeProcesses,
    KubeContainers,
    Docker,
}

/// A submitter on one backend, and what is needed to check that nothing
/// of it is left.
pub struct Setup {
    pub backend: Backend,
    pub submitter: Submitter,
    pub env: RunEnvironment,
    /// Where the calls write their process IDs (local and pod processes).
    pub pids: Option<PathBuf>,
    pub server: Option<KubeTestServer>,
    pub docker: Option<Docker>,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// The backend, or `None` (after a loud message) for a Docker one when
    /// no engine answers and `HYPE_REQUIRE_DOCKER` is not `1`.
    pub async fn new(backend: Backend, test: &str) -> Option<Setup> {
        let dir = tempfile::tempdir().expect("temp dir");
        let staging = format!("file://{}", dir.path().join("staging").display());
        let pids = dir.path().join("pids");
        std::fs::create_dir(&pids).unwrap();
        let (submitter, env, server, docker, pids) = match backend {
            Backend::Local => {
                let cluster = hype::LocalCluster::new().program(super::worker());
                let submitter = Submitter::new(staging, cluster).await.expect("submitter");
                (submitter, RunEnvironment::local(), None, None, Some(pids))
            }
            Backend::KubeProcesses | Backend::KubeContainers => {
                let docker = matches!(backend, Backend::KubeContainers).then_some(test);
                let server = KubeTestServer::start(worker_pods(docker).await?);
                let cluster = KubeCluster::from_client(server.client());
                let submitter = kube_submitter(&server, cluster).await;
                let pids = matches!(backend, Backend::KubeProcesses).then_some(pids);
                (
                    submitter,
                    RunEnvironment::new(IMAGE),
                    Some(server),
                    None,
                    pids,
                )
            }
            Backend::Docker => {
                let docker = docker_image::engine_or_skip(test).await?;
                let image = docker_image::worker_image(&docker, &super::worker())
                    .await
                    .expect("build the test image");
                let submitter = Submitter::builder(DockerCluster::new())
                    .staging(staging)
                    .executable(super::worker())
                    .build()
                    .await
                    .expect("submitter");
                (
                    submitter,
                    RunEnvironment::new(&image),
                    None,
                    Some(docker),
                    None,
                )
            }
        };
        Some(Setup {
            backend,
            submitter,
            env,
            pids,
            server,
            docker,
            _dir: dir,
        })
    }

    /// The executions of this session still there: processes, pods or
    /// containers.
    pub async fn executions_left(&self) -> Vec<String> {
        let mut left = Vec::new();
        if let Some(pids) = &self.pids {
            for entry in std::fs::read_dir(pids).unwrap().flatten() {
                let pid: u32 = entry.file_name().to_string_lossy().parse().unwrap();
                if hype_tests::process_alive(pid) {
                    left.push(format!("process {pid}"));
                }
            }
        }
        if let Some(server) = &self.server {
            let session = self.submitter.session();
            for pod in server.pods() {
                let labels = pod.metadata.labels.unwrap_or_default();
                if labels.get("hype.dev/session").map(String::as_str) == Some(session) {
                    left.push(format!("pod {}", pod.metadata.name.unwrap_or_default()));
                }
            }
            for container in server.pod_containers().await {
                left.push(format!("pod container {container:?}"));
            }
        }
        if let Some(docker) = &self.docker {
            let options = ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(
                    "label".to_owned(),
                    vec![format!("hype.dev/session={}", self.submitter.session())],
                )])),
                ..Default::default()
            };
            for container in docker.list_containers(Some(options)).await.unwrap() {
                left.push(format!("container {:?}", container.names));
            }
        }
        left
    }

    /// Waits (bounded) until no execution of this session is left.
    pub async fn assert_nothing_left(&self, bound: Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        let mut left = self.executions_left().await;
        while !left.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            left = self.executions_left().await;
        }
        assert!(
            left.is_empty(),
            "{:?}: left after {bound:?}: {left:?}",
            self.backend
        );
    }

    pub async fn finish(self) {
        self.submitter.close().await.expect("close");
        self.assert_nothing_left(Duration::from_secs(20)).await;
        if let Some(server) = self.server {
            server.shutdown().await;
        }
    }
}

/// Generates, for each test function `name(backend)`, one test per
/// backend: `local::name`, `kube_processes::name`, `kube_containers::name`
/// and `docker::name`.
#[macro_export]
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod local { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::common::backend::Backend::Local).await; }
        )* }
        mod kube_processes { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::common::backend::Backend::KubeProcesses).await; }
        )* }
        mod kube_containers { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::common::backend::Backend::KubeContainers).await; }
        )* }
        mod docker { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::common::backend::Backend::Docker).await; }
        )* }
    };
}
