//! One shared watch per submitter: a task watching the pods of the
//! submitter's session (label selector) that wakes each waiting call when
//! its pod changes. No per-pod polling.
//!
//! The watch starts from the resourceVersion of an initial list taken
//! before any pod is created, and resumes from the last version it saw when
//! the connection drops or times out; a `410 Gone` (version too old), as an
//! ERROR event in the stream or as the answer to the watch request itself,
//! re-lists and goes on from the list's version. Waiters register a pod
//! name before the pod is created, so no event can be missed.
//!
//! resourceVersions are opaque: they are only passed back to the server
//! and compared for equality, never as numbers (Kubernetes forbids it;
//! some servers' are not numbers). Which of two states of a pod is the
//! fresher follows from the order of events on the one watch (the later
//! event wins), and for a list from when it was asked for: a list without
//! a resourceVersion is a consistent read, so it is at least as fresh as
//! anything the watch delivered before the list was requested. Each waiter
//! is stamped with a local counter whenever its state changes; a list
//! changes only waiters not stamped since it was requested (the others
//! the watch moved on meanwhile, and its order wins; the next list looks
//! again).
//!
//! How its faults reach the calls:
//!
//! - **Refused (401, 403)**: every waiting call fails at once with
//!   [`Error::Forbidden`] naming the verb, resource, namespace and RBAC
//!   rule ([`PodWatcher::failure`]); new calls fail before creating a pod.
//!   The watch keeps trying (backing off to 30 s), and a later success
//!   clears the failure.
//! - **Transient errors** back off (200 ms doubling to 30 s, with jitter);
//!   a watch that ends at once without an event counts as a failure too,
//!   so nothing loops hot.
//! - **Silent**: each watch asks the server to end it after
//!   [`WatchBounds::server_timeout`] and asks for bookmarks; one that
//!   sends no event and no bookmark for [`WatchBounds::idle`] is dropped
//!   and re-established.
//! - **Missed changes**: a safety net lists the session's pods once per
//!   [`WatchBounds::resync`] while calls wait (one request per submitter,
//!   not one per pod) and hands each waiter a state of its pod other than
//!   what it saw, including the deletion of a pod it saw, unless the watch
//!   changed it while the list was on its way.
//!
//! `kube::runtime::watcher` does the list-then-watch and 410 handling too,
//! but it consumes bookmarks without yielding them, so a quiet session (no
//! pod changing for minutes, the server sending only bookmarks) cannot be
//! told from a dead connection; that bound is the one the silent-watch
//! fault needs, hence this loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::sync::watch;
use tokio::time::Instant;

use super::retry::{self as api, Request};
use crate::clock::later;
use crate::error::Error;
use crate::retry::{self, BackoffBuilder as _};

/// The latest thing the watch saw of one pod.
#[derive(Debug, Clone, Default)]
pub(crate) enum PodEvent {
    /// Nothing yet.
    #[default]
    Unseen,
    /// The pod as last seen.
    Seen(Arc<Pod>),
    /// The pod was deleted (its last state).
    Deleted(Arc<Pod>),
}

impl PodEvent {
    fn pod(&self) -> Option<&Pod> {
        match self {
            PodEvent::Unseen => None,
            PodEvent::Seen(pod) | PodEvent::Deleted(pod) => Some(pod),
        }
    }
}

/// The bounds of the watch's fault handling (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchBounds {
    /// The `timeoutSeconds` each watch request asks for.
    pub server_timeout: Duration,
    /// How long a watch may send nothing (no event, no bookmark) before it
    /// is dropped and re-established.
    pub idle: Duration,
    /// How often the session's pods are listed while calls wait.
    pub resync: Duration,
}

impl Default for WatchBounds {
    fn default() -> Self {
        WatchBounds {
            server_timeout: Duration::from_secs(60),
            idle: Duration::from_secs(75),
            resync: Duration::from_secs(30),
        }
    }
}

/// One waiting call: its pod's latest state, and when it last changed.
#[derive(Debug)]
struct Waiter {
    sender: watch::Sender<PodEvent>,
    /// The value of [`Following::clock`] when the state last changed.
    changed: u64,
}

/// The waiting calls, by pod name, and the local counter that orders
/// their changes against the lists.
#[derive(Debug, Default)]
struct Following {
    waiters: HashMap<String, Waiter>,
    /// Bumped on every change of a waiter's state.
    clock: u64,
}

impl Following {
    /// Sets the state of pod `name`'s waiter, if it has one; a deletion
    /// is final (a call's pod name is never used again).
    fn set(&mut self, name: &str, event: PodEvent) -> bool {
        let Some(waiter) = self.waiters.get_mut(name) else {
            return false;
        };
        if matches!(*waiter.sender.borrow(), PodEvent::Deleted(_)) {
            return false;
        }
        self.clock += 1;
        waiter.changed = self.clock;
        waiter.sender.send_replace(event);
        true
    }
}

type Waiters = Arc<Mutex<Following>>;

/// Locks the waiters (a poisoned lock is still consistent: every change
/// is one assignment).
fn lock(waiters: &Waiters) -> std::sync::MutexGuard<'_, Following> {
    waiters.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shared watch of one session's pods.
#[derive(Debug)]
pub(crate) struct PodWatcher {
    waiters: Waiters,
    failure: watch::Receiver<Option<Error>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PodWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where the watch task works.
struct Watching {
    api: Api<Pod>,
    namespace: String,
    selector: String,
    waiters: Waiters,
    failure: watch::Sender<Option<Error>>,
    bounds: WatchBounds,
}

impl PodWatcher {
    /// Lists the session's pods (to learn where to start) and starts the
    /// watch task.
    pub async fn start(
        api: Api<Pod>,
        namespace: &str,
        selector: String,
        bounds: WatchBounds,
    ) -> Result<PodWatcher, Error> {
        let list_params = ListParams::default().labels(&selector);
        let request = Request::core("list", "pods", namespace);
        let version = api::bounded(&request, || api.list_metadata(&list_params))
            .await?
            .metadata
            .resource_version
            .unwrap_or_else(|| "0".to_owned());
        let waiters: Waiters = Arc::default();
        let (failure, failure_rx) = watch::channel(None);
        let watching = Watching {
            api,
            namespace: namespace.to_owned(),
            selector,
            waiters: waiters.clone(),
            failure,
            bounds,
        };
        let task = tokio::spawn(watching.run(version));
        Ok(PodWatcher {
            waiters,
            failure: failure_rx,
            task,
        })
    }

    /// Starts following pod `name`; call before creating it.
    pub fn register(&self, name: &str) -> watch::Receiver<PodEvent> {
        let (sender, receiver) = watch::channel(PodEvent::Unseen);
        let waiter = Waiter { sender, changed: 0 };
        lock(&self.waiters).waiters.insert(name.to_owned(), waiter);
        receiver
    }

    /// Stops following pod `name`.
    pub fn unregister(&self, name: &str) {
        lock(&self.waiters).waiters.remove(name);
    }

    /// The refusal that stops the watch, while it lasts: calls waiting on
    /// it fail with it.
    pub fn failure(&self) -> watch::Receiver<Option<Error>> {
        self.failure.clone()
    }

    /// A handle that registers and unregisters pods from background tasks
    /// (warm workers, which outlive the call that started them).
    pub fn handle(&self) -> WatchHandle {
        WatchHandle {
            waiters: self.waiters.clone(),
        }
    }
}

/// Registers pods with a [`PodWatcher`] from anywhere ([`PodWatcher::handle`]).
#[derive(Clone)]
pub(crate) struct WatchHandle {
    waiters: Waiters,
}

impl std::fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchHandle")
    }
}

impl WatchHandle {
    /// Starts following pod `name`; call before creating it.
    pub fn register(&self, name: &str) -> watch::Receiver<PodEvent> {
        let (sender, receiver) = watch::channel(PodEvent::Unseen);
        let waiter = Waiter { sender, changed: 0 };
        lock(&self.waiters).waiters.insert(name.to_owned(), waiter);
        receiver
    }

    /// Stops following pod `name`.
    pub fn unregister(&self, name: &str) {
        lock(&self.waiters).waiters.remove(name);
    }
}

/// Hands `event`, the latest on the watch, to its pod's waiter.
fn dispatch(waiters: &Waiters, event: PodEvent) {
    let Some(name) = event.pod().and_then(|p| p.metadata.name.clone()) else {
        return;
    };
    lock(waiters).set(&name, event);
}

/// When a list is asked for: the changes after it are the watch's.
fn list_started(waiters: &Waiters) -> u64 {
    lock(waiters).clock
}

/// Hands a list of the session's pods, asked for when the clock read
/// `started` (a consistent read: no resourceVersion), to the waiters not
/// changed since: each gets its pod's listed state when it differs from
/// the one it has (by resourceVersion, compared only for equality), and a
/// pod it saw that the list no longer has is gone. A waiter that has seen
/// nothing yet gets nothing from its pod's absence: its pod may not have
/// been created when the list was taken.
fn hand_over(waiters: &Waiters, pods: Vec<Pod>, started: u64) {
    let mut listed: HashMap<String, Pod> = pods
        .into_iter()
        .filter_map(|p| Some((p.metadata.name.clone()?, p)))
        .collect();
    let mut following = lock(waiters);
    let names: Vec<String> = following
        .waiters
        .iter()
        .filter(|(_, w)| w.changed <= started)
        .map(|(name, _)| name.clone())
        .collect();
    for name in names {
        let current = following.waiters[&name].sender.borrow().clone();
        let update = match (listed.remove(&name), current) {
            (_, PodEvent::Deleted(_)) => None,
            (Some(pod), current) => {
                let seen = current
                    .pod()
                    .and_then(|p| p.metadata.resource_version.as_ref());
                (seen.is_none() || seen != pod.metadata.resource_version.as_ref())
                    .then(|| PodEvent::Seen(Arc::new(pod)))
            }
            (None, PodEvent::Seen(pod)) => {
                tracing::debug!(pod = %name, "the pod vanished without a watch event");
                Some(PodEvent::Deleted(pod))
            }
            (None, PodEvent::Unseen) => None,
        };
        if let Some(event) = update {
            following.set(&name, event);
        }
    }
}

/// Whether an API error is a 410 Gone (the version is too old).
fn gone(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 410)
}

/// Whether an API error is a refusal (401 Unauthorized, 403 Forbidden).
fn refused(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 401 || status.code == 403)
}

impl Watching {
    fn request(&self, verb: &'static str) -> Request<'_> {
        Request::core(verb, "pods", &self.namespace)
    }

    /// Records a refusal: every waiting call fails with it.
    fn refuse(&self, verb: &'static str, err: kube::Error) {
        let error = self.request(verb).error(err);
        tracing::warn!(%error, "the pod watch is refused");
        self.failure.send_replace(Some(error));
    }

    /// Clears a refusal once a request succeeds again.
    fn accepted(&self) {
        self.failure
            .send_if_modified(|failure| failure.take().is_some());
    }

    fn waiting(&self) -> bool {
        !lock(&self.waiters).waiters.is_empty()
    }

    /// The watch loop: runs until the watcher is dropped.
    async fn run(self, mut version: String) {
        let policy = retry::backoff(Duration::from_millis(200), Duration::from_secs(30), None);
        let mut backoff = policy.build();
        // Whether the last watch request was answered 410 Gone.
        let mut gone_last = false;
        let mut resync_at = later(Instant::now(), self.bounds.resync);
        loop {
            // Bookmarks are on by default: they keep `version` fresh and
            // show a quiet watch is alive.
            let params = WatchParams::default()
                .labels(&self.selector)
                .timeout(u32::try_from(self.bounds.server_timeout.as_secs()).unwrap_or(290));
            let opened = tokio::time::timeout(self.bounds.idle, self.api.watch(&params, &version));
            let stream = match opened.await {
                Ok(Ok(stream)) => {
                    // Answered 200: the watch is allowed (again).
                    self.accepted();
                    stream
                }
                Ok(Err(err)) if gone(&err) => {
                    // The version is too old, said on the request itself
                    // (not as an event): asking again with it gets the
                    // same answer. List, and watch from the list's version;
                    // back off only when that happens again at once.
                    tracing::debug!("watch version {version} expired (HTTP 410); listing again");
                    if std::mem::replace(&mut gone_last, true) {
                        let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                        self.pause(delay, &mut resync_at).await;
                    }
                    version = self.relist().await;
                    continue;
                }
                failed => {
                    gone_last = false;
                    match failed {
                        Ok(Err(err)) if refused(&err) => self.refuse("watch", err),
                        Ok(Err(err)) => tracing::warn!(%err, "cannot watch pods; retrying"),
                        _ => tracing::warn!(
                            "no answer to the pod watch within {:?}; retrying",
                            self.bounds.idle
                        ),
                    }
                    let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                    self.pause(delay, &mut resync_at).await;
                    continue;
                }
            };
            gone_last = false;
            let opened_at = Instant::now();
            let mut events = 0u64;
            let mut last = opened_at;
            let mut stream = std::pin::pin!(stream);
            loop {
                let item = tokio::select! {
                    item = stream.next() => item,
                    _ = tokio::time::sleep_until(later(last, self.bounds.idle)) => {
                        tracing::warn!(
                            "the pod watch sent nothing (no event, no bookmark) for {:?}; re-establishing it",
                            self.bounds.idle
                        );
                        break;
                    }
                    _ = tokio::time::sleep_until(resync_at) => {
                        resync_at = later(Instant::now(), self.bounds.resync);
                        self.resync().await;
                        continue;
                    }
                };
                let Some(item) = item else { break };
                last = Instant::now();
                events += 1;
                match item {
                    Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) => {
                        backoff = policy.build();
                        self.accepted();
                        if let Some(v) = &pod.metadata.resource_version {
                            version.clone_from(v);
                        }
                        dispatch(&self.waiters, PodEvent::Seen(Arc::new(pod)));
                    }
                    Ok(WatchEvent::Deleted(pod)) => {
                        self.accepted();
                        if let Some(v) = &pod.metadata.resource_version {
                            version.clone_from(v);
                        }
                        dispatch(&self.waiters, PodEvent::Deleted(Arc::new(pod)));
                    }
                    Ok(WatchEvent::Bookmark(bookmark)) => {
                        backoff = policy.build();
                        self.accepted();
                        version = bookmark.metadata.resource_version;
                    }
                    Ok(WatchEvent::Error(status)) if status.code == 410 => {
                        tracing::debug!("watch version {version} expired; listing again");
                        version = self.relist().await;
                        break;
                    }
                    Ok(WatchEvent::Error(status)) if status.code == 401 || status.code == 403 => {
                        self.refuse("watch", kube::Error::Api(status));
                        break;
                    }
                    Ok(WatchEvent::Error(status)) => {
                        tracing::warn!(message = %status.message, code = status.code, "watch error; resuming");
                        break;
                    }
                    Err(err) => {
                        tracing::debug!(%err, "watch stream ended; resuming from {version}");
                        break;
                    }
                }
            }
            // A watch that ends at once without an event is a failure
            // too: back off instead of looping hot.
            if events == 0 && opened_at.elapsed() < Duration::from_secs(1) {
                let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                self.pause(delay, &mut resync_at).await;
            }
        }
    }

    /// Waits `delay`, keeping up the safety net meanwhile.
    async fn pause(&self, delay: Duration, resync_at: &mut Instant) {
        let until = later(Instant::now(), delay);
        while *resync_at < until {
            tokio::time::sleep_until(*resync_at).await;
            *resync_at = later(Instant::now(), self.bounds.resync);
            self.resync().await;
        }
        tokio::time::sleep_until(until).await;
    }

    /// The safety net: one list of the session's pods, while calls wait.
    async fn resync(&self) {
        if !self.waiting() {
            return;
        }
        // No resourceVersion: a consistent read, fresher than anything
        // the watch delivered before it was asked for.
        let params = ListParams::default().labels(&self.selector);
        let started = list_started(&self.waiters);
        let answer = tokio::time::timeout(self.bounds.idle, self.api.list(&params)).await;
        match answer {
            Ok(Ok(list)) => {
                self.accepted();
                hand_over(&self.waiters, list.items, started);
            }
            Ok(Err(err)) if refused(&err) => self.refuse("list", err),
            Ok(Err(err)) => tracing::debug!(%err, "the safety-net list of pods failed"),
            Err(_) => tracing::debug!("no answer to the safety-net list of pods"),
        }
    }

    /// Lists the session's pods after the watch fell too far behind, hands
    /// each to its waiter, and gives the version to resume from.
    async fn relist(&self) -> String {
        let params = ListParams::default().labels(&self.selector);
        let request = self.request("list");
        let started = list_started(&self.waiters);
        match api::bounded(&request, || self.api.list(&params)).await {
            Ok(list) => {
                let listed = list.items.len();
                hand_over(&self.waiters, list.items, started);
                tracing::debug!(pods = listed, "re-listed pods");
                list.metadata
                    .resource_version
                    .unwrap_or_else(|| "0".to_owned())
            }
            Err(err) => {
                if let Error::Forbidden { .. } = err {
                    self.failure.send_replace(Some(err));
                } else {
                    tracing::warn!(%err, "cannot re-list pods; watching from now");
                }
                "0".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod at an opaque version (not a number, not ordered).
    fn pod(name: &str, version: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.to_owned());
        pod.metadata.resource_version = Some(version.to_owned());
        pod
    }

    fn waiters(names: &[&str]) -> (Waiters, Vec<watch::Receiver<PodEvent>>) {
        let waiters: Waiters = Arc::default();
        let receivers = names
            .iter()
            .map(|name| {
                let (sender, receiver) = watch::channel(PodEvent::Unseen);
                let waiter = Waiter { sender, changed: 0 };
                lock(&waiters).waiters.insert((*name).to_owned(), waiter);
                receiver
            })
            .collect();
        (waiters, receivers)
    }

    fn version(event: &PodEvent) -> Option<&str> {
        event.pod()?.metadata.resource_version.as_deref()
    }

    #[test]
    fn a_list_changes_only_what_the_watch_left_alone_meanwhile() {
        let (waiters, receivers) = waiters(&["a", "b", "c"]);
        dispatch(&waiters, PodEvent::Seen(Arc::new(pod("a", "zz"))));
        dispatch(&waiters, PodEvent::Seen(Arc::new(pod("b", "zz"))));
        let started = list_started(&waiters);
        // While the list is on its way, the watch moves `a` on.
        dispatch(&waiters, PodEvent::Seen(Arc::new(pod("a", "q7"))));
        let listed = vec![pod("a", "m1"), pod("b", "m2"), pod("c", "m3")];
        hand_over(&waiters, listed, started);
        assert_eq!(
            version(&receivers[0].borrow()),
            Some("q7"),
            "the watch's order wins"
        );
        assert_eq!(
            version(&receivers[1].borrow()),
            Some("m2"),
            "the list is newer"
        );
        assert_eq!(
            version(&receivers[2].borrow()),
            Some("m3"),
            "first seen by the list"
        );
        // The same version again changes nothing (no wake-up).
        let mut b = receivers[1].clone();
        b.mark_unchanged();
        let started = list_started(&waiters);
        hand_over(&waiters, vec![pod("b", "m2")], started);
        assert!(!b.has_changed().unwrap());
    }

    #[test]
    fn a_pod_missing_from_a_later_list_is_gone_but_not_one_seen_meanwhile() {
        let (waiters, receivers) = waiters(&["old", "new", "unseen"]);
        dispatch(&waiters, PodEvent::Seen(Arc::new(pod("old", "x4"))));
        let started = list_started(&waiters);
        // Created (and seen) after the list was asked for: missing from it
        // and alive.
        dispatch(&waiters, PodEvent::Seen(Arc::new(pod("new", "a1"))));
        hand_over(&waiters, Vec::new(), started);
        assert!(matches!(*receivers[0].borrow(), PodEvent::Deleted(_)));
        assert!(matches!(*receivers[1].borrow(), PodEvent::Seen(_)));
        assert!(matches!(*receivers[2].borrow(), PodEvent::Unseen));
        // A deletion is final: neither a list nor a late event undoes it.
        let started = list_started(&waiters);
        hand_over(&waiters, vec![pod("old", "x4")], started);
        dispatch(&waiters, PodEvent::Seen(Arc::new(pod("old", "x3"))));
        assert!(matches!(*receivers[0].borrow(), PodEvent::Deleted(_)));
    }
}
