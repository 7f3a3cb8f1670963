//! The [`Submitter`]: sends calls to a cluster and brings back typed
//! results. It encodes the arguments (staging them when large), hands the
//! call to its runner, reads the outcome (fetching a staged result), and
//! turns every failure into a precise [`Error`].
//!
//! [`Submitter::builder`] connects a [`Cluster`](crate::Cluster) with a
//! staging store; [`Submitter::new`] is the shortcut of spotify/hype's
//! `Submitter.create(bucket, cluster)`. [`Call::run_on_cluster`] uses the
//! process-wide default submitter.
//!
//! This file is the submitter itself: running a call (its attempts, one
//! execution, reading the outcome) and closing. `builder` builds one
//! ([`SubmitterBuilder`]: the staging store, whether to ship the
//! executable); `default` is the process-wide default submitter.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument as _;

use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::{Delivery, Job, JobExecutable, Runner};
use crate::cleanup;
use crate::environment::RunEnvironment;
use crate::error::{Attempt, Error};
use crate::executable::Executable;
use crate::ids;
use crate::logs::{LogMode, LogSink};
use crate::phases::{PhaseRecorder, Phases};
use crate::remote::{Call, RemoteFn};
use crate::staging::{self, Reported, Staging};
use crate::wire::{self, CallEnvelope, Outcome, OutcomeEnvelope, Payload, Reference};

mod builder;
mod default;
mod recent;

pub use builder::{IntoStaging, SubmitterBuilder};

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
    /// The phases of the latest calls ([`Submitter::last_phases`]).
    recent: recent::Recent,
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

    /// Runs `call` in `env` and returns its typed result. The function's
    /// `#[hype::remote(…)]` defaults apply where `env` does not set their
    /// key ([`FunctionDefaults`](crate::FunctionDefaults)).
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
        self.run_recorded(call, env, logs, None).await.0
    }

    /// [`Submitter::run_logged`], giving the call's phases too; a fan-out
    /// passes the instant it began as `queued_since`, from which its calls
    /// wait for a slot.
    pub(crate) async fn run_recorded<A: RemoteFn>(
        &self,
        call: Call<A>,
        env: &RunEnvironment,
        logs: LogMode,
        queued_since: Option<Instant>,
    ) -> (Result<A::Output, Error>, Option<Arc<Phases>>) {
        let began = queued_since.unwrap_or_else(Instant::now);
        // The function's attribute defaults, under the call's environment.
        let env = &env.clone().with_function_defaults(&A::DEFAULTS);
        let text =
            match self.call_envelope(call).await.and_then(|envelope| {
                Ok(Reference::Inline(wire::encode_call(&envelope)?).to_string())
            }) {
                Ok(text) => text,
                Err(err) => return (Err(err), None),
            };
        let logs = env.log_mode().or(self.inner.log_mode).unwrap_or(logs);
        // The trace context goes out as the caller's, from outside the
        // call's own `hype.call` span.
        let mut template = Job::new(A::ID, String::new(), text);
        template.env = crate::trace::outgoing();
        let span = tracing::info_span!(
            "hype.call",
            function = A::ID,
            execution_id = tracing::field::Empty,
            attempt = tracing::field::Empty
        );
        let mut phases = Phases::new(A::ID);
        let result = self
            .run_attempts(template, env, logs, began, &mut phases)
            .instrument(span)
            .await;
        let phases = Arc::new(phases);
        self.inner.recent.keep(Arc::clone(&phases));
        let result = result.and_then(|bytes| wire::decode_value(A::ID, "result", &bytes));
        (result, Some(phases))
    }

    /// Runs the encoded call (`template`, a job of no execution yet), and
    /// again as a new execution after a backoff
    /// while it fails in a way `env` retries and retries are left
    /// ([`RunEnvironment::with_retries`]), recording each attempt's phases
    /// in `phases` (the first attempt's from `began`) and in the current
    /// `hype.call` span's fields.
    async fn run_attempts(
        &self,
        template: Job,
        env: &RunEnvironment,
        logs: LogMode,
        mut began: Instant,
        phases: &mut Phases,
    ) -> Result<Vec<u8>, Error> {
        let function = template.function;
        let mut attempts: Vec<Attempt> = Vec::new();
        loop {
            let execution_id = ids::execution_id(function);
            let span = tracing::Span::current();
            span.record("execution_id", execution_id.as_str());
            span.record("attempt", attempts.len() + 1);
            let recorder = PhaseRecorder::default();
            let started = Instant::now();
            let sink = LogSink::new(&execution_id, logs);
            let mut job = template.clone();
            job.execution_id.clone_from(&execution_id);
            job.logs = Arc::clone(&sink);
            job.phases = recorder.clone();
            let result = self.run_job(job, env).await;
            sink.finish(result.is_err()).await;
            let attempt = recorder.finish(
                &execution_id,
                u32::try_from(attempts.len() + 1).unwrap_or(u32::MAX),
                began,
                Instant::now(),
                result.as_ref().err().map(Error::kind),
            );
            attempt.trace();
            phases.push(attempt);
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
                _ = tokio::time::sleep(delay) => began = Instant::now(),
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
        let mut job = Job::new(function, execution_id, call);
        job.logs = Arc::clone(&sink);
        job.env = crate::trace::outgoing();
        let result = self.run_job(job, env).await;
        sink.finish(result.is_err()).await;
        result
    }

    /// One execution: `job`, its output going to its log sink, its phases
    /// to its recorder, its executable added here.
    async fn run_job(&self, mut job: Job, env: &RunEnvironment) -> Result<Vec<u8>, Error> {
        let function = job.function;
        let execution_id = job.execution_id.clone();
        let execution_id = execution_id.as_str();
        let phases = job.phases.clone();
        env.validate()?;
        let cancelled = |reason: &str| Error::Cancelled {
            function: function.to_owned(),
            execution_id: execution_id.to_owned(),
            reason: reason.to_owned(),
        };
        if self.inner.closed.is_cancelled() {
            return Err(cancelled("the submitter is closed"));
        }
        job.executable = match &self.inner.shipped {
            None => None,
            Some((executable, delivery)) => Some(JobExecutable {
                path: executable.path().to_owned(),
                arch: executable.arch(),
                // Staged once per store and digest: this is the cached blob.
                blob: match delivery {
                    Delivery::Staged => {
                        Some(staged_executable(&self.inner.staging, executable).await?)
                    }
                    _ => None,
                },
            }),
        };
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
        if let Some(timings) = outcome.timings {
            phases.remote(timings);
        }
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
