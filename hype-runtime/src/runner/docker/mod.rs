//! The Docker runner: each call is a container on a Docker engine (the
//! `docker` feature), like spotify/hype's `LocalDockerRunner`.
//!
//! A call's path: its named volumes are made sure of, its container is
//! built ([`spec`]: image, `Cmd = [<call>]` for the image's `hype-run`
//! entrypoint, env vars, labels, mounts, cpu and memory limits from
//! [`quantity`]) and created, pulling the image first if the engine does
//! not have it (bounded by [`DockerCluster::pull_timeout`]); it is started,
//! and the engine's wait API (no polling) reports its exit, bounded by the
//! environment's timeout. Then:
//!
//! - `State.OOMKilled` gives [`Error::OutOfMemory`] with the limit;
//! - a termination message is returned for the submitter to decode;
//! - no message gives [`Error::RunnerFailed`] with the exit status and the
//!   last lines of the container's log.
//!
//! **Staging and the termination message** travel through bind mounts: the
//! submitter's staging directory (which must be `file://`) is mounted at
//! the same path, so the URIs in call envelopes and outcomes mean the same
//! inside and out, and a per-call host directory is mounted at
//! [`spec::TERMINATION_DIR`], where `HYPE_TERMINATION_MESSAGE_PATH` points.
//! The engine must therefore see this machine's files (a local engine, not
//! a remote `DOCKER_HOST`). Containers run as their image's user, which
//! must be able to write the staging directory.
//!
//! **Secrets** are directories, as for the local runner: secret `NAME` is
//! `<secrets dir>/NAME` (default `$HYPE_LOCAL_SECRETS`, else
//! `~/.config/hype/secrets`), bind-mounted read-only at its mount path.
//! **Volumes** are named Docker volumes, created if missing and labelled;
//! mounts are read-only or read-write as asked. Transient volumes are
//! removed when the submitter closes (unless `keep_on_exit` or
//! [`DockerCluster::keep_volumes`]).
//!
//! **Cleanup.** Each call runs in a task of its own, which owns the
//! container's life: dropping the call's future signals the task, which
//! stops and removes the container; timeouts do the same. The container is
//! removed before the result is returned, unless
//! [`DockerCluster::keep_containers`] keeps it (stopped) for inspection.
//! [`Runner::close`] waits for those tasks, removes anything left with the
//! session's label, then the transient volumes. Every engine call has a
//! bound. Everything carries `app.kubernetes.io/managed-by=hype` and
//! `hype.dev/session=<session>`, so leftovers can be found with
//! `docker ps -a --filter label=app.kubernetes.io/managed-by=hype`.

pub mod quantity;
pub mod spec;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as EngineError;
use bollard::models::{ContainerState, VolumeCreateOptions};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, KillContainerOptions,
    ListContainersOptions, LogsOptions, RemoveContainerOptions, RemoveVolumeOptions,
    StartContainerOptions, WaitContainerOptions,
};
use futures::StreamExt as _;
use tokio::sync::{OnceCell, oneshot, watch};

use self::spec::{ContainerPlan, ContainerRequest};
use super::{Job, Runner};
use crate::cleanup;
use crate::cluster::{Cluster, Connection};
use crate::environment::{RunEnvironment, VolumeLifetime, VolumeRequest};
use crate::error::Error;
use crate::staging::BoxFuture;
use crate::wire::Failure;

/// How long a missing image may take to pull, unless set with
/// [`DockerCluster::pull_timeout`].
pub const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The bound of every engine call other than the wait and the pull.
pub const ENGINE_CALL_BOUND: Duration = Duration::from_secs(60);
/// How long connecting may take.
const CONNECT_BOUND: Duration = Duration::from_secs(10);
/// How long [`Runner::close`] waits for calls in flight to clean up.
const CLOSE_WAIT: Duration = Duration::from_secs(90);
/// How many log lines a failed call's error carries.
const LOG_TAIL_LINES: usize = 20;
/// Where `hype-run`'s output goes when debug logging is on.
const REMOTE_TARGET: &str = "hype::remote";

/// A Docker engine to run calls on: `DOCKER_HOST`, else the default socket.
/// `HYPE_CLUSTER=docker` selects it for the default submitter.
///
/// ```no_run
/// # async fn demo() -> Result<(), hype_runtime::Error> {
/// use hype_runtime::{DockerCluster, RunEnvironment, Submitter};
/// let cluster = DockerCluster::new().secrets_dir("/etc/hype/secrets");
/// let submitter = Submitter::new("file:///var/tmp/hype-staging", cluster).await?;
/// let env = RunEnvironment::new("my-env-image:1").with_limit("memory", "512Mi");
/// // submitter.run(word_count("a b".into()), &env).await?;
/// submitter.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DockerCluster {
    keep_containers: bool,
    keep_volumes: bool,
    secrets_dir: Option<PathBuf>,
    pull_timeout: Duration,
    command_prefix: Vec<String>,
}

impl Default for DockerCluster {
    fn default() -> Self {
        DockerCluster {
            keep_containers: false,
            keep_volumes: false,
            secrets_dir: None,
            pull_timeout: DEFAULT_PULL_TIMEOUT,
            command_prefix: Vec::new(),
        }
    }
}

impl DockerCluster {
    /// The engine `DOCKER_HOST` names, else the default socket; containers
    /// removed after each call, transient volumes when the submitter closes.
    pub fn new() -> Self {
        DockerCluster::default()
    }

    /// Keeps each call's container (stopped, with its termination message
    /// directory) instead of removing it, for debugging.
    pub fn keep_containers(mut self, keep: bool) -> Self {
        self.keep_containers = keep;
        self
    }

    /// Keeps transient volumes when the submitter closes.
    pub fn keep_volumes(mut self, keep: bool) -> Self {
        self.keep_volumes = keep;
        self
    }

    /// Where secrets are: secret `NAME` is the directory `dir/NAME`,
    /// mounted read-only (default `$HYPE_LOCAL_SECRETS`, else
    /// `~/.config/hype/secrets`, as for the local runner).
    pub fn secrets_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.secrets_dir = Some(dir.into());
        self
    }

    /// How long pulling a missing image may take before the call fails
    /// with [`Error::ImageUnavailable`] (default five minutes).
    pub fn pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    /// Arguments put before the call in the container's command. Empty by
    /// default: the image's `ENTRYPOINT` is `hype-run`. For an image whose
    /// entrypoint is your binary under another name, use `["hype-run"]`:
    /// `#[hype::main]` dispatches when `hype-run` is the first argument.
    pub fn command_prefix<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.command_prefix = args.into_iter().map(Into::into).collect();
        self
    }

    /// Connects to the engine for one submitter: checks that the staging
    /// is local (`file://`), negotiates the API version, and builds the
    /// runner.
    pub async fn into_runner(self, connection: Connection) -> Result<DockerRunner, Error> {
        let staging_dir = spec::staging_dir(connection.staging.location())?;
        // Created here, by this user, so that containers running as root
        // do not create them root-owned.
        for sub in ["blobs/sha256", "outcomes"] {
            let dir = staging_dir.join(sub);
            std::fs::create_dir_all(&dir).map_err(|err| Error::Config {
                message: format!("cannot create staging directory {}: {err}", dir.display()),
            })?;
        }
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        let docker = Docker::connect_with_defaults().map_err(|err| Error::Config {
            message: format!(
                "cannot use the Docker engine at {host}: {err}; set DOCKER_HOST to its socket (unix:///var/run/docker.sock) or address"
            ),
        })?;
        let operation = format!("connect to the Docker engine at {host}");
        let docker = match tokio::time::timeout(CONNECT_BOUND, docker.negotiate_version()).await {
            Ok(Ok(docker)) => docker,
            Ok(Err(err)) => {
                return Err(Error::Cluster {
                    operation,
                    message: format!(
                        "{}; is the engine running, and may this user use its socket? (DOCKER_HOST selects another engine)",
                        engine_message(&err)
                    ),
                });
            }
            Err(_) => {
                return Err(Error::Cluster {
                    operation,
                    message: format!("no answer within {CONNECT_BOUND:?}; is the engine running?"),
                });
            }
        };
        let secrets_dir = match self.secrets_dir {
            Some(dir) => dir,
            None => default_secrets_dir(),
        };
        let secrets_dir = std::path::absolute(&secrets_dir).unwrap_or(secrets_dir);
        let work_dir = cleanup::temp_dir("hype-docker-").map_err(|err| Error::Config {
            message: format!("cannot create a temporary directory for Docker calls: {err}"),
        })?;
        tracing::debug!(%host, version = ?docker.client_version(), session = %connection.session, "connected to the Docker engine");
        Ok(DockerRunner {
            shared: Arc::new(Shared {
                docker,
                session: connection.session,
                staging_dir,
                secrets_dir,
                work_dir,
                keep_containers: self.keep_containers,
                keep_volumes: self.keep_volumes,
                pull_timeout: self.pull_timeout,
                command_prefix: self.command_prefix,
                volumes: Mutex::new(HashMap::new()),
                transient: Mutex::new(BTreeSet::new()),
                in_flight: watch::Sender::new(0),
            }),
        })
    }
}

impl Cluster for DockerCluster {
    fn connect(self, connection: Connection) -> BoxFuture<'static, Result<Arc<dyn Runner>, Error>> {
        Box::pin(
            async move { Ok(Arc::new(self.into_runner(connection).await?) as Arc<dyn Runner>) },
        )
    }
}

fn default_secrets_dir() -> PathBuf {
    std::env::var_os("HYPE_LOCAL_SECRETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let mut dir = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            dir.extend([".config", "hype", "secrets"]);
            dir
        })
}

/// Runs each call as a container. Built by [`DockerCluster::into_runner`].
#[derive(Debug)]
pub struct DockerRunner {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    docker: Docker,
    session: String,
    staging_dir: PathBuf,
    secrets_dir: PathBuf,
    work_dir: PathBuf,
    keep_containers: bool,
    keep_volumes: bool,
    pull_timeout: Duration,
    command_prefix: Vec<String>,
    /// Volumes this runner has made sure of (created once per runner).
    volumes: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    /// Transient volumes to remove on close.
    transient: Mutex<BTreeSet<String>>,
    /// Calls whose task has not finished cleaning up.
    in_flight: watch::Sender<usize>,
}

impl DockerRunner {
    /// The session this runner labels its containers and transient volumes
    /// with (the submitter's).
    pub fn session(&self) -> &str {
        &self.shared.session
    }

    /// The staging directory, bind-mounted into every container.
    pub fn staging_dir(&self) -> &Path {
        &self.shared.staging_dir
    }
}

impl Runner for DockerRunner {
    fn run<'a>(
        &'a self,
        job: Job,
        env: &'a RunEnvironment,
    ) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let termination_dir = shared.work_dir.join(&job.execution_id);
            let plan = spec::build(&ContainerRequest {
                job: &job,
                env,
                session: &shared.session,
                staging_dir: &shared.staging_dir,
                termination_dir: &termination_dir,
                secrets_dir: &shared.secrets_dir,
                command_prefix: &shared.command_prefix,
            })?;
            // The task owns the container's life, so that dropping this
            // future (cancellation) never interrupts an engine call midway:
            // the task sees `cancel` close and removes what it created.
            let (cancel, cancelled) = oneshot::channel::<()>();
            let in_flight = InFlight::enter(shared);
            let task = tokio::spawn(Arc::clone(shared).execute(
                job.clone(),
                plan,
                termination_dir,
                env.timeout(),
                cancelled,
                in_flight,
            ));
            let result = task.await;
            drop(cancel);
            result.unwrap_or_else(|err| {
                Err(Error::Cluster {
                    operation: format!("run container {}", job.execution_id),
                    message: format!("the call's task ended abnormally: {err}"),
                })
            })
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.shared.close())
    }
}

/// Counts a call until its task has cleaned up.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> InFlight {
        shared.in_flight.send_modify(|n| *n += 1);
        InFlight(Arc::clone(shared))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.send_modify(|n| *n -= 1);
    }
}

/// An engine call that failed or did not answer in time.
#[derive(Debug)]
enum EngineFailure {
    Api(EngineError),
    NoAnswer(Duration),
}

impl EngineFailure {
    fn status(&self) -> Option<u16> {
        match self {
            EngineFailure::Api(EngineError::DockerResponseServerError { status_code, .. }) => {
                Some(*status_code)
            }
            _ => None,
        }
    }

    fn message(&self) -> String {
        match self {
            EngineFailure::Api(err) => engine_message(err),
            EngineFailure::NoAnswer(bound) => {
                format!("the Docker engine did not answer within {bound:?}")
            }
        }
    }

    fn into_error(self, operation: impl Into<String>) -> Error {
        Error::Cluster {
            operation: operation.into(),
            message: self.message(),
        }
    }
}

/// The engine's own message when it sent one.
fn engine_message(err: &EngineError) -> String {
    match err {
        EngineError::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        other => other.to_string(),
    }
}

/// Runs an engine call with [`ENGINE_CALL_BOUND`].
async fn bounded<T>(
    call: impl Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineFailure> {
    match tokio::time::timeout(ENGINE_CALL_BOUND, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(EngineFailure::Api(err)),
        Err(_) => Err(EngineFailure::NoAnswer(ENGINE_CALL_BOUND)),
    }
}

fn cancelled_error(job: &Job) -> Error {
    Error::Cancelled {
        function: job.function.to_owned(),
        execution_id: job.execution_id.clone(),
        reason: "the call's future was dropped".to_owned(),
    }
}

fn is_cancelled(cancelled: &mut oneshot::Receiver<()>) -> bool {
    matches!(
        cancelled.try_recv(),
        Err(oneshot::error::TryRecvError::Closed)
    )
}

impl Shared {
    /// One call, start to cleanup.
    async fn execute(
        self: Arc<Self>,
        job: Job,
        plan: ContainerPlan,
        termination_dir: PathBuf,
        timeout: Duration,
        mut cancelled: oneshot::Receiver<()>,
        _in_flight: InFlight,
    ) -> Result<String, Error> {
        let mut created = false;
        let result = self
            .lifecycle(
                &job,
                &plan,
                &termination_dir,
                timeout,
                &mut cancelled,
                &mut created,
            )
            .await;
        if created {
            self.dispose(&job.execution_id).await;
        }
        if !self.keep_containers {
            let _ = tokio::fs::remove_dir_all(&termination_dir).await;
        }
        match &result {
            Ok(_) => {
                tracing::debug!(function = job.function, container = %job.execution_id, "container finished")
            }
            Err(err) => {
                tracing::debug!(function = job.function, container = %job.execution_id, %err, "container failed")
            }
        }
        result
    }

    async fn lifecycle(
        &self,
        job: &Job,
        plan: &ContainerPlan,
        termination_dir: &Path,
        timeout: Duration,
        cancelled: &mut oneshot::Receiver<()>,
        created: &mut bool,
    ) -> Result<String, Error> {
        create_termination_dir(termination_dir)?;
        for volume in &plan.volumes {
            self.ensure_volume(volume).await?;
        }
        if is_cancelled(cancelled) {
            return Err(cancelled_error(job));
        }
        *created = true;
        self.create(job, plan, cancelled).await?;
        if is_cancelled(cancelled) {
            return Err(cancelled_error(job));
        }
        self.start(job).await?;
        tracing::debug!(function = job.function, container = %job.execution_id, image = %plan.image, "container started");
        let exit_code = self.wait(job, timeout, cancelled).await?;
        let state = self.inspect(job).await?;
        if state.oom_killed == Some(true) {
            return Err(Error::OutOfMemory {
                function: job.function.to_owned(),
                execution_id: job.execution_id.clone(),
                limit: plan.memory_limit.clone(),
            });
        }
        if tracing::enabled!(target: REMOTE_TARGET, tracing::Level::DEBUG) {
            for line in self.logs(&job.execution_id, None).await.lines() {
                tracing::debug!(target: REMOTE_TARGET, execution_id = %job.execution_id, "{line}");
            }
        }
        let termination_path = termination_dir.join(spec::TERMINATION_FILE);
        match tokio::fs::read_to_string(&termination_path).await {
            Ok(message) if !message.is_empty() => Ok(message),
            _ => Err(Error::RunnerFailed {
                function: job.function.to_owned(),
                execution_id: job.execution_id.clone(),
                status: describe(exit_code, state.error.as_deref()),
                stderr_tail: self
                    .logs(&job.execution_id, Some(LOG_TAIL_LINES))
                    .await
                    .trim_end()
                    .to_owned(),
            }),
        }
    }

    /// Creates a volume once per runner (the engine's create is
    /// idempotent: an existing volume is reused), and records transient
    /// ones for removal.
    async fn ensure_volume(&self, volume: &VolumeRequest) -> Result<(), Error> {
        let cell = {
            let mut volumes = self.volumes.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(volumes.entry(volume.name.clone()).or_default())
        };
        cell.get_or_try_init(|| async {
            let options = VolumeCreateOptions {
                name: Some(volume.name.clone()),
                labels: Some(spec::volume_labels(volume, &self.session)),
                ..Default::default()
            };
            bounded(self.docker.create_volume(options))
                .await
                .map_err(|f| f.into_error(format!("create volume {}", volume.name)))?;
            tracing::debug!(volume = %volume.name, lifetime = ?volume.lifetime, "volume ready");
            if volume.lifetime == VolumeLifetime::Transient
                && !volume.keep_on_exit
                && !self.keep_volumes
            {
                self.transient
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(volume.name.clone());
            }
            Ok::<(), Error>(())
        })
        .await
        .map(|_| ())
    }

    /// Creates the container, pulling its image first if the engine lacks it.
    async fn create(
        &self,
        job: &Job,
        plan: &ContainerPlan,
        cancelled: &mut oneshot::Receiver<()>,
    ) -> Result<(), Error> {
        let create = || {
            let options = CreateContainerOptions {
                name: Some(job.execution_id.clone()),
                ..Default::default()
            };
            bounded(
                self.docker
                    .create_container(Some(options), plan.body.clone()),
            )
        };
        let mut result = create().await;
        if result.as_ref().err().and_then(EngineFailure::status) == Some(404) {
            self.pull(job, &plan.image, cancelled).await?;
            result = create().await;
        }
        result
            .map(|_| ())
            .map_err(|failure| match failure.status() {
                Some(404) => Error::ImageUnavailable {
                    function: job.function.to_owned(),
                    execution_id: job.execution_id.clone(),
                    image: plan.image.clone(),
                    reason: "NotFound".to_owned(),
                    message: failure.message(),
                },
                Some(400) if failure.message().contains("invalid reference format") => {
                    Error::ImageUnavailable {
                        function: job.function.to_owned(),
                        execution_id: job.execution_id.clone(),
                        image: plan.image.clone(),
                        reason: "InvalidImageName".to_owned(),
                        message: failure.message(),
                    }
                }
                Some(400) => Error::ContainerConfig {
                    function: job.function.to_owned(),
                    execution_id: job.execution_id.clone(),
                    reason: "InvalidContainerConfig".to_owned(),
                    message: failure.message(),
                },
                _ => failure.into_error(format!("create container {}", job.execution_id)),
            })
    }

    /// Pulls a missing image, bounded by the pull timeout; cancellable.
    async fn pull(
        &self,
        job: &Job,
        image: &str,
        cancelled: &mut oneshot::Receiver<()>,
    ) -> Result<(), Error> {
        let reference = spec::with_default_tag(image);
        tracing::info!(image = %reference, "the image is not on the Docker engine; pulling it");
        let options = CreateImageOptions {
            from_image: Some(reference.clone()),
            ..Default::default()
        };
        let pulling = async {
            let mut progress = std::pin::pin!(self.docker.create_image(Some(options), None, None));
            while let Some(step) = progress.next().await {
                step?;
            }
            Ok::<(), EngineError>(())
        };
        let unavailable = |message: String| Error::ImageUnavailable {
            function: job.function.to_owned(),
            execution_id: job.execution_id.clone(),
            image: image.to_owned(),
            reason: "NotFound".to_owned(),
            message,
        };
        tokio::select! {
            pulled = tokio::time::timeout(self.pull_timeout, pulling) => match pulled {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(unavailable(format!(
                    "it is not on the Docker engine, and pulling {reference} failed: {}",
                    engine_message(&err)
                ))),
                Err(_) => Err(unavailable(format!(
                    "it is not on the Docker engine, and pulling {reference} did not finish within {:?} (DockerCluster::pull_timeout)",
                    self.pull_timeout
                ))),
            },
            _ = &mut *cancelled => Err(cancelled_error(job)),
        }
    }

    async fn start(&self, job: &Job) -> Result<(), Error> {
        bounded(
            self.docker
                .start_container(&job.execution_id, None::<StartContainerOptions>),
        )
        .await
        .map_err(|failure| match failure {
            EngineFailure::Api(_) => {
                let message = failure.message();
                let hint = if message.contains("executable file not found")
                    || message.contains("no such file or directory")
                {
                    "; the image's ENTRYPOINT must be hype-run (see docker/README.md), or set DockerCluster::command_prefix"
                } else {
                    ""
                };
                Error::ContainerConfig {
                    function: job.function.to_owned(),
                    execution_id: job.execution_id.clone(),
                    reason: "StartFailed".to_owned(),
                    message: format!("{message}{hint}"),
                }
            }
            EngineFailure::NoAnswer(_) => {
                failure.into_error(format!("start container {}", job.execution_id))
            }
        })
    }

    /// Waits for the container to stop (the engine's wait API), bounded by
    /// the timeout; returns its exit code.
    async fn wait(
        &self,
        job: &Job,
        timeout: Duration,
        cancelled: &mut oneshot::Receiver<()>,
    ) -> Result<i64, Error> {
        let options = WaitContainerOptions {
            condition: "not-running".to_owned(),
        };
        let mut exits =
            std::pin::pin!(self.docker.wait_container(&job.execution_id, Some(options)));
        tokio::select! {
            exit = tokio::time::timeout(timeout, exits.next()) => match exit {
                Err(_) => Err(Error::Timeout {
                    function: job.function.to_owned(),
                    execution_id: job.execution_id.clone(),
                    after: timeout,
                }),
                Ok(Some(Ok(response))) => Ok(response.status_code),
                Ok(Some(Err(EngineError::DockerContainerWaitError { code, .. }))) => Ok(code),
                Ok(Some(Err(err))) => {
                    let failure = EngineFailure::Api(err);
                    if failure.status() == Some(404) {
                        Err(Error::DeletedExternally {
                            function: job.function.to_owned(),
                            execution_id: job.execution_id.clone(),
                        })
                    } else {
                        Err(failure.into_error(format!("wait for container {}", job.execution_id)))
                    }
                }
                Ok(None) => Err(Error::Cluster {
                    operation: format!("wait for container {}", job.execution_id),
                    message: "the engine ended the wait without an exit status".to_owned(),
                }),
            },
            _ = &mut *cancelled => Err(cancelled_error(job)),
        }
    }

    async fn inspect(&self, job: &Job) -> Result<ContainerState, Error> {
        match bounded(
            self.docker
                .inspect_container(&job.execution_id, None::<InspectContainerOptions>),
        )
        .await
        {
            Ok(response) => Ok(response.state.unwrap_or_default()),
            Err(failure) if failure.status() == Some(404) => Err(Error::DeletedExternally {
                function: job.function.to_owned(),
                execution_id: job.execution_id.clone(),
            }),
            Err(failure) => {
                Err(failure.into_error(format!("inspect container {}", job.execution_id)))
            }
        }
    }

    /// The container's output (stdout and stderr): the last `tail` lines,
    /// or all of it. Never fails: a failure to read becomes the text.
    async fn logs(&self, container: &str, tail: Option<usize>) -> String {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..Default::default()
        };
        let reading = async {
            let mut chunks = std::pin::pin!(self.docker.logs(container, Some(options)));
            let mut text = Vec::new();
            while let Some(chunk) = chunks.next().await {
                text.extend_from_slice(&chunk?.into_bytes());
            }
            Ok::<Vec<u8>, EngineError>(text)
        };
        match bounded(reading).await {
            Ok(text) => String::from_utf8_lossy(&text).into_owned(),
            Err(failure) => format!("(cannot read the container's log: {})", failure.message()),
        }
    }

    /// Removes a call's container (forcibly: it may still run), or with
    /// `keep_containers`, stops it and leaves it.
    async fn dispose(&self, container: &str) {
        if self.keep_containers {
            match bounded(
                self.docker
                    .kill_container(container, None::<KillContainerOptions>),
            )
            .await
            {
                Ok(()) => {}
                // Not there, or not running: nothing to stop.
                Err(failure) if matches!(failure.status(), Some(404 | 409)) => {}
                Err(failure) => {
                    tracing::warn!(container, error = %failure.message(), "cannot stop the container")
                }
            }
            tracing::info!(container, "container kept (DockerCluster::keep_containers)");
            return;
        }
        self.remove_container(container).await;
    }

    async fn remove_container(&self, container: &str) {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match bounded(self.docker.remove_container(container, Some(options))).await {
            Ok(()) => tracing::debug!(container, "container removed"),
            // Gone already, or its removal is already in progress.
            Err(failure) if matches!(failure.status(), Some(404 | 409)) => {}
            Err(failure) => {
                tracing::warn!(container, error = %failure.message(), "cannot remove the container; remove it with `docker rm -f`")
            }
        }
    }

    async fn close(&self) -> Result<(), Error> {
        let mut in_flight = self.in_flight.subscribe();
        if tokio::time::timeout(CLOSE_WAIT, in_flight.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            tracing::warn!(
                calls = *in_flight.borrow(),
                "calls in flight did not finish cleaning up within {CLOSE_WAIT:?}"
            );
        }
        let mut failures = Vec::new();
        if !self.keep_containers {
            // Normally nothing is left: each call's task removes its own.
            let options = ListContainersOptions {
                all: true,
                filters: Some(spec::session_filter(&self.session)),
                ..Default::default()
            };
            match bounded(self.docker.list_containers(Some(options))).await {
                Ok(containers) => {
                    for container in containers {
                        if let Some(id) = container.id {
                            tracing::debug!(container = %id, "removing a leftover container");
                            self.remove_container(&id).await;
                        }
                    }
                }
                Err(failure) => failures.push(format!(
                    "cannot list the session's containers: {}",
                    failure.message()
                )),
            }
        }
        let volumes =
            std::mem::take(&mut *self.transient.lock().unwrap_or_else(|e| e.into_inner()));
        for volume in volumes {
            match bounded(
                self.docker
                    .remove_volume(&volume, None::<RemoveVolumeOptions>),
            )
            .await
            {
                Ok(()) => tracing::debug!(%volume, "transient volume removed"),
                Err(failure) if failure.status() == Some(404) => {}
                Err(failure) if failure.status() == Some(409) && self.keep_containers => {
                    tracing::info!(%volume, "transient volume kept: kept containers use it")
                }
                Err(failure) => failures.push(format!("volume {volume}: {}", failure.message())),
            }
        }
        if !self.keep_containers
            && let Err(err) = cleanup::remove_now(&self.work_dir)
        {
            failures.push(format!("{}: {err}", self.work_dir.display()));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::Cluster {
                operation: "close the Docker runner".to_owned(),
                message: failures.join("; "),
            })
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let left = std::mem::take(&mut *self.transient.lock().unwrap_or_else(|e| e.into_inner()));
        if !left.is_empty() {
            // Calls in flight hold this runner, so no container uses the
            // volumes now; remove them if a runtime is still there to.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let docker = self.docker.clone();
                    runtime.spawn(async move {
                        for volume in left {
                            if let Err(failure) =
                                bounded(docker.remove_volume(&volume, None::<RemoveVolumeOptions>)).await
                            {
                                tracing::warn!(%volume, error = %failure.message(), "cannot remove a transient volume; remove it with `docker volume rm`");
                            }
                        }
                    });
                }
                Err(_) => tracing::warn!(
                    volumes = ?left,
                    "transient Docker volumes stay: the submitter was dropped outside a tokio runtime without close(); remove them with `docker volume rm`"
                ),
            }
        }
        if !self.keep_containers {
            let _ = cleanup::remove_now(&self.work_dir);
        }
    }
}

/// The per-call host directory `hype-run` writes its termination message
/// to; writable by any user, since the image's user may not be this one.
fn create_termination_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)))
        .map_err(|err| Error::Config {
            message: format!(
                "cannot create the termination message directory {}: {err}",
                dir.display()
            ),
        })
}

/// How a container that wrote no outcome ended.
fn describe(code: i64, engine_error: Option<&str>) -> String {
    let meaning = match code {
        137 => Some("SIGKILL: killed from outside, or out of memory"),
        143 => Some("SIGTERM"),
        139 => Some("SIGSEGV"),
        134 => Some("SIGABRT: aborted"),
        _ => i32::try_from(code)
            .ok()
            .and_then(Failure::describe_exit_code),
    };
    let mut text = match meaning {
        Some(meaning) => {
            format!("the container exited with code {code} ({meaning}) without writing an outcome")
        }
        None => format!("the container exited with code {code} without writing an outcome"),
    };
    if let Some(error) = engine_error.filter(|e| !e.is_empty()) {
        text.push_str(&format!("; the engine says: {error}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_described() {
        assert!(describe(137, None).contains("SIGKILL"));
        assert!(describe(101, None).contains("panicked"));
        assert!(describe(66, None).contains("unknown function"));
        assert_eq!(
            describe(3, Some("")),
            "the container exited with code 3 without writing an outcome"
        );
        assert!(describe(127, Some("exec failed")).ends_with("the engine says: exec failed"));
    }
}
