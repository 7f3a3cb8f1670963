//! The Kubernetes runner: each call is a pod whose `hype-run` container
//! executes it (the `kubernetes` feature).
//!
//! A call's path: its claims are made sure of ([`volumes`]), its pod is
//! built ([`pod`]) and created (bounded retries of transient API errors,
//! [`retry`]), the submitter's shared watch ([`watch`]) wakes the call on
//! every change of its pod, and the pod's status is read ([`status`]) until
//! the container ends or something is diagnosed: an image that cannot be
//! pulled or a missing secret fail fast, an unschedulable pod fails after
//! the pending timeout with the scheduler's message, and OOM kills,
//! evictions, deletions by someone else and the deadline each have their
//! own error. The outcome comes from the termination message. The pod is
//! deleted once it is read, when the call's future is dropped, and on
//! timeout; transient claims go when the submitter closes.
//!
//! On drop of the last submitter clone without [`crate::Submitter::close`],
//! pods of calls still in flight are deleted by background tasks (when a
//! tokio runtime is still running) but transient claims stay: close the
//! submitter to remove them. Everything hype creates carries the labels
//! `app.kubernetes.io/managed-by=hype` and `hype.dev/session=<session>`, so
//! leftovers can be found with `kubectl get pods,pvc -l app.kubernetes.io/managed-by=hype`.

pub mod pod;
pub mod retry;
pub mod status;
pub mod volumes;
pub mod watch;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, LogParams, PostParams};

use self::status::Progress;
use self::watch::{PodEvent, PodWatcher};
use super::{Job, Runner};
use crate::cluster::{Cluster, Connection};
use crate::environment::RunEnvironment;
use crate::error::Error;
use crate::staging::BoxFuture;
use crate::wire::{EXIT_PANICKED, Failure};

/// How long a pod may stay unschedulable before its call fails, unless set
/// with [`KubeCluster::pending_timeout`].
pub const DEFAULT_PENDING_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long a call waits for its pod to be gone when that matters (the pod
/// mounted a claim read-write, and readers may be scheduled next).
pub const DELETION_WAIT: Duration = Duration::from_secs(120);
/// How many log lines a failed call's error carries.
const LOG_TAIL_LINES: i64 = 20;

/// A Kubernetes cluster reached through kubeconfig or the in-cluster
/// configuration.
///
/// ```no_run
/// # async fn demo() -> Result<(), hype_runtime::Error> {
/// use hype_runtime::{KubeCluster, Submitter};
/// let cluster = KubeCluster::new().context("my-context").namespace("batch");
/// let submitter = Submitter::new("gs://my-bucket/hype", cluster).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KubeCluster {
    source: Source,
    namespace: Option<String>,
    pending_timeout: Duration,
    keep_pods: bool,
}

#[derive(Clone)]
enum Source {
    Infer { context: Option<String> },
    Client(kube::Client),
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::Infer { context } => format!("infer(context: {context:?})"),
            Source::Client(_) => "client".to_owned(),
        };
        f.debug_struct("KubeCluster")
            .field("source", &source)
            .field("namespace", &self.namespace)
            .field("pending_timeout", &self.pending_timeout)
            .field("keep_pods", &self.keep_pods)
            .finish()
    }
}

impl Default for KubeCluster {
    fn default() -> Self {
        KubeCluster::new()
    }
}

impl KubeCluster {
    /// The cluster of the current kubeconfig context, or the in-cluster
    /// configuration inside a pod (`kube::Config::infer`).
    pub fn new() -> Self {
        KubeCluster {
            source: Source::Infer { context: None },
            namespace: None,
            pending_timeout: DEFAULT_PENDING_TIMEOUT,
            keep_pods: false,
        }
    }

    /// The cluster of a named kubeconfig context.
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.source = Source::Infer {
            context: Some(context.into()),
        };
        self
    }

    /// A cluster behind an existing client (its default namespace unless
    /// [`KubeCluster::namespace`] says otherwise).
    pub fn from_client(client: kube::Client) -> Self {
        KubeCluster {
            source: Source::Client(client),
            ..KubeCluster::new()
        }
    }

    /// The namespace of the pods and claims (default: the configuration's,
    /// else `default`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// How long a pod may stay unschedulable before its call fails with
    /// [`Error::Unschedulable`].
    pub fn pending_timeout(mut self, timeout: Duration) -> Self {
        self.pending_timeout = timeout;
        self
    }

    /// Keeps finished pods instead of deleting them, for debugging.
    pub fn keep_pods(mut self, keep: bool) -> Self {
        self.keep_pods = keep;
        self
    }

    async fn client(&self) -> Result<(kube::Client, String), Error> {
        let config_error = |err: String| Error::Config {
            message: format!("cannot configure the Kubernetes client: {err}"),
        };
        let client = match &self.source {
            Source::Client(client) => client.clone(),
            Source::Infer { context } => {
                let config = match context {
                    None => kube::Config::infer()
                        .await
                        .map_err(|e| config_error(e.to_string()))?,
                    Some(context) => {
                        kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
                            context: Some(context.clone()),
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| config_error(format!("context {context}: {e}")))?
                    }
                };
                kube::Client::try_from(config).map_err(|e| config_error(e.to_string()))?
            }
        };
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        Ok((client, namespace))
    }
}

impl Cluster for KubeCluster {
    fn connect(self, connection: Connection) -> BoxFuture<'static, Result<Arc<dyn Runner>, Error>> {
        Box::pin(async move {
            let (client, namespace) = self.client().await?;
            let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(client, &namespace);
            let watcher =
                PodWatcher::start(pods.clone(), pod::session_selector(&connection.session)).await?;
            tracing::debug!(%namespace, session = %connection.session, "connected to Kubernetes");
            Ok(Arc::new(KubernetesRunner {
                pods,
                volumes: volumes::Volumes::new(claims, &connection.session),
                watcher,
                session: connection.session,
                namespace,
                pending_timeout: self.pending_timeout,
                keep_pods: self.keep_pods,
                deletions: Arc::default(),
            }) as Arc<dyn Runner>)
        })
    }
}

/// Runs each call as a pod. Built by [`KubeCluster`].
#[derive(Debug)]
pub struct KubernetesRunner {
    pods: Api<Pod>,
    volumes: volumes::Volumes,
    watcher: PodWatcher,
    session: String,
    namespace: String,
    pending_timeout: Duration,
    keep_pods: bool,
    deletions: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl KubernetesRunner {
    /// The namespace pods run in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// How many watch connections the shared watch has opened.
    pub fn watch_connections(&self) -> usize {
        self.watcher.connections()
    }

    async fn run_job(&self, job: Job, env: &RunEnvironment) -> Result<String, Error> {
        let pod = pod::build(&pod::PodRequest {
            name: &job.execution_id,
            function: job.function,
            session: &self.session,
            call: &job.call,
            env,
        })?;
        for mount in env.mounts() {
            self.volumes.ensure(&mount.volume).await?;
        }
        let writes_a_claim = env.mounts().iter().any(|m| !m.read_only);
        let name = job.execution_id.clone();
        let mut events = self.watcher.register(&name);
        let mut guard = PodGuard {
            pods: self.pods.clone(),
            name: name.clone(),
            armed: false,
            deletions: self.deletions.clone(),
        };
        let _registration = Unregister(&self.watcher, &name);

        let operation = format!("create pod {name}");
        let post = PostParams::default();
        retry::bounded(&operation, || self.pods.create(&post, &pod)).await?;
        guard.armed = !self.keep_pods;
        tracing::debug!(function = job.function, pod = %name, "created");

        let waited = tokio::time::timeout(env.timeout(), self.wait(&job, &mut events)).await;
        let result = match waited {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                function: job.function.to_owned(),
                execution_id: name.clone(),
                after: env.timeout(),
            }),
        };
        if matches!(result, Err(Error::DeletedExternally { .. })) {
            guard.armed = false;
        }
        if guard.armed {
            guard.armed = false;
            self.delete(&name).await;
            if writes_a_claim {
                // Readers of the claim may be scheduled on other nodes next:
                // return once the writer is gone and its volume can detach.
                wait_deleted(&mut events, DELETION_WAIT).await;
            }
        }
        result
    }

    /// Waits until the pod's container ends or its status says why it
    /// cannot; gives the termination message.
    async fn wait(
        &self,
        job: &Job,
        events: &mut tokio::sync::watch::Receiver<PodEvent>,
    ) -> Result<String, Error> {
        let name = job.execution_id.as_str();
        let function = job.function.to_owned();
        let mut unschedulable_since: Option<tokio::time::Instant> = None;
        loop {
            let event = events.borrow_and_update().clone();
            let progress = match &event {
                PodEvent::Unseen => Progress::Waiting {
                    unschedulable: None,
                },
                PodEvent::Seen(pod) | PodEvent::Deleted(pod) => {
                    let progress = status::progress(pod);
                    // Only hype's own deletion is silent, and it happens after
                    // this wait: a pod going away now was deleted by someone
                    // else, unless it had already written its outcome.
                    let going = matches!(event, PodEvent::Deleted(_))
                        || pod.metadata.deletion_timestamp.is_some();
                    if going && !has_outcome(&progress) {
                        return Err(Error::DeletedExternally {
                            function,
                            execution_id: name.to_owned(),
                        });
                    }
                    progress
                }
            };
            let mut pending_deadline = None;
            match progress {
                Progress::Waiting {
                    unschedulable: None,
                } => unschedulable_since = None,
                Progress::Waiting {
                    unschedulable: Some(message),
                } => {
                    let since = *unschedulable_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= self.pending_timeout {
                        return Err(Error::Unschedulable {
                            function,
                            execution_id: name.to_owned(),
                            message,
                            after: self.pending_timeout,
                        });
                    }
                    pending_deadline = Some(since + self.pending_timeout);
                }
                Progress::Terminated {
                    exit_code,
                    reason,
                    message,
                } => {
                    return self.outcome(job, exit_code, reason, message).await;
                }
                Progress::ImageUnavailable {
                    image,
                    reason,
                    message,
                } => {
                    return Err(Error::ImageUnavailable {
                        function,
                        execution_id: name.to_owned(),
                        image,
                        reason,
                        message,
                    });
                }
                Progress::ContainerConfig { reason, message } => {
                    return Err(Error::ContainerConfig {
                        function,
                        execution_id: name.to_owned(),
                        reason,
                        message,
                    });
                }
                Progress::OutOfMemory => {
                    let limit = job_memory_limit(&event);
                    return Err(Error::OutOfMemory {
                        function,
                        execution_id: name.to_owned(),
                        limit,
                    });
                }
                Progress::Evicted { message } => {
                    return Err(Error::Evicted {
                        function,
                        execution_id: name.to_owned(),
                        message,
                    });
                }
                Progress::DeadlineExceeded => {
                    let after = match &event {
                        PodEvent::Seen(pod) | PodEvent::Deleted(pod) => pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.active_deadline_seconds)
                            .map(|s| Duration::from_secs(s.max(0) as u64))
                            .unwrap_or_default(),
                        PodEvent::Unseen => Duration::ZERO,
                    };
                    return Err(Error::Timeout {
                        function,
                        execution_id: name.to_owned(),
                        after,
                    });
                }
                Progress::FailedOtherwise { status } => {
                    return Err(Error::RunnerFailed {
                        function,
                        execution_id: name.to_owned(),
                        stderr_tail: self.log_tail(name).await,
                        status,
                    });
                }
            }
            let changed = events.changed();
            let result = match pending_deadline {
                Some(deadline) => tokio::select! {
                    changed = changed => changed,
                    _ = tokio::time::sleep_until(deadline) => continue,
                },
                None => changed.await,
            };
            if result.is_err() {
                return Err(Error::Cluster {
                    operation: format!("watch pod {name}"),
                    message: "the shared watch stopped".to_owned(),
                });
            }
        }
    }

    /// The termination message of an ended container, or the error it
    /// stands for.
    async fn outcome(
        &self,
        job: &Job,
        exit_code: i32,
        reason: Option<String>,
        message: Option<String>,
    ) -> Result<String, Error> {
        // An outcome written by hype-run (inline or a staged URI); with
        // FallbackToLogsOnError the message may instead be the log tail.
        if let Some(message) = message.as_deref()
            && crate::wire::Reference::parse(message).is_ok()
        {
            return Ok(message.to_owned());
        }
        let meaning = match exit_code {
            EXIT_PANICKED => Some("panicked"),
            code => Failure::describe_exit_code(code),
        };
        let status = format!(
            "container exited with code {exit_code}{}{} without writing an outcome",
            meaning.map(|m| format!(" ({m})")).unwrap_or_default(),
            reason.map(|r| format!(", reason {r}")).unwrap_or_default(),
        );
        let stderr_tail = match message {
            Some(logs) => logs,
            None => self.log_tail(&job.execution_id).await,
        };
        Err(Error::RunnerFailed {
            function: job.function.to_owned(),
            execution_id: job.execution_id.clone(),
            status,
            stderr_tail,
        })
    }

    async fn log_tail(&self, name: &str) -> String {
        let params = LogParams {
            container: Some(pod::CONTAINER.to_owned()),
            tail_lines: Some(LOG_TAIL_LINES),
            ..LogParams::default()
        };
        match tokio::time::timeout(Duration::from_secs(10), self.pods.logs(name, &params)).await {
            Ok(Ok(logs)) => logs.trim_end().to_owned(),
            Ok(Err(err)) => format!("(logs unavailable: {err})"),
            Err(_) => "(logs unavailable: no answer within 10s)".to_owned(),
        }
    }

    async fn delete(&self, name: &str) {
        if let Err(err) = delete_pod(&self.pods, name).await {
            tracing::warn!(pod = %name, %err, "cannot delete pod");
        }
    }
}

/// Whether a pod's progress holds an outcome written by `hype-run`.
fn has_outcome(progress: &Progress) -> bool {
    matches!(progress, Progress::Terminated { message: Some(m), .. } if crate::wire::Reference::parse(m).is_ok())
}

fn job_memory_limit(event: &PodEvent) -> Option<String> {
    let (PodEvent::Seen(pod) | PodEvent::Deleted(pod)) = event else {
        return None;
    };
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == pod::CONTAINER)?
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("memory")
        .map(|q| q.0.clone())
}

async fn delete_pod(pods: &Api<Pod>, name: &str) -> Result<(), Error> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    retry::bounded(&format!("delete pod {name}"), || async {
        match pods.delete(name, &params).await {
            Err(err) if retry::is_not_found(&err) => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await
}

/// Waits (bounded) until the watch reports the pod deleted.
async fn wait_deleted(events: &mut tokio::sync::watch::Receiver<PodEvent>, bound: Duration) {
    let gone = async {
        loop {
            if matches!(*events.borrow_and_update(), PodEvent::Deleted(_)) {
                return;
            }
            if events.changed().await.is_err() {
                return;
            }
        }
    };
    if tokio::time::timeout(bound, gone).await.is_err() {
        tracing::warn!(?bound, "pod not gone yet; going on");
    }
}

/// Deletes the pod of a call whose future was dropped.
struct PodGuard {
    pods: Api<Pod>,
    name: String,
    armed: bool,
    deletions: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(pod = %self.name, "no runtime to delete the pod of a dropped call");
            return;
        };
        let (pods, name) = (self.pods.clone(), std::mem::take(&mut self.name));
        let task = handle.spawn(async move {
            if let Err(err) = delete_pod(&pods, &name).await {
                tracing::warn!(pod = %name, %err, "cannot delete the pod of a dropped call");
            }
        });
        let mut deletions = self.deletions.lock().unwrap_or_else(|e| e.into_inner());
        deletions.retain(|t| !t.is_finished());
        deletions.push(task);
    }
}

struct Unregister<'a>(&'a PodWatcher, &'a str);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0.unregister(self.1);
    }
}

impl Runner for KubernetesRunner {
    fn run<'a>(
        &'a self,
        job: Job,
        env: &'a RunEnvironment,
    ) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(self.run_job(job, env))
    }

    fn close(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            // Calls in flight were dropped by the submitter: let their pods' deletions finish.
            let tasks =
                std::mem::take(&mut *self.deletions.lock().unwrap_or_else(|e| e.into_inner()));
            for task in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(60), task).await;
            }
            self.volumes.delete_transient().await
        })
    }
}
