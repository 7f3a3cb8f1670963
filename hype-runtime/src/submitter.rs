//! The [`Submitter`]: sends calls to a cluster and brings back typed
//! results. It encodes the arguments (staging them when large), hands the
//! call to its runner, reads the outcome (fetching a staged result), and
//! turns every failure into a precise [`Error`].
//!
//! [`Submitter::builder`] connects a [`Cluster`] with a staging store;
//! [`Submitter::new`] is the shortcut of spotify/hype's
//! `Submitter.create(bucket, cluster)`. [`Call::run_on_cluster`] uses the
//! process-wide default submitter.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::{Cluster, Connection, Delivery, Job, JobExecutable, LocalCluster, Runner};
use crate::cleanup;
use crate::config::{self, ClusterSpec};
use crate::environment::RunEnvironment;
use crate::error::{Attempt, Error};
use crate::executable::Executable;
use crate::ids;
use crate::logs::{LogMode, LogSink};
use crate::remote::{Call, RemoteFn};
use crate::staging::{self, LocalStaging, Reported, Staging};
use crate::wire::{
    self, BuildInfo, CallEnvelope, INLINE_ARGUMENTS_LIMIT, MAX_INLINE_ARGUMENTS, Outcome,
    OutcomeEnvelope, Payload, Reference,
};

mod default;

/// Sends calls to one cluster, staging large payloads in one store.
///
/// Cheap to clone (clones share the connection, the store and the
/// session). [`Submitter::close`] cancels calls in flight and removes what
/// the submitter created for itself (transient volumes, a temporary staging
/// directory). Dropping the last clone removes the local ones too; calls
/// in flight keep the submitter alive until they end.
///
/// ```no_run
/// # async fn demo() -> Result<(), hype_runtime::Error> {
/// use hype_runtime::{LocalCluster, Submitter};
/// let submitter = Submitter::builder(LocalCluster::new())
///     .staging("file:///tmp/hype-staging")
///     .build()
///     .await?;
/// // submitter.run(word_count("a b".into()), &RunEnvironment::local()).await?;
/// submitter.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Submitter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    runner: Arc<dyn Runner>,
    staging: Arc<dyn Staging>,
    owned_staging_dir: Option<PathBuf>,
    session: String,
    /// Cancelled by [`Submitter::close`]: calls in flight stop, new ones are refused.
    closed: CancellationToken,
    /// The calls in flight; `close` waits for them to wind down.
    calls: TaskTracker,
    /// The executable shipped with each call, and how it travels; `None`
    /// when shipping is off or the runner runs this binary itself.
    shipped: Option<(Executable, Delivery)>,
    /// The builder's log mode, if it set one.
    log_mode: Option<LogMode>,
    /// Arguments up to this many bytes travel inline.
    inline_arguments_limit: usize,
}

/// How long [`Submitter::close`] waits for cancelled calls to wind down.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(dir) = self.owned_staging_dir.clone() {
            cleanup::in_background(move || {
                let _ = cleanup::remove_now(&dir);
            });
        }
    }
}

/// A staging store for [`SubmitterBuilder::staging`]: a location
/// (`"file:///dir"`, `"gs://bucket/prefix"`) or a store built in code
/// ([`crate::staging::LocalStaging`], `GcsStaging`, any
/// `Arc<dyn Staging>`).
pub trait IntoStaging {
    /// The store, or the location to open.
    #[doc(hidden)]
    fn into_staging(self) -> StagingChoice;
}

/// What [`IntoStaging`] gives: a location to open, or a store.
#[doc(hidden)]
#[derive(Debug)]
pub enum StagingChoice {
    /// A location, opened by [`SubmitterBuilder::build`].
    Location(String),
    /// A store built in code.
    Store(Arc<dyn Staging>),
}

impl IntoStaging for &str {
    fn into_staging(self) -> StagingChoice {
        StagingChoice::Location(self.to_owned())
    }
}

impl IntoStaging for String {
    fn into_staging(self) -> StagingChoice {
        StagingChoice::Location(self)
    }
}

impl IntoStaging for &String {
    fn into_staging(self) -> StagingChoice {
        StagingChoice::Location(self.clone())
    }
}

impl IntoStaging for Arc<dyn Staging> {
    fn into_staging(self) -> StagingChoice {
        StagingChoice::Store(self)
    }
}

/// Any store built in code: [`LocalStaging`], `GcsStaging`, or one of
/// your own.
impl<S: Staging + 'static> IntoStaging for S {
    fn into_staging(self) -> StagingChoice {
        StagingChoice::Store(Arc::new(self))
    }
}

/// Builds a [`Submitter`]: [`Submitter::builder`], then options, then
/// [`SubmitterBuilder::build`], which connects.
#[derive(Debug)]
#[must_use = "a SubmitterBuilder does nothing until .build().await"]
pub struct SubmitterBuilder<C> {
    cluster: C,
    staging: Option<StagingChoice>,
    executable: Option<PathBuf>,
    ship_executable: Option<bool>,
    log_mode: Option<LogMode>,
    inline_arguments_limit: usize,
}

impl<C: Cluster> SubmitterBuilder<C> {
    /// Where large payloads and outcomes are staged: a location
    /// (`"file:///dir"`, `"gs://bucket/prefix"`) or a store built in code.
    /// Without one, a temporary directory on this machine is used and
    /// removed with the submitter, where the cluster can read it (local
    /// processes, local Docker); Kubernetes clusters need a store their
    /// pods can read.
    pub fn staging(mut self, staging: impl IntoStaging) -> Self {
        self.staging = Some(staging.into_staging());
        self
    }

    /// The executable to ship with the calls instead of this one
    /// (`std::env::current_exe()`), e.g. a binary cross-built for the
    /// cluster's machines from the same source. Overrides `HYPE_EXECUTABLE`.
    pub fn executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.executable = Some(path.into());
        self
    }

    /// Whether to ship the executable with the calls (default: yes, unless
    /// `HYPE_SHIP_EXECUTABLE=0`). Shipping applies where calls run outside
    /// this process tree (Docker, Kubernetes); turn it off for images with
    /// the binary baked in.
    pub fn ship_executable(mut self, ship: bool) -> Self {
        self.ship_executable = Some(ship);
        self
    }

    /// What happens to the output of this submitter's calls, unless their
    /// environment says ([`RunEnvironment::with_log_mode`]). Unset, a
    /// single call streams ([`LogMode::Stream`]) and a fan-out shows a
    /// call's output only when it fails ([`LogMode::OnFailure`]).
    pub fn log_mode(mut self, mode: LogMode) -> Self {
        self.log_mode = Some(mode);
        self
    }

    /// Arguments up to this many encoded bytes travel inside the call (in
    /// a pod's spec on Kubernetes); larger ones are staged. Default
    /// [`INLINE_ARGUMENTS_LIMIT`] (16 KiB): every watch event and list of
    /// a pod resends its spec to every watcher, and whoever may read pods
    /// reads what is inline. At most [`MAX_INLINE_ARGUMENTS`] (64 KiB, so
    /// the `hype-run` argument stays under Linux's limit for one argument);
    /// 0 stages every argument. [`SubmitterBuilder::build`] refuses more.
    pub fn inline_arguments_limit(mut self, bytes: usize) -> Self {
        self.inline_arguments_limit = bytes;
        self
    }

    /// Connects to the cluster ([`Cluster::connect`], the one way every
    /// backend connects) and gives the submitter. The submitter and its
    /// runner share one session ID.
    pub async fn build(self) -> Result<Submitter, Error> {
        if self.inline_arguments_limit > MAX_INLINE_ARGUMENTS {
            return Err(Error::Config {
                message: format!(
                    "inline_arguments_limit({}) is more than {MAX_INLINE_ARGUMENTS} bytes, the most a call can carry inline; larger arguments are staged",
                    self.inline_arguments_limit
                ),
            });
        }
        BuildInfo::start_hashing();
        let (staging, owned) = match self.staging {
            Some(StagingChoice::Location(location)) => (staging::open(&location)?, None),
            Some(StagingChoice::Store(store)) => (store, None),
            None => {
                if let Some(reason) = self.cluster.needs_shared_staging() {
                    return Err(Error::Config {
                        message: format!(
                            "this cluster needs a staging store its executions can read: {reason}; pass one with Submitter::builder(cluster).staging(\"gs://bucket/prefix\")"
                        ),
                    });
                }
                let dir = cleanup::blocking(|| cleanup::temp_dir("hype-staging-"))
                    .await
                    .map_err(|err| Error::Config {
                        message: format!("cannot create a temporary staging directory: {err}"),
                    })?;
                let store: Arc<dyn Staging> = Arc::new(LocalStaging::new(dir.clone())?);
                (store, Some(dir))
            }
        };
        let session = ids::random_suffix(10);
        let connected = self
            .cluster
            .connect(Connection::new(staging.clone(), session.clone()))
            .await;
        let shipped = connected.and_then(|runner| {
            let shipped = shipping(
                runner.delivery(),
                self.ship_executable,
                self.executable.as_deref(),
            )?;
            Ok((runner, shipped))
        });
        let (runner, shipped) = match shipped {
            Ok(connected) => connected,
            Err(err) => {
                if let Some(dir) = owned {
                    let _ = cleanup::remove(dir).await;
                }
                return Err(err);
            }
        };
        let submitter = Submitter {
            inner: Arc::new(Inner {
                runner,
                staging,
                owned_staging_dir: owned,
                session,
                closed: CancellationToken::new(),
                calls: TaskTracker::new(),
                shipped,
                log_mode: self.log_mode,
                inline_arguments_limit: self.inline_arguments_limit,
            }),
        };
        let registered: std::sync::Weak<dyn crate::interrupt::Close> =
            Arc::downgrade(&submitter.inner) as _;
        crate::interrupt::register(registered);
        Ok(submitter)
    }
}

/// The executable to ship for a runner that gets it by `delivery`, checked
/// (and its hash started) now: `None` when the runner runs this binary
/// itself or shipping is off.
fn shipping(
    delivery: Delivery,
    ship: Option<bool>,
    path: Option<&std::path::Path>,
) -> Result<Option<(Executable, Delivery)>, Error> {
    if delivery == Delivery::Native || !ship.map_or_else(config::ship_executable, Ok)? {
        return Ok(None);
    }
    let path = match path.map(PathBuf::from).or_else(config::executable) {
        Some(path) => path,
        None => {
            let own = std::env::current_exe().map_err(|err| Error::Config {
                message: format!(
                    "cannot find this program's executable to ship with the calls ({err}); pass one with HYPE_EXECUTABLE=/path or SubmitterBuilder::executable(path)"
                ),
            })?;
            if !crate::entry::dispatches() {
                return Err(Error::ExecutableNotShippable {
                    path: own,
                    reason: "this program cannot run calls: its main does not dispatch hype-run (it is not #[hype::main] and does not call hype::dispatch_if_hype_run() first), as a test harness (cargo test) does not. Ship a program of yours that does".to_owned(),
                });
            }
            own
        }
    };
    let executable = Executable::inspect(path)?;
    if let Delivery::Mount { arch: Some(arch) } = delivery
        && arch != executable.arch()
    {
        return Err(Error::ExecutableNotShippable {
            path: executable.path().to_owned(),
            reason: format!(
                "it is an {} executable, but the Docker engine runs {} ({}); build it with --target {}",
                executable.arch(),
                arch,
                arch.go_name(),
                arch.rust_target()
            ),
        });
    }
    Ok(Some((executable, delivery)))
}

/// The staged blob of each executable in each store, staged once per
/// process: later calls and submitters of the same store reuse it.
type StagedExecutables =
    std::sync::Mutex<std::collections::HashMap<(String, String), Arc<OnceCell<wire::BlobRef>>>>;

/// Stages `executable` in `store` unless this process already has.
async fn staged_executable(
    store: &Arc<dyn Staging>,
    executable: &Executable,
) -> Result<wire::BlobRef, Error> {
    static STAGED: std::sync::OnceLock<StagedExecutables> = std::sync::OnceLock::new();
    let digest = executable.digest().await?;
    let cell = STAGED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((store.location().to_owned(), digest.sha256.clone()))
        .or_default()
        .clone();
    cell.get_or_try_init(|| store.put_file(executable.path(), &digest))
        .await
        .cloned()
}

impl Submitter {
    /// Starts building a submitter for `cluster`.
    pub fn builder<C: Cluster>(cluster: C) -> SubmitterBuilder<C> {
        SubmitterBuilder {
            cluster,
            staging: None,
            executable: None,
            ship_executable: None,
            log_mode: None,
            inline_arguments_limit: INLINE_ARGUMENTS_LIMIT,
        }
    }

    /// Connects to `cluster`, staging in `staging` (`file:///dir`,
    /// `gs://bucket/prefix`): the shortcut of
    /// `Submitter::builder(cluster).staging(staging).build()`.
    pub async fn new(staging: impl AsRef<str>, cluster: impl Cluster) -> Result<Submitter, Error> {
        Submitter::builder(cluster)
            .staging(staging.as_ref())
            .build()
            .await
    }

    /// The submitter `HYPE_CLUSTER` and `HYPE_STAGING` describe; local
    /// child processes with temporary staging when neither is set.
    pub async fn from_env() -> Result<Submitter, Error> {
        let spec = ClusterSpec::from_env()?;
        let staging = config::staging()?;
        match (&spec, staging) {
            (ClusterSpec::Local, None) => Submitter::builder(LocalCluster::new()).build().await,
            (ClusterSpec::Local, Some(staging)) => {
                Submitter::new(staging, LocalCluster::new()).await
            }
            #[cfg(feature = "docker")]
            (ClusterSpec::Docker, Some(staging)) => {
                Submitter::new(staging, crate::backend::docker::DockerCluster::new()).await
            }
            #[cfg(feature = "docker")]
            (ClusterSpec::Docker, None) => {
                Submitter::builder(crate::backend::docker::DockerCluster::new())
                    .build()
                    .await
            }
            #[cfg(feature = "kubernetes")]
            (ClusterSpec::Kube { context }, Some(staging)) => {
                let cluster = match context {
                    Some(context) => {
                        crate::backend::kubernetes::KubeCluster::new().context(context.clone())
                    }
                    None => crate::backend::kubernetes::KubeCluster::new(),
                };
                Submitter::new(staging, cluster).await
            }
            #[cfg(feature = "kubernetes")]
            (ClusterSpec::Kube { .. }, None) => Err(Error::Config {
                message: "HYPE_CLUSTER=kube needs HYPE_STAGING=gs://bucket/prefix (or another store the pods can read): pods cannot read this machine's temporary files".to_owned(),
            }),
            #[cfg(feature = "gcs")]
            (
                ClusterSpec::Gke {
                    project,
                    location,
                    cluster,
                },
                Some(staging),
            ) if staging.starts_with("gs://") => {
                let cluster = crate::backend::kubernetes::gke::ContainerEngineCluster::new(
                    project, location, cluster,
                );
                Submitter::new(staging, cluster).await
            }
            #[cfg(feature = "gcs")]
            (ClusterSpec::Gke { .. }, staging) => Err(Error::Config {
                message: format!(
                    "HYPE_CLUSTER=gke:... needs HYPE_STAGING=gs://bucket/prefix, a bucket the pods can read and write{}",
                    staging
                        .map(|s| format!(" (it is {s:?})"))
                        .unwrap_or_else(|| " (it is not set)".to_owned())
                ),
            }),
            // Unreachable when every backend feature is on.
            #[allow(unreachable_patterns)]
            (other, _) => Err(Error::Config {
                message: format!(
                    "HYPE_CLUSTER asks for {other:?}, which needs hype's `{}` feature; this build of hype does not have that runner yet",
                    other.feature().unwrap_or_default()
                ),
            }),
        }
    }

    /// Sets the process-wide default submitter used by
    /// [`Call::run_on_cluster`]. Fails if a default is already set, or was
    /// already created from the environment by an earlier call.
    ///
    /// The submitter keeps running on the runtime it was built on: set one
    /// built on the runtime that lives as long as the program (the one of
    /// `#[hype::main]`).
    pub fn set_default(submitter: Submitter) -> Result<(), Error> {
        default::set(submitter)
    }

    /// The default submitter: the one set with [`Submitter::set_default`],
    /// else one made with [`Submitter::from_env`] once for each tokio
    /// runtime (a submitter's tasks end with the runtime it was built on,
    /// so a second runtime, such as a second `#[tokio::test]`, gets a
    /// working one of its own).
    pub async fn default_submitter() -> Result<Submitter, Error> {
        default::get().await
    }

    /// Whether [`Submitter::close`] was called.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// This submitter's session ID (labels everything it creates).
    pub fn session(&self) -> &str {
        &self.inner.session
    }

    /// The staging store.
    pub fn staging(&self) -> &Arc<dyn Staging> {
        &self.inner.staging
    }

    /// Runs `call` in `env` and returns its typed result.
    pub async fn run<A: RemoteFn>(
        &self,
        call: Call<A>,
        env: &RunEnvironment,
    ) -> Result<A::Output, Error> {
        self.run_logged(call, env, LogMode::Stream).await
    }

    /// [`Submitter::run`], with `logs` as the log mode when neither the
    /// environment nor the builder set one (a fan-out passes
    /// [`LogMode::OnFailure`]).
    pub(crate) async fn run_logged<A: RemoteFn>(
        &self,
        call: Call<A>,
        env: &RunEnvironment,
        logs: LogMode,
    ) -> Result<A::Output, Error> {
        let envelope = self.call_envelope(call).await?;
        let text = Reference::Inline(wire::encode_call(&envelope)?).to_string();
        let logs = env.log_mode().or(self.inner.log_mode).unwrap_or(logs);
        let bytes = self.run_attempts(A::ID, text, env, logs).await?;
        wire::decode_value(A::ID, "result", &bytes)
    }

    /// Runs the encoded call, and again as a new execution after a backoff
    /// while it fails in a way `env` retries and retries are left
    /// ([`RunEnvironment::with_retries`]).
    async fn run_attempts(
        &self,
        function: &'static str,
        call: String,
        env: &RunEnvironment,
        logs: LogMode,
    ) -> Result<Vec<u8>, Error> {
        let mut attempts: Vec<Attempt> = Vec::new();
        loop {
            let execution_id = ids::execution_id(function);
            let started = std::time::Instant::now();
            let sink = LogSink::new(&execution_id, logs);
            let result = self
                .run_job(function, &execution_id, call.clone(), env, &sink)
                .await;
            sink.finish(result.is_err()).await;
            let err = match result {
                Ok(bytes) => return Ok(bytes),
                Err(err) => err,
            };
            if env.retries() == 0 || !env.is_retried(&err) {
                return Err(err);
            }
            let took = started.elapsed();
            attempts.push(Attempt {
                execution_id,
                error: err,
                took,
            });
            let done = u32::try_from(attempts.len()).unwrap_or(u32::MAX);
            if done > env.retries() {
                return Err(Error::RetriesExhausted {
                    function: function.to_owned(),
                    attempts,
                });
            }
            let delay = env.retry_delay(done);
            let Some(last) = attempts.last() else {
                continue;
            };
            tracing::warn!(
                function,
                execution_id = %last.execution_id,
                attempt = done,
                retries = env.retries(),
                ?delay,
                error = %last.error,
                "call lost; running it again"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.inner.closed.cancelled() => {
                    return Err(Error::Cancelled {
                        function: function.to_owned(),
                        execution_id: last.execution_id.clone(),
                        reason: "the submitter was closed while the call waited to be retried".to_owned(),
                    });
                }
            }
        }
    }

    /// The executable this submitter ships with its calls, if it ships one.
    pub fn shipped_executable(&self) -> Option<&std::path::Path> {
        self.inner.shipped.as_ref().map(|(exe, _)| exe.path())
    }

    /// Encodes a call, staging its arguments when they are large.
    async fn call_envelope<A: RemoteFn>(&self, call: Call<A>) -> Result<CallEnvelope, Error> {
        let arguments = wire::encode_value(A::ID, "arguments", call.args())?;
        let payload = if arguments.len() <= self.inner.inline_arguments_limit {
            Payload::Inline(wire::Bytes::from(arguments))
        } else {
            Payload::Staged(self.inner.staging.put_blob(arguments).await?)
        };
        let envelope = CallEnvelope::new(A::ID, A::SIGNATURE, payload)
            .with_staging(self.inner.staging.location());
        Ok(match &self.inner.shipped {
            Some((executable, Delivery::Staged)) => {
                envelope.with_executable(staged_executable(&self.inner.staging, executable).await?)
            }
            _ => envelope,
        })
    }

    /// The untyped lower half of [`Submitter::run`]: runs `hype-run` with
    /// `call` (`inline:<base64>` or a staging URI) exactly as given, as
    /// execution `execution_id`, and returns the encoded result. Panics and
    /// failures become their [`Error`]s. For tools that build envelopes
    /// themselves, and for the bad-input tests.
    pub async fn run_raw(
        &self,
        function: &'static str,
        execution_id: &str,
        call: String,
        env: &RunEnvironment,
    ) -> Result<Vec<u8>, Error> {
        let logs = env
            .log_mode()
            .or(self.inner.log_mode)
            .unwrap_or(LogMode::Stream);
        let sink = LogSink::new(execution_id, logs);
        let result = self.run_job(function, execution_id, call, env, &sink).await;
        sink.finish(result.is_err()).await;
        result
    }

    /// One execution of `call`, its output going to `sink`.
    async fn run_job(
        &self,
        function: &'static str,
        execution_id: &str,
        call: String,
        env: &RunEnvironment,
        sink: &Arc<LogSink>,
    ) -> Result<Vec<u8>, Error> {
        env.validate()?;
        let cancelled = |reason: &str| Error::Cancelled {
            function: function.to_owned(),
            execution_id: execution_id.to_owned(),
            reason: reason.to_owned(),
        };
        if self.inner.closed.is_cancelled() {
            return Err(cancelled("the submitter is closed"));
        }
        let mut job = Job::new(function, execution_id, call);
        job.logs = Arc::clone(sink);
        job.executable = self
            .inner
            .shipped
            .as_ref()
            .map(|(executable, _)| JobExecutable {
                path: executable.path().to_owned(),
                arch: executable.arch(),
            });
        // Tracked while it lives, so that `close` can wait for the
        // execution's cleanup (which runs when the runner's future drops).
        let running = self
            .inner
            .calls
            .track_future(self.inner.runner.run(job, env));
        let message = tokio::select! {
            result = running => result?,
            _ = self.inner.closed.cancelled() => {
                return Err(cancelled("the submitter was closed while the call ran"));
            }
        };
        let outcome = self.read_outcome(&message, execution_id).await?;
        self.resolve(function, execution_id, outcome).await
    }

    async fn read_outcome(
        &self,
        message: &str,
        execution_id: &str,
    ) -> Result<OutcomeEnvelope, Error> {
        match Reference::parse(message)? {
            Reference::Inline(bytes) => wire::decode_outcome(&bytes),
            Reference::Object(uri) => {
                staging::check_reported(
                    self.inner.staging.location(),
                    execution_id,
                    Reported::Outcome(&uri),
                )?;
                let bytes = self.inner.staging.get_object(&uri).await?;
                let outcome = wire::decode_outcome(&bytes)?;
                if let Err(err) = self.inner.staging.delete_object(&uri).await {
                    tracing::warn!(%uri, %err, "cannot delete a read outcome object");
                }
                Ok(outcome)
            }
        }
    }

    /// The result bytes of an outcome, or its error.
    async fn resolve(
        &self,
        function: &'static str,
        execution_id: &str,
        envelope: OutcomeEnvelope,
    ) -> Result<Vec<u8>, Error> {
        if !envelope.function.is_empty() && envelope.function != function {
            return Err(Error::malformed(
                "outcome envelope",
                format!(
                    "it is the outcome of {}, not of {function}",
                    envelope.function
                ),
            ));
        }
        match envelope.outcome {
            Outcome::Returned(Payload::Inline(bytes)) => Ok(bytes.into_vec()),
            Outcome::Returned(Payload::Staged(blob)) => {
                staging::check_reported(
                    self.inner.staging.location(),
                    execution_id,
                    Reported::Blob(&blob),
                )?;
                self.inner.staging.get_blob(&blob).await
            }
            Outcome::Panicked { message, location } => Err(Error::RemotePanic {
                function: function.to_owned(),
                message,
                location,
                execution_id: envelope.execution_id,
            }),
            Outcome::Failed(failure) => Err(failure.into_error(function, &envelope.execution_id)),
        }
    }

    /// Cancels the calls in flight (they fail with [`Error::Cancelled`] and
    /// their executions are stopped), refuses new ones, and removes what the
    /// submitter created for itself.
    pub async fn close(&self) -> Result<(), Error> {
        self.inner.close().await
    }
}

impl Inner {
    /// [`Submitter::close`].
    async fn close(&self) -> Result<(), Error> {
        self.closed.cancel();
        // Each cancelled call drops its execution (and the runner's cleanup
        // of it) on its own task: wait for them before releasing the rest.
        self.calls.close();
        if tokio::time::timeout(CLOSE_WAIT, self.calls.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                calls = self.calls.len(),
                "calls still winding down after {CLOSE_WAIT:?}; closing anyway"
            );
        }
        let closed = self.runner.close().await;
        if let Some(dir) = self.owned_staging_dir.clone()
            && let Err(err) = cleanup::remove(dir.clone()).await
        {
            tracing::warn!(dir = %dir.display(), %err, "cannot remove the temporary staging directory");
        }
        closed
    }
}

/// What the close on interrupt sees of a submitter.
impl crate::interrupt::Close for Inner {
    fn session(&self) -> &str {
        &self.session
    }

    fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    fn calls_in_flight(&self) -> usize {
        self.calls.len()
    }

    fn close(&self) -> futures::future::BoxFuture<'_, Result<(), Error>> {
        Box::pin(Inner::close(self))
    }
}

impl<A: RemoteFn> Call<A> {
    /// Runs the call with the process-wide default submitter (set by
    /// [`Submitter::set_default`], else read once from `HYPE_CLUSTER` and
    /// `HYPE_STAGING`, else local child processes).
    pub async fn run_on_cluster(self, env: &RunEnvironment) -> Result<A::Output, Error> {
        let submitter = Submitter::default_submitter().await?;
        submitter.run(self, env).await
    }
}
