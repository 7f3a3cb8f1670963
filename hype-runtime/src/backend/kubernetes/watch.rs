//! One shared watch per submitter: a task watching the pods of the
//! submitter's session (label selector) that wakes each waiting call when
//! its pod changes. No per-pod polling.
//!
//! The watch starts from the resourceVersion of an initial list taken
//! before any pod is created, and resumes from the last version it saw when
//! the connection drops or times out; a `410 Gone` (version too old)
//! re-lists and goes on from the list's version. Waiters register a pod
//! name before the pod is created, so no event can be missed.
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
//!   not one per pod) and hands each waiter anything newer than what it
//!   saw, including the deletion of a pod it saw.
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

type Waiters = Arc<Mutex<HashMap<String, watch::Sender<PodEvent>>>>;

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
        self.lock().insert(name.to_owned(), sender);
        receiver
    }

    /// Stops following pod `name`.
    pub fn unregister(&self, name: &str) {
        self.lock().remove(name);
    }

    /// The refusal that stops the watch, while it lasts: calls waiting on
    /// it fail with it.
    pub fn failure(&self) -> watch::Receiver<Option<Error>> {
        self.failure.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<PodEvent>>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A numeric resourceVersion (etcd's are); `None` for others, which are
/// then never compared.
fn version_of(pod: &Pod) -> Option<u64> {
    pod.metadata.resource_version.as_deref()?.parse().ok()
}

/// Hands `event` to its pod's waiter.
fn dispatch(waiters: &Waiters, event: PodEvent) {
    let Some(name) = event.pod().and_then(|p| p.metadata.name.clone()) else {
        return;
    };
    let waiters = waiters.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(sender) = waiters.get(&name) {
        sender.send_replace(event);
    }
}

/// Hands a listed pod to its waiter unless the waiter has seen this version
/// or a newer one (from the watch, while the list was on its way).
fn dispatch_listed(waiters: &Waiters, pod: Pod) {
    let Some(name) = pod.metadata.name.clone() else {
        return;
    };
    let waiters = waiters.lock().unwrap_or_else(|e| e.into_inner());
    let Some(sender) = waiters.get(&name) else {
        return;
    };
    sender.send_if_modified(|current| {
        let seen = current.pod();
        let newer = match (seen.and_then(version_of), version_of(&pod)) {
            (Some(seen), Some(listed)) => listed > seen,
            _ => {
                seen.and_then(|p| p.metadata.resource_version.as_ref())
                    != pod.metadata.resource_version.as_ref()
            }
        };
        let take = newer && !matches!(current, PodEvent::Deleted(_));
        if take {
            *current = PodEvent::Seen(Arc::new(pod));
        }
        take
    });
}

/// Tells waiters whose pod was seen, but is missing from a list taken at
/// `listed_at`, that it is gone. Only pods seen at a version before the
/// list's: one created after the list was taken is missing from it and
/// alive.
fn dispatch_vanished(waiters: &Waiters, listed: &[String], listed_at: Option<u64>) {
    let Some(listed_at) = listed_at else { return };
    let waiters = waiters.lock().unwrap_or_else(|e| e.into_inner());
    for (name, sender) in waiters.iter() {
        if listed.contains(name) {
            continue;
        }
        sender.send_if_modified(|current| match current {
            PodEvent::Seen(pod) if version_of(pod).is_some_and(|v| v <= listed_at) => {
                tracing::debug!(pod = %name, "the pod vanished without a watch event");
                *current = PodEvent::Deleted(Arc::clone(pod));
                true
            }
            _ => false,
        });
    }
}

/// Hands a list of the session's pods, taken at resourceVersion
/// `listed_at`, to the waiters: what is newer than what each saw, and the
/// deletion of pods they saw that the list no longer has.
fn hand_over(waiters: &Waiters, pods: Vec<Pod>, listed_at: Option<&str>) {
    let names: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    for pod in pods {
        dispatch_listed(waiters, pod);
    }
    dispatch_vanished(waiters, &names, listed_at.and_then(|v| v.parse().ok()));
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
        !self
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// The watch loop: runs until the watcher is dropped.
    async fn run(self, mut version: String) {
        let policy = retry::backoff(Duration::from_millis(200), Duration::from_secs(30), None);
        let mut backoff = policy.build();
        let mut resync_at = Instant::now() + self.bounds.resync;
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
                failed => {
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
            let opened_at = Instant::now();
            let mut events = 0u64;
            let mut last = opened_at;
            let mut stream = std::pin::pin!(stream);
            loop {
                let item = tokio::select! {
                    item = stream.next() => item,
                    _ = tokio::time::sleep_until(last + self.bounds.idle) => {
                        tracing::warn!(
                            "the pod watch sent nothing (no event, no bookmark) for {:?}; re-establishing it",
                            self.bounds.idle
                        );
                        break;
                    }
                    _ = tokio::time::sleep_until(resync_at) => {
                        resync_at = Instant::now() + self.bounds.resync;
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
        let until = Instant::now() + delay;
        while *resync_at < until {
            tokio::time::sleep_until(*resync_at).await;
            *resync_at = Instant::now() + self.bounds.resync;
            self.resync().await;
        }
        tokio::time::sleep_until(until).await;
    }

    /// The safety net: one list of the session's pods, while calls wait.
    async fn resync(&self) {
        if !self.waiting() {
            return;
        }
        let params = ListParams::default().labels(&self.selector);
        let answer = tokio::time::timeout(self.bounds.idle, self.api.list(&params)).await;
        match answer {
            Ok(Ok(list)) => {
                self.accepted();
                hand_over(
                    &self.waiters,
                    list.items,
                    list.metadata.resource_version.as_deref(),
                );
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
        match api::bounded(&request, || self.api.list(&params)).await {
            Ok(list) => {
                let listed = list.items.len();
                hand_over(
                    &self.waiters,
                    list.items,
                    list.metadata.resource_version.as_deref(),
                );
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

    fn pod(name: &str, version: u64) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.to_owned());
        pod.metadata.resource_version = Some(version.to_string());
        pod
    }

    fn waiters(names: &[&str]) -> (Waiters, Vec<watch::Receiver<PodEvent>>) {
        let waiters: Waiters = Arc::default();
        let receivers = names
            .iter()
            .map(|name| {
                let (sender, receiver) = watch::channel(PodEvent::Unseen);
                waiters.lock().unwrap().insert((*name).to_owned(), sender);
                receiver
            })
            .collect();
        (waiters, receivers)
    }

    fn version(event: &PodEvent) -> Option<u64> {
        event.pod().and_then(version_of)
    }

    #[test]
    fn a_list_hands_over_only_what_is_newer() {
        let (waiters, receivers) = waiters(&["a"]);
        dispatch(&waiters, PodEvent::Seen(Arc::new(pod("a", 7))));
        dispatch_listed(&waiters, pod("a", 5));
        assert_eq!(version(&receivers[0].borrow()), Some(7));
        dispatch_listed(&waiters, pod("a", 9));
        assert_eq!(version(&receivers[0].borrow()), Some(9));
    }

    #[test]
    fn a_pod_missing_from_a_later_list_is_gone_but_not_one_newer_than_it() {
        let (waiters, receivers) = waiters(&["old", "new", "unseen"]);
        dispatch(&waiters, PodEvent::Seen(Arc::new(pod("old", 4))));
        dispatch(&waiters, PodEvent::Seen(Arc::new(pod("new", 12))));
        dispatch_vanished(&waiters, &[], Some(10));
        assert!(matches!(*receivers[0].borrow(), PodEvent::Deleted(_)));
        assert!(matches!(*receivers[1].borrow(), PodEvent::Seen(_)));
        assert!(matches!(*receivers[2].borrow(), PodEvent::Unseen));
        // An unreadable list version infers nothing.
        dispatch(&waiters, PodEvent::Seen(Arc::new(pod("new", 12))));
        dispatch_vanished(&waiters, &[], None);
        assert!(matches!(*receivers[1].borrow(), PodEvent::Seen(_)));
    }
}
