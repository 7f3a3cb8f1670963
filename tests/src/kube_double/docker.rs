//! The Docker executor: each container of a pod is a real Docker container
//! of its image, created, watched and removed through the engine's API.
//!
//! The kubelet resolves and prepares everything as for the other executors
//! (volumes, secrets, environment) and gives this module a
//! [`DockerLaunch`]; this module talks to the engine. Every engine call is
//! bounded ([`ENGINE_CALL_BOUND`]); the one that is not by nature, the
//! wait for a container's exit, ends with the container, and a killed
//! container is given [`KILL_WAIT`] to be reported gone.
//!
//! Containers carry the dockershim's labels (`io.kubernetes.pod.name`, …)
//! plus [`LABEL_SERVER`] (which test double started them) and
//! [`LABEL_PID`] (the test process), so a server removes its own on
//! shutdown and leftovers of a test process that died are removed by the
//! next [`DockerExecutor::connect`].

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as EngineError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountTypeEnum};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, InspectContainerOptions, KillContainerOptions,
    ListContainersOptions, LogsOptions, RemoveContainerOptions, StartContainerOptions,
    WaitContainerOptions,
};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use tokio::sync::watch;

use super::streams::{ContainerIo, STDERR, STDOUT};

/// The bound of every engine call but the wait for an exit.
pub const ENGINE_CALL_BOUND: Duration = Duration::from_secs(30);
/// How long a killed container may take to be reported stopped.
pub const KILL_WAIT: Duration = Duration::from_secs(20);
/// How long the output of an attached container may take to arrive after
/// it exited.
const ATTACH_DRAIN: Duration = Duration::from_secs(5);
/// Label: the test double that created the container (its directory name).
pub const LABEL_SERVER: &str = "dev.hype.kube-double.server";
/// Label: the PID of the test process whose test double created it.
pub const LABEL_PID: &str = "dev.hype.kube-double.pid";
/// The request timeout of the client used for the wait and the log stream,
/// which last as long as the container (bollard's default is 2 minutes).
const STREAM_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Runs pods' containers on a Docker engine (see
/// [`Executor::Docker`](super::Executor::Docker)). Cloning shares the
/// client.
#[derive(Clone)]
pub struct DockerExecutor {
    docker: Docker,
}

impl std::fmt::Debug for DockerExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerExecutor")
            .field("api_version", &self.docker.client_version().to_string())
            .finish()
    }
}

impl DockerExecutor {
    /// An executor on `docker`, a client whose API version is already
    /// negotiated (see [`crate::docker_image::connect`]).
    pub fn new(docker: Docker) -> DockerExecutor {
        DockerExecutor { docker }
    }

    /// Connects to the engine (`DOCKER_HOST` or the default socket, with
    /// [`crate::docker_image::connect`]), and removes containers that test
    /// doubles of test processes no longer running left behind (once per
    /// process).
    pub async fn connect() -> Result<DockerExecutor, String> {
        static REAPED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        let docker = crate::docker_image::connect().await?;
        REAPED.get_or_init(|| remove_orphans(docker.clone())).await;
        Ok(DockerExecutor::new(docker))
    }

    /// The engine's client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Whether the engine has `reference`: its image ID if so, `None` if
    /// not (the engine answered 404), an error if the engine failed.
    pub(crate) async fn image_id(&self, reference: &str) -> Result<Option<String>, String> {
        match bounded(self.docker.inspect_image(reference)).await {
            Ok(image) => Ok(Some(image.id.unwrap_or_default())),
            Err(failure) if failure.status == Some(404) => Ok(None),
            Err(failure) => Err(failure.message),
        }
    }

    /// Creates and starts a container; returns its ID and a future that
    /// ends when it has exited (or was killed through `killed`), its log is
    /// in `log` and it is removed. `closing` says whether the server is
    /// shutting down (then the container is removed at once). An error is
    /// the engine's message (the container is removed).
    pub(crate) async fn start(
        &self,
        launch: &DockerLaunch,
        env: &BTreeMap<String, String>,
        log: PathBuf,
        killed: watch::Receiver<bool>,
        closing: impl Fn() -> bool,
        attached: Option<Arc<ContainerIo>>,
    ) -> Result<(String, BoxFuture<'static, Exit>), String> {
        let body = launch.body(env);
        let options = CreateContainerOptions {
            name: Some(launch.name.clone()),
            ..Default::default()
        };
        let id = bounded(self.docker.create_container(Some(options), body))
            .await
            .map_err(|failure| format!("failed to create the container: {}", failure.message))?
            .id;
        if closing() {
            remove(&self.docker, &id).await;
            return Err("the node is shutting down".to_owned());
        }
        // Attached before it starts, so that no output is missed.
        let copier = match attached {
            Some(io) => match self.attach(&id, io).await {
                Ok(copier) => Some(copier),
                Err(message) => {
                    remove(&self.docker, &id).await;
                    return Err(message);
                }
            },
            None => None,
        };
        if let Err(failure) = bounded(
            self.docker
                .start_container(&id, None::<StartContainerOptions>),
        )
        .await
        {
            remove(&self.docker, &id).await;
            return Err(failure.message);
        }
        let streams = self.docker.clone().with_timeout(STREAM_TIMEOUT);
        let follower = tokio::spawn(follow_logs(streams.clone(), id.clone(), log.clone()));
        let docker = self.docker.clone();
        let container = id.clone();
        let exit = async move {
            let code = wait_for_exit(&docker, &streams, &container, killed).await;
            if let Some((io, copied)) = copier {
                // The attach's output to its end, then its clients get the
                // exit code.
                let _ = tokio::time::timeout(ATTACH_DRAIN, copied).await;
                io.ended(code);
            }
            let oom_killed = match bounded(
                docker.inspect_container(&container, None::<InspectContainerOptions>),
            )
            .await
            {
                Ok(response) => response.state.and_then(|s| s.oom_killed) == Some(true),
                Err(_) => false,
            };
            // The whole log, now that it is complete (the follower only
            // shows it while the container runs).
            follower.abort();
            let _ = follower.await;
            if let Ok(text) = bounded(read_logs(&docker, &container)).await {
                let _ = std::fs::write(&log, text);
            }
            remove(&docker, &container).await;
            Exit { code, oom_killed }
        };
        Ok((id, Box::pin(exit)))
    }

    /// Attaches to container `id` (stdin, stdout, stderr, streaming): its
    /// stdin becomes `io`'s, and a task copies its output to `io`'s
    /// clients until the attach ends (the task's handle).
    async fn attach(
        &self,
        id: &str,
        io: Arc<ContainerIo>,
    ) -> Result<(Arc<ContainerIo>, tokio::task::JoinHandle<()>), String> {
        let options = AttachContainerOptions {
            stdin: true,
            stdout: true,
            stderr: true,
            stream: true,
            logs: false,
            ..Default::default()
        };
        let attached = bounded(
            self.docker
                .clone()
                .with_timeout(STREAM_TIMEOUT)
                .attach_container(id, Some(options)),
        )
        .await
        .map_err(|failure| format!("failed to attach to the container: {}", failure.message))?;
        io.set_stdin(attached.input);
        let mut output = attached.output;
        let clients = io.clone();
        let copied = tokio::spawn(async move {
            while let Some(Ok(chunk)) = output.next().await {
                match chunk {
                    LogOutput::StdOut { message } => clients.output(STDOUT, &message),
                    LogOutput::StdErr { message } => clients.output(STDERR, &message),
                    _ => {}
                }
            }
        });
        Ok((io, copied))
    }

    /// The names of the containers the test double `server` created that
    /// the engine still has, running or not.
    pub(crate) async fn containers_of(&self, server: &str) -> Result<Vec<String>, String> {
        containers_labelled(&self.docker, LABEL_SERVER, Some(server))
            .await
            .map(|list| list.into_iter().map(|(_, name, _)| name).collect())
    }

    /// Removes every container of `server`, until the engine lists none
    /// or `within` passed. True if none is left.
    pub(crate) async fn remove_all_of(&self, server: &str, within: Duration) -> bool {
        remove_all_of(&self.docker, server, within).await
    }
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    /// The exit code (128 + signal when killed).
    pub(crate) code: i32,
    /// Whether the kernel's OOM killer killed it (the engine's
    /// `State.OOMKilled`).
    pub(crate) oom_killed: bool,
}

/// One bind mount of a container.
#[derive(Debug, Clone)]
pub(crate) struct BindMount {
    pub(crate) source: PathBuf,
    pub(crate) target: String,
    pub(crate) read_only: bool,
}

/// Everything the engine needs to create one container of a pod, but its
/// environment.
#[derive(Debug, Clone)]
pub(crate) struct DockerLaunch {
    /// The container's name: `k8s_<container>_<pod>_<namespace>_<uid>_0`,
    /// as the dockershim named them.
    pub(crate) name: String,
    /// The local image to run.
    pub(crate) image: String,
    /// The image's ID, for the status's `imageID`.
    pub(crate) image_id: String,
    /// The container's `command`, replacing the image's `ENTRYPOINT`.
    pub(crate) entrypoint: Option<Vec<String>>,
    /// The container's `args`, replacing the image's `CMD` (`None`: the
    /// image's).
    pub(crate) cmd: Option<Vec<String>>,
    /// The container's `workingDir`.
    pub(crate) working_dir: Option<String>,
    /// The pod's hostname.
    pub(crate) hostname: String,
    /// Volumes, the staging directory and the termination message file.
    pub(crate) mounts: Vec<BindMount>,
    /// `resources.limits.memory`, in bytes.
    pub(crate) memory: Option<i64>,
    /// `resources.limits.cpu`, in billionths of a CPU.
    pub(crate) nano_cpus: Option<i64>,
    /// `resources.requests.cpu` as CPU shares (1024 per CPU, at least 2).
    pub(crate) cpu_shares: Option<i64>,
    /// `stdin: true`: the container's stdin is open, for attach.
    pub(crate) stdin: bool,
    /// `stdinOnce: true`: closed when the first attached client closes it.
    pub(crate) stdin_once: bool,
    pub(crate) labels: HashMap<String, String>,
}

impl DockerLaunch {
    /// Labels of the container of `container` in pod `namespace/pod`.
    pub(crate) fn labels(
        server: &str,
        namespace: &str,
        pod: &str,
        pod_uid: &str,
        container: &str,
    ) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_SERVER.to_owned(), server.to_owned()),
            (LABEL_PID.to_owned(), std::process::id().to_string()),
            ("io.kubernetes.pod.name".to_owned(), pod.to_owned()),
            (
                "io.kubernetes.pod.namespace".to_owned(),
                namespace.to_owned(),
            ),
            ("io.kubernetes.pod.uid".to_owned(), pod_uid.to_owned()),
            (
                "io.kubernetes.container.name".to_owned(),
                container.to_owned(),
            ),
        ])
    }

    fn body(&self, env: &BTreeMap<String, String>) -> ContainerCreateBody {
        let mounts = self
            .mounts
            .iter()
            .map(|m| Mount {
                typ: Some(MountTypeEnum::BIND),
                source: Some(m.source.to_string_lossy().into_owned()),
                target: Some(m.target.clone()),
                read_only: Some(m.read_only),
                ..Default::default()
            })
            .collect();
        ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: self.working_dir.clone(),
            hostname: Some(self.hostname.clone()),
            labels: Some(self.labels.clone()),
            attach_stdin: Some(self.stdin),
            attach_stdout: Some(self.stdin),
            attach_stderr: Some(self.stdin),
            tty: Some(false),
            open_stdin: Some(self.stdin),
            stdin_once: Some(self.stdin && self.stdin_once),
            host_config: Some(HostConfig {
                mounts: Some(mounts),
                memory: self.memory,
                // No swap, as on Kubernetes: over the limit is an OOM kill.
                memory_swap: self.memory,
                nano_cpus: self.nano_cpus,
                cpu_shares: self.cpu_shares,
                auto_remove: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// A pod's hostname: its name, cut to 63 characters without a trailing
/// `-` or `.`, as the kubelet does.
pub(crate) fn hostname(pod: &str) -> String {
    let mut name: String = pod.chars().take(63).collect();
    while name.ends_with(['-', '.']) {
        name.pop();
    }
    name
}

/// An engine call that failed or did not answer in time.
struct Failure {
    status: Option<u16>,
    message: String,
}

async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, EngineError>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(ENGINE_CALL_BOUND, call).await {
        Ok(Ok(value)) => Ok(value),
        // The engine's own message, as a kubelet shows the runtime's.
        Ok(Err(EngineError::DockerResponseServerError {
            status_code,
            message,
        })) => Err(Failure {
            status: Some(status_code),
            message,
        }),
        Ok(Err(err)) => Err(Failure {
            status: None,
            message: err.to_string(),
        }),
        Err(_) => Err(Failure {
            status: None,
            message: format!("the Docker engine did not answer within {ENGINE_CALL_BOUND:?}"),
        }),
    }
}

/// Waits for the container to stop (the engine's wait API, no polling);
/// when `killed` turns true, kills it first. Its exit code; 137 if it
/// cannot be known.
async fn wait_for_exit(
    docker: &Docker,
    streams: &Docker,
    id: &str,
    mut killed: watch::Receiver<bool>,
) -> i32 {
    loop {
        let options = WaitContainerOptions {
            condition: "not-running".to_owned(),
        };
        let mut exits = std::pin::pin!(streams.wait_container(id, Some(options)));
        let kill = async {
            // A closed channel means the pod worker is gone: so is this.
            if killed.wait_for(|k| *k).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let exit = tokio::select! {
            exit = exits.next() => exit,
            () = kill => {
                kill_container(docker, id).await;
                match tokio::time::timeout(KILL_WAIT, exits.next()).await {
                    Ok(exit) => exit,
                    Err(_) => return 137,
                }
            }
        };
        match exit {
            Some(Ok(response)) => return response.status_code as i32,
            Some(Err(EngineError::DockerContainerWaitError { code, .. })) => return code as i32,
            // The wait broke off: look at the container.
            _ => {
                match bounded(docker.inspect_container(id, None::<InspectContainerOptions>)).await {
                    Ok(response) => {
                        let state = response.state.unwrap_or_default();
                        if state.running != Some(true) {
                            return state.exit_code.map_or(137, |c| c as i32);
                        }
                    }
                    Err(_) => return 137,
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn kill_container(docker: &Docker, id: &str) {
    // Errors: gone, or not running (409): either way it is stopping.
    let _ = bounded(docker.kill_container(id, None::<KillContainerOptions>)).await;
}

/// Removes a container, running or not; gone already is fine.
async fn remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    let _ = bounded(docker.remove_container(id, Some(options))).await;
}

/// Copies the container's output to `path` while it runs.
async fn follow_logs(docker: Docker, id: String, path: PathBuf) {
    let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    else {
        return;
    };
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        tail: "all".to_owned(),
        ..Default::default()
    };
    let mut chunks = std::pin::pin!(docker.logs(&id, Some(options)));
    while let Some(Ok(chunk)) = chunks.next().await {
        if file.write_all(&chunk.into_bytes()).is_err() {
            return;
        }
    }
}

/// The container's whole output, stdout and stderr interleaved.
async fn read_logs(docker: &Docker, id: &str) -> Result<Vec<u8>, EngineError> {
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        tail: "all".to_owned(),
        ..Default::default()
    };
    let mut chunks = std::pin::pin!(docker.logs(id, Some(options)));
    let mut text = Vec::new();
    while let Some(chunk) = chunks.next().await {
        text.extend_from_slice(&chunk?.into_bytes());
    }
    Ok(text)
}

/// Containers with `label` (`=value` if given): (ID, name, labels).
async fn containers_labelled(
    docker: &Docker,
    label: &str,
    value: Option<&str>,
) -> Result<Vec<(String, String, HashMap<String, String>)>, String> {
    let filter = match value {
        Some(value) => format!("{label}={value}"),
        None => label.to_owned(),
    };
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_owned(), vec![filter])])),
        ..Default::default()
    };
    let list = bounded(docker.list_containers(Some(options)))
        .await
        .map_err(|failure| failure.message)?;
    Ok(list
        .into_iter()
        .filter_map(|c| {
            let name = c
                .names
                .iter()
                .flatten()
                .next()
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default();
            Some((c.id?, name, c.labels.unwrap_or_default()))
        })
        .collect())
}

async fn remove_all_of(docker: &Docker, server: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let listed = tokio::time::timeout_at(
            deadline,
            containers_labelled(docker, LABEL_SERVER, Some(server)),
        )
        .await;
        let Ok(Ok(containers)) = listed else {
            return false;
        };
        if containers.is_empty() {
            return true;
        }
        for (id, _, _) in containers {
            let _ = tokio::time::timeout_at(deadline, remove(docker, &id)).await;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Removes containers of test processes that are gone (their
/// [`LABEL_PID`] names no live process).
async fn remove_orphans(docker: Docker) {
    let Ok(containers) = containers_labelled(&docker, LABEL_PID, None).await else {
        return;
    };
    for (id, _, labels) in containers {
        let alive = labels
            .get(LABEL_PID)
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            remove(&docker, &id).await;
        }
    }
}

/// Removes every container of `server` from a thread of its own with its
/// own client and runtime, waiting at most `within`: for `Drop`, which
/// cannot await (and may run while the test's runtime is going away).
pub(crate) fn remove_all_of_blocking(server: String, within: Duration) {
    let (done, finished) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("kube-double-docker-cleanup".to_owned())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(docker) = crate::docker_image::connect().await {
                    remove_all_of(&docker, &server, within).await;
                }
            });
            let _ = done.send(());
        });
    if spawned.is_ok() {
        let _ = finished.recv_timeout(within + Duration::from_secs(10));
    }
}
