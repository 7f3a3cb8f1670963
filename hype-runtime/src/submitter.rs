//! The [`Submitter`]: sends calls to a cluster and brings back typed
//! results. It encodes the arguments (staging them when large), hands the
//! call to its runner, reads the outcome (fetching a staged result), and
//! turns every failure into a precise [`Error`].

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{OnceCell, watch};

use crate::cleanup;
use crate::cluster::{Cluster, ClusterSpec, Connection, LocalCluster};
use crate::environment::RunEnvironment;
use crate::error::Error;
use crate::ids;
use crate::remote::{Call, RemoteFn};
use crate::runner::{Job, Runner};
use crate::staging::{self, LocalStaging, Staging};
use crate::wire::{
    self, BuildInfo, CallEnvelope, INLINE_ARGUMENTS_LIMIT, Outcome, OutcomeEnvelope, Payload,
    Reference,
};

static DEFAULT: OnceCell<Submitter> = OnceCell::const_new();

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
/// let submitter = Submitter::new("file:///tmp/hype-staging", LocalCluster::new()).await?;
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
    closed: watch::Sender<bool>,
    /// How many calls are running; `close` waits for it to reach zero.
    in_flight: watch::Sender<usize>,
}

/// Counts a call as in flight while it lives.
struct InFlight<'a>(&'a watch::Sender<usize>);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a watch::Sender<usize>) -> Self {
        counter.send_modify(|n| *n += 1);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// How long [`Submitter::close`] waits for cancelled calls to wind down.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(dir) = &self.owned_staging_dir {
            let _ = cleanup::remove_now(dir);
        }
    }
}

impl Submitter {
    /// Connects to `cluster`, staging in `staging` (`file:///dir`,
    /// `gs://bucket/prefix`).
    pub async fn new(staging: impl AsRef<str>, cluster: impl Cluster) -> Result<Submitter, Error> {
        let staging = staging::open(staging.as_ref())?;
        let session = ids::random_suffix(10);
        let runner = cluster
            .connect(Connection {
                staging: staging.clone(),
                session: session.clone(),
            })
            .await?;
        Ok(Submitter::assemble(runner, staging, None, session))
    }

    /// Child processes of this binary, staging in a temporary directory
    /// removed when the submitter is dropped: the embedded default.
    pub fn local() -> Result<Submitter, Error> {
        Submitter::local_with(LocalCluster::new())
    }

    /// Child processes as configured, staging in a temporary directory.
    pub fn local_with(cluster: LocalCluster) -> Result<Submitter, Error> {
        let dir = cleanup::temp_dir("hype-staging-").map_err(|err| Error::Config {
            message: format!("cannot create a temporary staging directory: {err}"),
        })?;
        let staging: Arc<dyn Staging> = Arc::new(LocalStaging::new(dir.clone())?);
        let runner = Arc::new(cluster.into_runner()?);
        Ok(Submitter::assemble(
            runner,
            staging,
            Some(dir),
            ids::random_suffix(10),
        ))
    }

    /// Connects to `cluster`, staging in a temporary directory removed when
    /// the submitter is dropped (as [`Submitter::local`] does).
    #[cfg(feature = "docker")]
    async fn with_temporary_staging(cluster: impl Cluster) -> Result<Submitter, Error> {
        let dir = cleanup::temp_dir("hype-staging-").map_err(|err| Error::Config {
            message: format!("cannot create a temporary staging directory: {err}"),
        })?;
        let staging: Arc<dyn Staging> = Arc::new(LocalStaging::new(dir.clone())?);
        let session = ids::random_suffix(10);
        let connected = cluster
            .connect(Connection {
                staging: staging.clone(),
                session: session.clone(),
            })
            .await;
        match connected {
            Ok(runner) => Ok(Submitter::assemble(runner, staging, Some(dir), session)),
            Err(err) => {
                let _ = cleanup::remove_now(&dir);
                Err(err)
            }
        }
    }

    /// A submitter over a runner and store built by hand (tools, tests,
    /// custom runners).
    pub fn with_runner(runner: Arc<dyn Runner>, staging: Arc<dyn Staging>) -> Submitter {
        Submitter::assemble(runner, staging, None, ids::random_suffix(10))
    }

    fn assemble(
        runner: Arc<dyn Runner>,
        staging: Arc<dyn Staging>,
        owned: Option<PathBuf>,
        session: String,
    ) -> Submitter {
        Submitter {
            inner: Arc::new(Inner {
                runner,
                staging,
                owned_staging_dir: owned,
                session,
                closed: watch::Sender::new(false),
                in_flight: watch::Sender::new(0),
            }),
        }
    }

    /// The submitter `HYPE_CLUSTER` and `HYPE_STAGING` describe; local
    /// child processes with temporary staging when neither is set.
    pub async fn from_env() -> Result<Submitter, Error> {
        let spec = ClusterSpec::from_env()?;
        let staging = std::env::var("HYPE_STAGING").ok().filter(|s| !s.is_empty());
        match (&spec, staging) {
            (ClusterSpec::Local, None) => Submitter::local(),
            (ClusterSpec::Local, Some(staging)) => {
                Submitter::new(staging, LocalCluster::new()).await
            }
            #[cfg(feature = "docker")]
            (ClusterSpec::Docker, Some(staging)) => {
                Submitter::new(staging, crate::cluster::DockerCluster::new()).await
            }
            #[cfg(feature = "docker")]
            (ClusterSpec::Docker, None) => {
                Submitter::with_temporary_staging(crate::cluster::DockerCluster::new()).await
            }
            #[cfg(feature = "kubernetes")]
            (ClusterSpec::Kube { context }, Some(staging)) => {
                let cluster = match context {
                    Some(context) => crate::cluster::KubeCluster::new().context(context.clone()),
                    None => crate::cluster::KubeCluster::new(),
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
                let cluster =
                    crate::cluster::ContainerEngineCluster::new(project, location, cluster);
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
    pub fn set_default(submitter: Submitter) -> Result<(), Error> {
        DEFAULT.set(submitter).map_err(|_| Error::Config {
            message: "a default submitter is already set (or was created from HYPE_CLUSTER by an earlier run_on_cluster): set it once, before the first call".to_owned(),
        })
    }

    /// The process-wide default submitter: the one set with
    /// [`Submitter::set_default`], else [`Submitter::from_env`], created once.
    pub async fn default_submitter() -> Result<Submitter, Error> {
        DEFAULT.get_or_try_init(Submitter::from_env).await.cloned()
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
        let envelope = self.call_envelope(call).await?;
        let text = Reference::Inline(wire::encode_call(&envelope)?).to_string();
        let execution_id = ids::execution_id(A::ID);
        let bytes = self.run_raw(A::ID, &execution_id, text, env).await?;
        wire::decode_value(A::ID, "result", &bytes)
    }

    /// Encodes a call, staging its arguments when they are large.
    async fn call_envelope<A: RemoteFn>(&self, call: Call<A>) -> Result<CallEnvelope, Error> {
        let arguments = wire::encode_value(A::ID, "arguments", call.args())?;
        let payload = if arguments.len() <= INLINE_ARGUMENTS_LIMIT {
            Payload::Inline(wire::Bytes::from(arguments))
        } else {
            Payload::Staged(self.inner.staging.put_blob(arguments).await?)
        };
        Ok(CallEnvelope {
            function: A::ID.to_owned(),
            signature: A::SIGNATURE,
            build: BuildInfo::current(),
            staging: Some(self.inner.staging.location().to_owned()),
            payload,
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
        env.validate()?;
        let cancelled = |reason: &str| Error::Cancelled {
            function: function.to_owned(),
            execution_id: execution_id.to_owned(),
            reason: reason.to_owned(),
        };
        let _in_flight = InFlight::enter(&self.inner.in_flight);
        let mut closed = self.inner.closed.subscribe();
        if *closed.borrow() {
            return Err(cancelled("the submitter is closed"));
        }
        let job = Job {
            function,
            execution_id: execution_id.to_owned(),
            call,
        };
        let message = tokio::select! {
            result = self.inner.runner.run(job, env) => result?,
            _ = closed.wait_for(|closed| *closed) => {
                return Err(cancelled("the submitter was closed while the call ran"));
            }
        };
        let outcome = self.read_outcome(&message).await?;
        self.resolve(function, outcome).await
    }

    async fn read_outcome(&self, message: &str) -> Result<OutcomeEnvelope, Error> {
        match Reference::parse(message)? {
            Reference::Inline(bytes) => wire::decode_outcome(&bytes),
            Reference::Object(uri) => {
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
            Outcome::Returned(Payload::Staged(blob)) => self.inner.staging.get_blob(&blob).await,
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
        self.inner.closed.send_replace(true);
        // Each cancelled call drops its execution (and the runner's cleanup
        // of it) on its own task: wait for them before releasing the rest.
        let mut in_flight = self.inner.in_flight.subscribe();
        if tokio::time::timeout(CLOSE_WAIT, in_flight.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            tracing::warn!(
                calls = *in_flight.borrow(),
                "calls still winding down after {CLOSE_WAIT:?}; closing anyway"
            );
        }
        self.inner.runner.close().await
    }
}
