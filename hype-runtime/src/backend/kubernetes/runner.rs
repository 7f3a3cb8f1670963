//! The Kubernetes runner: one pod per call, or the environment's warm
//! workers ([`workers`](super::workers)) when it has them. It makes sure of the call's
//! claims, builds and creates the pod (bounded retries; a 409 on a retried
//! create adopts the pod when it carries this call's marker), waits on the
//! shared watch until the container ends or its status is diagnosed, reads
//! the outcome from the termination message, and deletes the pod once it
//! is read, when the call's future is dropped, and on timeout
//! ([`deletion`](super::deletion)).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, PostParams};

use super::autoscaler::{self, AutoscalerEvents, Verdict};
use super::deletion::Deleter;
use super::lease::SessionLease;
use super::logs::{LogFollow, LogTrouble};
use super::status::{self, Progress};
use super::watch::{PodEvent, PodWatcher};
use super::{pod, retry, volumes};
use crate::backend::{Delivery, Ended, Job, Runner, describe_end, signal_of};
use crate::environment::RunEnvironment;
use crate::error::Error;
use crate::logs::{LogMode, Stream};
use crate::phases::Mark;
use futures::future::BoxFuture;

/// How long a call waits for its pod to be gone when that matters (the pod
/// mounted a claim read-write, and readers may be scheduled next).
pub(crate) const DELETION_WAIT: Duration = Duration::from_secs(120);
/// How long closing waits for the deletions of dropped calls' pods.
const DELETIONS_WAIT: Duration = Duration::from_secs(60);
/// How many log lines a failed call's error carries.
const LOG_TAIL_LINES: i64 = 20;
/// How long a finished call waits for the end of its pod's log.
const LOG_DRAIN: Duration = Duration::from_secs(5);

/// Runs each call as a pod. Built by connecting a `KubeCluster`.
#[derive(Debug)]
pub(crate) struct KubernetesRunner {
    pub(super) pods: Api<Pod>,
    pub(super) namespace: String,
    pub(super) volumes: volumes::Volumes,
    pub(super) watcher: PodWatcher,
    pub(super) lease: SessionLease,
    pub(super) session: String,
    pub(super) pending_timeout: Duration,
    pub(super) scale_up_timeout: Duration,
    /// Reads an unschedulable pod's events for the cluster autoscaler's.
    pub(super) autoscaler: AutoscalerEvents,
    pub(super) keep_pods: bool,
    /// Deletions of pods, in the background when they cannot be done now.
    pub(super) deleter: Deleter,
    /// Pods' logs that cannot be read, said once per session.
    pub(super) log_trouble: Arc<LogTrouble>,
    /// The warm workers of environments that have them.
    pub(super) workers: super::workers::WorkerPools,
}

impl Drop for KubernetesRunner {
    fn drop(&mut self) {
        self.deleter.stop();
    }
}

impl KubernetesRunner {
    async fn run_job(&self, job: Job, env: &RunEnvironment) -> Result<String, Error> {
        if let Some(workers) = self.workers.settings(env) {
            for mount in env.mounts() {
                self.volumes.ensure(mount.volume()).await?;
            }
            if let Some(refused) = self.watcher.failure().borrow().clone() {
                return Err(refused);
            }
            return self.workers.run(job, env, workers).await;
        }
        let marker = format!("{}-{}", self.session, crate::ids::random_suffix(16));
        // Kept pods outlive the session: no owner whose deletion removes them.
        let owner = (!self.keep_pods).then(|| self.lease.owner_reference());
        let mut pod = pod::build(&pod::PodRequest {
            name: &job.execution_id,
            function: job.function,
            session: &self.session,
            call: &job.call,
            env,
            arch: job.executable.as_ref().map(|e| e.arch),
            marker: &marker,
            owner: owner.as_ref(),
        })?;
        pod::add_env(&mut pod, &job.env);
        for mount in env.mounts() {
            self.volumes.ensure(mount.volume()).await?;
        }
        let writes_a_claim = env.mounts().iter().any(|m| !m.is_read_only());
        let name = job.execution_id.clone();
        if let Some(refused) = self.watcher.failure().borrow().clone() {
            // The watch is refused: no pod could be waited for.
            return Err(refused);
        }
        let mut events = self.watcher.register(&name);
        // Armed before the first create attempt: a pod whose create
        // response was lost is deleted too.
        let mut guard = self.deleter.guard(&name, !self.keep_pods);
        let _registration = Unregister(&self.watcher, &name);

        let request = retry::Request::core("create", "pods", &self.namespace).named(&name);
        let post = PostParams::default();
        job.phases.mark(Mark::Submitted);
        retry::bounded(&request, || async {
            match self.pods.create(&post, &pod).await {
                Err(err) if retry::is_conflict(&err) => {
                    adopt(&self.pods, &name, &marker, err).await
                }
                other => other,
            }
        })
        .await?;
        tracing::debug!(function = job.function, pod = %name, "created");

        let mut follow = LogFollow::new(
            self.pods.clone(),
            &name,
            Arc::clone(&job.logs),
            events.clone(),
            Arc::clone(&self.log_trouble),
        );
        let waited =
            tokio::time::timeout(env.timeout(), self.wait(&job, &mut events, &mut follow)).await;
        // The log to its end (its last lines included) before the pod goes.
        follow.drain(LOG_DRAIN).await;
        job.phases.mark(Mark::OutcomeRead);
        if let Some(reason) = follow.unreadable()
            && job.logs.mode() == LogMode::OnFailure
        {
            // Held with the output, shown only if the call fails: where
            // its output would have been, why there is none.
            let notice = format!("(hype: the output of {name} could not be read: {reason})");
            job.logs.line(Stream::Output, &notice);
        }
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
            self.deleter.delete(&name).await;
            if writes_a_claim {
                // Readers of the claim may be scheduled on other nodes next:
                // return once the writer is gone and its volume can detach.
                wait_deleted(&mut events, DELETION_WAIT).await;
            }
            job.phases.mark(Mark::CleanedUp);
        }
        result
    }

    /// Waits until the pod's container ends or its status says why it
    /// cannot; gives the termination message.
    async fn wait(
        &self,
        job: &Job,
        events: &mut tokio::sync::watch::Receiver<PodEvent>,
        follow: &mut LogFollow,
    ) -> Result<String, Error> {
        let name = job.execution_id.as_str();
        let function = job.function.to_owned();
        let mut unschedulable_since: Option<tokio::time::Instant> = None;
        // The cluster autoscaler's word on the pod, and when to read its
        // events next (only while it is unschedulable).
        let mut scale_up = Verdict::Silent;
        let mut read_events_at: Option<tokio::time::Instant> = None;
        let mut failure = self.watcher.failure();
        loop {
            let event = events.borrow_and_update().clone();
            let progress = match &event {
                PodEvent::Unseen => Progress::Waiting {
                    unschedulable: None,
                },
                PodEvent::Seen(pod) | PodEvent::Deleted(pod) => {
                    follow.seen(pod);
                    status::observe(&job.phases, pod);
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
                    let now = tokio::time::Instant::now();
                    if read_events_at.is_none_or(|at| now >= at) {
                        if let Some(verdict) = self.autoscaler.read(name).await {
                            self.note_scale_up(job, &scale_up, &verdict, &message);
                            scale_up = verdict;
                        }
                        read_events_at = Some(crate::clock::later(
                            tokio::time::Instant::now(),
                            autoscaler::events_every(self.pending_timeout),
                        ));
                    }
                    let bound = match scale_up {
                        Verdict::ScalingUp(_) => self.scale_up_timeout,
                        Verdict::Silent | Verdict::NoScaleUp(_) | Verdict::GroupsFull(_) => {
                            self.pending_timeout
                        }
                    };
                    if scale_up.is_final() {
                        // No node is coming and none is full: waiting
                        // cannot help.
                        return Err(Error::Unschedulable {
                            function,
                            execution_id: name.to_owned(),
                            message: format!("{message}{}", scale_up.explain(bound)),
                            after: since.elapsed(),
                        });
                    }
                    if since.elapsed() >= bound {
                        return Err(Error::Unschedulable {
                            function,
                            execution_id: name.to_owned(),
                            message: format!("{message}{}", scale_up.explain(bound)),
                            after: bound,
                        });
                    }
                    // None past the end of time: no deadline, as for Duration::MAX.
                    pending_deadline = match (since.checked_add(bound), read_events_at) {
                        (Some(end), Some(read)) => Some(end.min(read)),
                        (end, read) => end.or(read),
                    };
                }
                Progress::Terminated {
                    exit_code,
                    reason,
                    message,
                } => {
                    return self.outcome(job, exit_code, reason, message).await;
                }
                Progress::FailedOtherwise { status } => {
                    return Err(Error::RunnerFailed {
                        function,
                        execution_id: name.to_owned(),
                        stderr_tail: self.log_tail(name).await,
                        status,
                        signal: None,
                    });
                }
                diagnosed => {
                    let pod = match &event {
                        PodEvent::Seen(pod) | PodEvent::Deleted(pod) => Some(pod.as_ref()),
                        PodEvent::Unseen => None,
                    };
                    return Err(status::error(diagnosed, job, pod));
                }
            }
            let changed = events.changed();
            let refused = failure.wait_for(Option::is_some);
            let result = tokio::select! {
                changed = changed => changed,
                refused = refused => match refused {
                    Ok(refusal) => return Err(refusal.clone().expect("waited for Some")),
                    Err(_) => Ok(()),
                },
                _ = sleep_until(pending_deadline) => continue,
            };
            if result.is_err() {
                return Err(Error::Cluster {
                    operation: format!("watch pod {name}"),
                    message: "the shared watch stopped".to_owned(),
                    source: None,
                });
            }
        }
    }

    /// Says when the cluster autoscaler's word on a waiting pod changes.
    fn note_scale_up(&self, job: &Job, before: &Verdict, now: &Verdict, scheduler: &str) {
        if before == now {
            return;
        }
        let (function, pod) = (job.function, job.execution_id.as_str());
        match now {
            Verdict::ScalingUp(autoscaler) => tracing::info!(
                function,
                pod,
                phase = "waiting for a node",
                %autoscaler,
                timeout = ?self.scale_up_timeout,
                "waiting for a node: the cluster autoscaler is adding one for the pod"
            ),
            Verdict::NoScaleUp(autoscaler) => tracing::info!(
                function,
                pod,
                phase = "unschedulable",
                %autoscaler,
                %scheduler,
                "no node is coming for the pod: the cluster autoscaler will not add one; the call fails now"
            ),
            Verdict::GroupsFull(autoscaler) => tracing::info!(
                function,
                pod,
                phase = "unschedulable",
                %autoscaler,
                %scheduler,
                timeout = ?self.pending_timeout,
                "the node groups that would take the pod are full: waiting for room as other pods end"
            ),
            Verdict::Silent => {}
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
        let mut status = describe_end("the container", Ended::Code(exit_code.into()));
        if let Some(reason) = reason {
            status.push_str(&format!(" (reason {reason})"));
        }
        let stderr_tail = match message {
            Some(logs) => logs,
            None => self.log_tail(&job.execution_id).await,
        };
        Err(Error::RunnerFailed {
            function: job.function.to_owned(),
            execution_id: job.execution_id.clone(),
            status,
            stderr_tail,
            signal: signal_of(Ended::Code(exit_code.into())),
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
}

/// Whether a pod's progress holds an outcome written by `hype-run`.
fn has_outcome(progress: &Progress) -> bool {
    matches!(progress, Progress::Terminated { message: Some(m), .. } if crate::wire::Reference::parse(m).is_ok())
}

/// The pod found under this call's name after a 409 on create: this call's
/// own when it carries the call's marker (an earlier attempt's response
/// was lost), else the conflict stands.
async fn adopt(
    pods: &Api<Pod>,
    name: &str,
    marker: &str,
    conflict: kube::Error,
) -> Result<Pod, kube::Error> {
    let existing = pods.get(name).await?;
    let theirs = existing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(pod::ANNOTATION_MARKER));
    if theirs.map(String::as_str) == Some(marker) {
        tracing::debug!(pod = %name, "an earlier create succeeded (its response was lost): going on with that pod");
        Ok(existing)
    } else {
        Err(conflict)
    }
}

/// Sleeps until `deadline`; for ever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
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
            // Workers first: told to shut down, their pods deleted.
            self.workers.close().await;
            // Calls in flight were dropped by the submitter: let their
            // pods' deletions finish, then sweep what is left by label.
            self.deleter.finish(DELETIONS_WAIT).await;
            let selector = pod::session_selector(&self.session);
            let mut failures = Vec::new();
            if !self.keep_pods
                && let Err(err) = self.deleter.sweep(&selector).await
            {
                failures.push(err.to_string());
            }
            if let Err(err) = self.volumes.delete_transient().await {
                failures.push(err.to_string());
            }
            // Last: the garbage collector removes whatever the sweeps
            // could not, once the Lease that owns it is gone.
            if let Err(err) = self.lease.release().await {
                failures.push(err.to_string());
            }
            self.deleter.stop();
            if failures.is_empty() {
                Ok(())
            } else {
                Err(Error::Cluster {
                    operation: format!("close session {}", self.session),
                    message: format!(
                        "{}; what is left carries the session's labels and is removed by the cluster's garbage collector or `hype gc` once the session's lease is stale",
                        failures.join("; ")
                    ),
                    source: None,
                })
            }
        })
    }

    /// Pods read the executable from the staging store: each call names
    /// its blob, and the image's `hype-run` launcher fetches it.
    fn delivery(&self) -> Delivery {
        Delivery::Staged
    }
}
