//! One shared watch per submitter: a task watching the pods of the
//! submitter's session (label selector) that wakes each waiting call when
//! its pod changes. No per-pod polling.
//!
//! The watch starts from the resourceVersion of an initial list taken
//! before any pod is created, and resumes from the last version it saw when
//! the connection drops or times out; a `410 Gone` (version too old)
//! re-lists and goes on from the list's version. Waiters register a pod
//! name before the pod is created, so no event can be missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::sync::watch;

use super::retry as api;
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

type Waiters = Arc<Mutex<HashMap<String, watch::Sender<PodEvent>>>>;

/// The shared watch of one session's pods.
#[derive(Debug)]
pub(crate) struct PodWatcher {
    waiters: Waiters,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PodWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodWatcher {
    /// Lists the session's pods (to learn where to start) and starts the
    /// watch task.
    pub async fn start(api: Api<Pod>, selector: String) -> Result<PodWatcher, Error> {
        let list_params = ListParams::default().labels(&selector);
        let version = api::bounded("list pods", || api.list_metadata(&list_params))
            .await?
            .metadata
            .resource_version
            .unwrap_or_else(|| "0".to_owned());
        let waiters: Waiters = Arc::default();
        let task = tokio::spawn(run(api, selector, version, waiters.clone()));
        Ok(PodWatcher { waiters, task })
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<PodEvent>>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn dispatch(waiters: &Waiters, event: PodEvent) {
    let name = match &event {
        PodEvent::Seen(pod) | PodEvent::Deleted(pod) => pod.metadata.name.clone(),
        PodEvent::Unseen => None,
    };
    let Some(name) = name else { return };
    let waiters = waiters.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(sender) = waiters.get(&name) {
        sender.send_replace(event);
    }
}

/// The watch loop: runs until the watcher is dropped.
async fn run(api: Api<Pod>, selector: String, mut version: String, waiters: Waiters) {
    let policy = retry::backoff(Duration::from_millis(100), Duration::from_secs(5), None);
    let mut backoff = policy.build();
    loop {
        // Bookmarks are on by default: they keep `version` fresh.
        let params = WatchParams::default().labels(&selector).timeout(290);
        let stream = match api.watch(&params, &version).await {
            Ok(stream) => stream,
            Err(err) => {
                let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(%err, ?delay, "cannot watch pods; retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) => {
                    backoff = policy.build();
                    if let Some(v) = &pod.metadata.resource_version {
                        version.clone_from(v);
                    }
                    dispatch(&waiters, PodEvent::Seen(Arc::new(pod)));
                }
                Ok(WatchEvent::Deleted(pod)) => {
                    if let Some(v) = &pod.metadata.resource_version {
                        version.clone_from(v);
                    }
                    dispatch(&waiters, PodEvent::Deleted(Arc::new(pod)));
                }
                Ok(WatchEvent::Bookmark(bookmark)) => {
                    version = bookmark.metadata.resource_version;
                }
                Ok(WatchEvent::Error(status)) if status.code == 410 => {
                    tracing::debug!("watch version {version} expired; listing again");
                    version = relist(&api, &selector, &waiters).await;
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
    }
}

/// Lists the session's pods after the watch fell too far behind, hands each
/// to its waiter, and gives the version to resume from. Pods that vanished
/// meanwhile are noticed by their waiters' deadlines and by deletion on
/// cleanup.
async fn relist(api: &Api<Pod>, selector: &str, waiters: &Waiters) -> String {
    let params = ListParams::default().labels(selector);
    match api::bounded("list pods", || api.list(&params)).await {
        Ok(list) => {
            let names: Vec<Option<String>> =
                list.items.iter().map(|p| p.metadata.name.clone()).collect();
            for pod in list.items {
                dispatch(waiters, PodEvent::Seen(Arc::new(pod)));
            }
            tracing::debug!(pods = names.len(), "re-listed pods");
            list.metadata
                .resource_version
                .unwrap_or_else(|| "0".to_owned())
        }
        Err(err) => {
            tracing::warn!(%err, "cannot re-list pods; watching from now");
            "0".to_owned()
        }
    }
}
