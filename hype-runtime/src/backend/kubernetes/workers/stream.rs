//! The stream to one worker (`docs/protocol.md` §8): a task that creates
//! the worker's pod, waits until it runs, attaches to its `hype-run`
//! container (`pods/attach`, stdin and stdout), and then carries frames
//! both ways: [`WorkerRequest`]s from the calls, [`WorkerEvent`]s to the
//! call they belong to.
//!
//! - Every stream begins with `Attach`; the calls go out only after the
//!   worker's `Ready` (which is checked: protocol version and executable
//!   digest), and then again every call it has no `Started` for, and every
//!   cancel not yet answered by `Ended`.
//! - Replay: the worker sends again every event of the calls not yet
//!   acknowledged; the stream counts each call's events and skips as many
//!   as it already delivered, so each event reaches its call once.
//!   `Ended` is answered with `Ack` (again when replayed). Events that
//!   arrive before the stream's `Ready` are dropped: they were written
//!   before the worker read `Attach` (the container's output reaches every
//!   stream attached at the time), and the replay that follows `Ready`
//!   holds them.
//! - `Ping` every quarter of the worker's idle time, at most every 10 s.
//! - A dropped stream is re-opened with backoff (100 ms doubling to 5 s);
//!   when none could be opened for [`RECONNECT_BOUND`] (2 min) since the
//!   last one broke, every call on the worker fails with a
//!   [`Error::Cluster`] (kind `Lost`, so retries apply).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, PostParams};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::super::pod::CONTAINER;
use super::super::retry;
use super::super::watch::PodEvent;
use crate::error::Error;
use crate::retry::BackoffBuilder as _;
use crate::wire::{CallId, WorkerEvent, WorkerRequest};

/// How long a worker may be without a stream before its calls fail.
pub(crate) const RECONNECT_BOUND: Duration = Duration::from_secs(120);
/// The longest time between two `Ping`s.
pub(crate) const MAX_PING_INTERVAL: Duration = Duration::from_secs(10);
/// The bound of one attach request.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

/// The `Ping` interval for a worker told `--idle-for idle`: a quarter of
/// it, at most [`MAX_PING_INTERVAL`] (the worker takes its stream as gone
/// after `idle` without a request).
pub(super) fn ping_interval(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(100), MAX_PING_INTERVAL)
}

/// What a call hears from its worker's stream.
#[derive(Debug)]
pub(super) enum CallEvent {
    /// An event of the call, once.
    Worker(WorkerEvent),
    /// The call cannot finish on this worker.
    Failed(Error),
}

/// A call the stream carries.
pub(super) struct Entry {
    pub(super) request: WorkerRequest,
    pub(super) started: bool,
    /// Events delivered (the replay rule's count).
    pub(super) received: usize,
    /// Gone once the call was cancelled.
    pub(super) events: Option<mpsc::UnboundedSender<CallEvent>>,
}

#[derive(Default)]
pub(super) struct Calls {
    pub(super) entries: HashMap<CallId, Entry>,
    pub(super) next: CallId,
    /// Why the worker takes no more calls.
    pub(super) dead: Option<String>,
}

pub(super) fn lock(calls: &Mutex<Calls>) -> std::sync::MutexGuard<'_, Calls> {
    calls.lock().unwrap_or_else(|e| e.into_inner())
}

/// The handle of one worker's stream.
#[derive(Debug, Clone)]
pub(super) struct Conn {
    calls: Arc<Mutex<Calls>>,
    wake: mpsc::UnboundedSender<WorkerRequest>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("calls", &self.entries.len())
            .field("dead", &self.dead)
            .finish()
    }
}

/// What the stream task needs.
pub(super) struct Start {
    pub pods: Api<Pod>,
    pub namespace: String,
    pub name: String,
    pub pod: Pod,
    pub events: watch::Receiver<PodEvent>,
    pub ping_every: Duration,
    pub executable_sha256: Option<String>,
    /// Cancelled when the submitter goes.
    pub closed: CancellationToken,
}

impl Conn {
    /// Starts the worker: its pod and its stream.
    pub fn start(start: Start) -> Conn {
        let (wake, wakes) = mpsc::unbounded_channel();
        let conn = Conn {
            calls: Arc::default(),
            wake,
            stop: start.closed.child_token(),
        };
        let driver = Driver {
            calls: Arc::clone(&conn.calls),
            wakes,
            stop: conn.stop.clone(),
            start,
        };
        tokio::spawn(driver.run());
        conn
    }

    /// Sends a call; its events come on the receiver.
    pub fn call(
        &self,
        execution_id: &str,
        call: &str,
        env: &[(String, String)],
    ) -> (CallId, mpsc::UnboundedReceiver<CallEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut calls = lock(&self.calls);
        let id = calls.next;
        calls.next += 1;
        let request = WorkerRequest::Call {
            id,
            execution_id: execution_id.to_owned(),
            call: call.to_owned(),
            env: env.to_vec(),
        };
        if let Some(dead) = calls.dead.clone() {
            let _ = tx.send(CallEvent::Failed(lost(&dead)));
            return (id, rx);
        }
        calls.entries.insert(
            id,
            Entry {
                request: request.clone(),
                started: false,
                received: 0,
                events: Some(tx),
            },
        );
        drop(calls);
        let _ = self.wake.send(request);
        (id, rx)
    }

    /// Cancels a call: the worker kills its process (its events are not
    /// wanted any more; `Ended` is still acknowledged).
    pub fn cancel(&self, id: CallId) {
        if let Some(entry) = lock(&self.calls).entries.get_mut(&id) {
            entry.events = None;
        }
        let _ = self.wake.send(WorkerRequest::Cancel { id });
    }

    /// Asks the worker to finish, then stops the stream.
    pub fn shutdown(&self) {
        let _ = self.wake.send(WorkerRequest::Shutdown);
        self.stop.cancel();
    }

    /// Why the worker takes no calls, if it does not.
    pub fn dead(&self) -> Option<String> {
        lock(&self.calls).dead.clone()
    }
}

/// The error of calls on a worker that cannot be reached.
fn lost(why: &str) -> Error {
    Error::Cluster {
        operation: "run a call on a warm worker".to_owned(),
        message: why.to_owned(),
        source: None,
    }
}

pub(super) struct Driver {
    pub(super) calls: Arc<Mutex<Calls>>,
    pub(super) wakes: mpsc::UnboundedReceiver<WorkerRequest>,
    pub(super) stop: CancellationToken,
    pub(super) start: Start,
}

/// Where the pod is, for the stream.
enum PodState {
    Running,
    Gone(String),
}

impl Driver {
    async fn run(mut self) {
        self.drive().await;
        // Calls still waiting on a stream that is over cannot finish here.
        self.fail_all(lost(&format!(
            "the stream to worker pod {} stopped",
            self.start.name
        )));
    }

    async fn drive(&mut self) {
        if let Err(err) = self.create().await {
            self.fail_all(err);
            return;
        }
        let mut broken_since = tokio::time::Instant::now();
        let mut delays = backoff();
        let mut last_trouble;
        let stop = self.stop.clone();
        loop {
            let state = tokio::select! {
                _ = stop.cancelled() => return,
                state = self.wait_running() => state,
            };
            if let PodState::Gone(why) = state {
                self.mark_dead(why);
                return;
            }
            let params = AttachParams::default()
                .container(CONTAINER)
                .stdin(true)
                .stdout(true)
                .stderr(false);
            let attempt = tokio::time::timeout(
                ATTACH_TIMEOUT,
                self.start.pods.attach(&self.start.name, &params),
            );
            let attached = tokio::select! {
                _ = self.stop.cancelled() => return,
                attached = attempt => attached,
            };
            match attached {
                Ok(Ok(mut attached)) => {
                    delays = backoff();
                    let ended = self.session(&mut attached).await;
                    attached.abort();
                    match ended {
                        Ok(()) => return,
                        Err(trouble) => {
                            tracing::debug!(worker = %self.start.name, %trouble, "the worker's stream broke; re-attaching");
                            last_trouble = trouble;
                            broken_since = tokio::time::Instant::now();
                        }
                    }
                }
                Ok(Err(err)) => last_trouble = format!("attach: {err}"),
                Err(_) => last_trouble = format!("attach: no answer within {ATTACH_TIMEOUT:?}"),
            }
            if broken_since.elapsed() >= RECONNECT_BOUND {
                let why = format!(
                    "no stream to worker pod {} could be opened for {RECONNECT_BOUND:?} (the bound): {last_trouble}",
                    self.start.name
                );
                self.fail_all(lost(&why));
                return;
            }
            let delay = delays.next().unwrap_or(Duration::from_secs(5));
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn create(&self) -> Result<(), Error> {
        let request =
            retry::Request::core("create", "pods", &self.start.namespace).named(&self.start.name);
        let post = PostParams::default();
        let pods = &self.start.pods;
        retry::bounded(&request, || async {
            match pods.create(&post, &self.start.pod).await {
                // An earlier attempt's response was lost: the name is ours.
                Err(err) if retry::is_conflict(&err) => pods.get(&self.start.name).await,
                other => other,
            }
        })
        .await?;
        tracing::debug!(worker = %self.start.name, "worker pod created");
        Ok(())
    }

    /// Waits until the pod runs (or is gone).
    async fn wait_running(&mut self) -> PodState {
        loop {
            let state = match &*self.start.events.borrow_and_update() {
                PodEvent::Unseen => None,
                PodEvent::Deleted(_) => Some(PodState::Gone("its pod was deleted".to_owned())),
                PodEvent::Seen(pod) => {
                    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                    if pod.metadata.deletion_timestamp.is_some() {
                        Some(PodState::Gone("its pod is being deleted".to_owned()))
                    } else {
                        match phase {
                            Some("Running") => Some(PodState::Running),
                            Some(phase @ ("Succeeded" | "Failed")) => {
                                Some(PodState::Gone(format!("its pod ended ({phase})")))
                            }
                            _ => None,
                        }
                    }
                }
            };
            if let Some(state) = state {
                return state;
            }
            if self.start.events.changed().await.is_err() {
                return PodState::Gone("the watch of its pod stopped".to_owned());
            }
        }
    }

    pub(super) fn mark_dead(&self, why: String) {
        let mut calls = lock(&self.calls);
        calls.dead.get_or_insert(why);
    }

    /// Fails every call on the worker, and every later one.
    pub(super) fn fail_all(&self, error: Error) {
        let mut calls = lock(&self.calls);
        calls.dead.get_or_insert_with(|| error.to_string());
        for (_, entry) in calls.entries.drain() {
            if let Some(events) = entry.events {
                let _ = events.send(CallEvent::Failed(error.clone()));
            }
        }
    }
}

fn backoff() -> impl Iterator<Item = Duration> {
    crate::retry::backoff(Duration::from_millis(100), Duration::from_secs(5), None).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_come_often_enough_for_the_worker() {
        assert_eq!(
            ping_interval(Duration::from_secs(4)),
            Duration::from_secs(1)
        );
        assert_eq!(ping_interval(Duration::from_secs(3600)), MAX_PING_INTERVAL);
    }
}
