//! Faults a test injects into the double while it runs: failing creates,
//! creates refused as RBAC or admission control would,
//! an unschedulable cluster, OOM kills, evictions, node preemptions, dropped watches, slow
//! starts, an expired watch history (answered in the stream or on the
//! request), lost create responses, forbidden and silent watches, failing
//! `pods/log` requests, forbidden `pods/attach` and `pods/exec`, broken
//! attach streams, and no `deletecollection`. (An API server that cannot be reached at all is
//! [`FaultProxy`](crate::fault_proxy::FaultProxy)'s.)
//!
//! A [`Faults`] handle is cheap to clone and safe to use from any thread;
//! every setter takes effect at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::store::Store;

#[derive(Debug, Default)]
struct State {
    failing_creates: VecDeque<u16>,
    refused_creates: VecDeque<CreateRefusal>,
    retry_after_seconds: u64,
    unschedulable: Option<String>,
    autoscaler: Option<Autoscaler>,
    oom_kills: usize,
    evictions: usize,
    preemptions: usize,
    log_breaks: usize,
    delay_start: Duration,
    lost_creates: usize,
    watches_forbidden: bool,
    expired_watches_refused: bool,
    failing_logs: Option<u16>,
    refused_delete_collections: Option<u16>,
    refused_streams: usize,
    stream_breaks: VecDeque<usize>,
}

/// What the cluster autoscaler does for an unschedulable pod (see
/// [`Faults::autoscaler`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autoscaler {
    /// It adds a node: the pod gets a `TriggeredScaleUp` event as soon as
    /// it is unschedulable, and is scheduled on the new node `after` that.
    ScaleUp {
        /// How long the new node takes.
        after: Duration,
    },
    /// It will not add a node because its node groups are full: the pod
    /// gets a `NotTriggerScaleUp` event (`pod didn't trigger scale-up: 1
    /// max node group size reached`) and stays unschedulable.
    NoScaleUp,
    /// It will not add a node, for the reason given (what follows `pod
    /// didn't trigger scale-up: ` in its `NotTriggerScaleUp` event, e.g.
    /// `1 node(s) didn't match Pod's node affinity/selector`); the pod
    /// stays unschedulable.
    NoScaleUpBecause(&'static str),
}

/// A refusal of a create: status code, reason and message.
pub(crate) type CreateRefusal = (u16, &'static str, String);

struct Inner {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

/// The faults of one [`KubeTestServer`](super::KubeTestServer), from
/// [`KubeTestServer::faults`](super::KubeTestServer::faults).
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Inner>,
    store: Arc<Store>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("state", &*self.lock())
            .finish()
    }
}

impl Faults {
    pub(crate) fn new(store: Arc<Store>) -> Faults {
        let (changed, _) = watch::channel(0);
        Faults {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    retry_after_seconds: 1,
                    ..State::default()
                }),
                changed,
            }),
            store,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn changed(&self) {
        self.inner.changed.send_modify(|n| *n += 1);
    }

    /// A receiver woken whenever a fault is set.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// The next `n` creates of pods or persistent volume claims fail with
    /// HTTP `status` (429 TooManyRequests with a `Retry-After` header, 500
    /// InternalError, 503, 504, …) before anything is stored. `kube::Client`
    /// retries 429, 503 and 504 by itself (honouring `Retry-After`); a 500
    /// reaches the caller.
    pub fn fail_next_creates(&self, n: usize, status: u16) {
        self.lock()
            .failing_creates
            .extend(std::iter::repeat_n(status, n));
    }

    /// The next create of a pod or persistent volume claim is refused,
    /// after its body is decoded and before anything is stored, with a
    /// `Status` of HTTP `code`, `reason` and `message`, `{name}` in the
    /// message standing for the object's name, and details naming the
    /// object, as the API server answers: what RBAC says (403 `pods is
    /// forbidden: User "…" cannot create resource "pods" …`), or an
    /// admission check (403 `pods "{name}" is forbidden: violates
    /// PodSecurity "restricted:latest": …`, a webhook's 400 `admission
    /// webhook "…" denied the request: …`, a quota's 403 `exceeded quota:
    /// …`). Refusals queue, one per create.
    pub fn refuse_next_create(&self, code: u16, reason: &'static str, message: impl Into<String>) {
        self.lock()
            .refused_creates
            .push_back((code, reason, message.into()));
    }

    /// The next `n` `pods/attach` or `pods/exec` requests are answered 403
    /// Forbidden, as RBAC answers a Role without `create` on them.
    pub fn forbid_streams(&self, n: usize) {
        self.lock().refused_streams += n;
    }

    /// Takes one refusal of an attach or exec, if any.
    /// The next `pods/attach` stream breaks (its connection dropped, no
    /// status, no close) once it has sent `messages` output messages to its
    /// client, as a load balancer or an API server restart cuts a stream.
    /// Each call breaks one more stream.
    pub fn break_next_attach_after(&self, messages: usize) {
        self.lock().stream_breaks.push_back(messages);
    }

    pub(crate) fn take_stream_break(&self) -> Option<usize> {
        self.lock().stream_breaks.pop_front()
    }

    pub(crate) fn take_stream_refusal(&self) -> bool {
        let mut state = self.lock();
        if state.refused_streams > 0 {
            state.refused_streams -= 1;
            true
        } else {
            false
        }
    }

    /// Takes the next refusal of a create.
    pub(crate) fn take_create_refusal(&self) -> Option<CreateRefusal> {
        self.lock().refused_creates.pop_front()
    }

    /// The `Retry-After` seconds a 429 carries (default 1, as the
    /// apiserver's priority and fairness sends).
    pub fn set_retry_after_seconds(&self, seconds: u64) {
        self.lock().retry_after_seconds = seconds;
    }

    /// Takes the next injected create failure: status and Retry-After.
    pub(crate) fn take_create_failure(&self) -> Option<(u16, u64)> {
        let mut state = self.lock();
        let status = state.failing_creates.pop_front()?;
        Some((status, state.retry_after_seconds))
    }

    /// Pods that have not been scheduled yet stay Pending with condition
    /// PodScheduled False, reason Unschedulable and this message (as the
    /// scheduler writes, e.g. `0/3 nodes are available: 3 Insufficient
    /// cpu.`), until [`clear_unschedulable`](Self::clear_unschedulable).
    pub fn unschedulable(&self, message: impl Into<String>) {
        self.lock().unschedulable = Some(message.into());
        self.changed();
    }

    /// A cluster autoscaler: each pod that is unschedulable (see
    /// [`unschedulable`](Self::unschedulable)) gets an event from
    /// `cluster-autoscaler` about it, served at
    /// `/api/v1/namespaces/{ns}/events`, and with
    /// [`Autoscaler::ScaleUp`] is scheduled once its node is up. Without
    /// this (the default) no autoscaler event is ever written.
    pub fn autoscaler(&self, autoscaler: Autoscaler) {
        self.lock().autoscaler = Some(autoscaler);
        self.changed();
    }

    /// The autoscaler, if there is one.
    pub(crate) fn autoscaler_mode(&self) -> Option<Autoscaler> {
        self.lock().autoscaler
    }

    /// Lets pending pods be scheduled again.
    pub fn clear_unschedulable(&self) {
        self.lock().unschedulable = None;
        self.changed();
    }

    /// The scheduler's message while the cluster is unschedulable.
    pub(crate) fn unschedulable_message(&self) -> Option<String> {
        self.lock().unschedulable.clone()
    }

    /// The next pod that starts is killed at once as out of memory:
    /// terminated reason `OOMKilled`, exit code 137, phase Failed.
    pub fn oom_kill_next(&self) {
        self.lock().oom_kills += 1;
        self.changed();
    }

    pub(crate) fn take_oom_kill(&self) -> bool {
        take(&mut self.lock().oom_kills)
    }

    /// The next running pod (one running now, or else the next to start) is
    /// evicted: killed, phase Failed, reason `Evicted`, message `The node
    /// was low on resource: memory.`
    pub fn evict_next(&self) {
        self.lock().evictions += 1;
        self.changed();
    }

    pub(crate) fn take_eviction(&self) -> bool {
        take(&mut self.lock().evictions)
    }

    /// The next running pod (one running now, or else the next to start)
    /// loses its node as a GKE spot VM being reclaimed does: killed, phase
    /// Failed, reason `Terminated`, message `Pod was terminated in response
    /// to imminent node shutdown.`, and a `DisruptionTarget` condition.
    /// (For a node that vanishes with its pods, delete the pod with
    /// [`KubeTestServer::delete_pod_as_someone_else`](super::KubeTestServer::delete_pod_as_someone_else),
    /// as the pod garbage collector would.)
    pub fn preempt_next(&self) {
        self.lock().preemptions += 1;
        self.changed();
    }

    pub(crate) fn take_preemption(&self) -> bool {
        take(&mut self.lock().preemptions)
    }

    /// The next `log?follow=true` stream ends after its first chunk, while
    /// the container still runs, as a broken connection would: a client
    /// must open it again without losing or repeating a line.
    pub fn break_next_log_stream(&self) {
        self.lock().log_breaks += 1;
        self.changed();
    }

    pub(crate) fn take_log_break(&self) -> bool {
        take(&mut self.lock().log_breaks)
    }

    /// The next `n` creates of pods or persistent volume claims are stored
    /// (and their pods start), but each answer is lost: the client gets a
    /// 504 Timeout, as when a proxy times out after the apiserver acted.
    pub fn lose_next_create_responses(&self, n: usize) {
        self.lock().lost_creates += n;
    }

    pub(crate) fn take_lost_create(&self) -> bool {
        take(&mut self.lock().lost_creates)
    }

    /// Watch requests are answered with 403 Forbidden (as RBAC without the
    /// `watch` verb does) until [`allow_watches`](Self::allow_watches) or
    /// [`clear`](Self::clear); watches already open go on (drop them with
    /// [`drop_watches`](Self::drop_watches)).
    pub fn forbid_watches(&self) {
        self.lock().watches_forbidden = true;
    }

    /// Answers watch requests again.
    pub fn allow_watches(&self) {
        self.lock().watches_forbidden = false;
    }

    pub(crate) fn watches_forbidden(&self) -> bool {
        self.lock().watches_forbidden
    }

    /// Every watch open now goes silent: no more events, no bookmarks, and
    /// it never ends by itself (its timeout is ignored), as a connection a
    /// NAT or load balancer dropped without a reset. Watches opened later
    /// work.
    pub fn silence_open_watches(&self) {
        self.store.silence_watches();
    }

    /// Closes every open watch stream now, as an apiserver restart or a
    /// load balancer does; clients must resume from their last
    /// resourceVersion.
    pub fn drop_watches(&self) {
        self.store.drop_watches();
    }

    /// Forgets the watch history, as etcd compaction does: a watch resuming
    /// from any resourceVersion before now gets an ERROR event with a 410
    /// Gone (reason `Expired`) Status and must list again.
    pub fn expire_watch_history(&self) {
        self.store.expire_history();
    }

    /// A watch from a version the history no longer has is answered with
    /// HTTP 410 Gone (reason `Expired`, a Status body) on the request
    /// itself, not with an ERROR event on a 200 stream (until
    /// [`clear`](Self::clear)).
    pub fn refuse_expired_watches_with_410(&self) {
        self.lock().expired_watches_refused = true;
    }

    pub(crate) fn expired_watches_refused(&self) -> bool {
        self.lock().expired_watches_refused
    }

    /// Every `pods/{name}/log` request is answered with HTTP `status`
    /// until [`clear`](Self::clear): 500 or 502 as an API server that
    /// cannot reach the node's kubelet (port 10250) answers, or 403 as
    /// RBAC without `pods/log` does.
    pub fn fail_logs(&self, status: u16) {
        self.lock().failing_logs = Some(status);
    }

    pub(crate) fn log_failure(&self) -> Option<u16> {
        self.lock().failing_logs
    }

    /// Every collection delete (`DELETE` on a collection:
    /// `deletecollection`) is answered with HTTP `status` until
    /// [`clear`](Self::clear): 405 MethodNotAllowed or 404 NotFound, as
    /// API servers and proxies that do not serve the verb answer.
    pub fn refuse_delete_collections(&self, status: u16) {
        self.lock().refused_delete_collections = Some(status);
    }

    pub(crate) fn delete_collection_refusal(&self) -> Option<u16> {
        self.lock().refused_delete_collections
    }

    /// Every pod waits this long in ContainerCreating before its containers
    /// start (a slow image pull); `Duration::ZERO` (the default) turns it off.
    pub fn delay_start(&self, delay: Duration) {
        self.lock().delay_start = delay;
        self.changed();
    }

    pub(crate) fn start_delay(&self) -> Duration {
        self.lock().delay_start
    }

    /// Clears every fault.
    pub fn clear(&self) {
        {
            let mut state = self.lock();
            let retry_after_seconds = state.retry_after_seconds;
            *state = State {
                retry_after_seconds,
                ..State::default()
            };
        }
        self.changed();
    }
}

fn take(counter: &mut usize) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}
