//! Deleting what a session created, without giving up silently.
//!
//! - A finished call deletes its pod (bounded retries); if that fails (the
//!   API server is unreachable, say), the deletion goes on in the
//!   background, backing off from 1 s to 30 s, for as long as the
//!   submitter lives.
//! - A dropped call's pod is deleted the same way by its [`PodGuard`],
//!   armed before the pod's first create attempt, so a pod whose create
//!   response was lost is deleted too.
//! - `close()` waits (bounded) for those deletions, then sweeps: one
//!   collection delete of the session's pods and one of its transient
//!   claims, by label, and finally the session's Lease. An API server that
//!   does not serve `deletecollection` (it answers 404 or 405) gets a list
//!   by the same labels and one delete per object instead
//!   ([`delete_matching`]). What a sweep cannot remove stays labelled and
//!   owned by a Lease that is no longer renewed: the cluster's garbage
//!   collector or `hype gc` removes it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, ListParams};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::retry::{self, ATTEMPT_TIMEOUT, Request};
use crate::error::Error;
use crate::retry::BackoffBuilder as _;

/// The pod deletions of one submitter.
#[derive(Debug, Clone)]
pub(crate) struct Deleter {
    pods: Api<Pod>,
    namespace: String,
    tracker: TaskTracker,
    /// Cancelled when the submitter's runner is dropped: background
    /// deletions stop with it.
    stop: CancellationToken,
}

impl Deleter {
    /// Deletions of pods in `namespace`.
    pub fn new(pods: Api<Pod>, namespace: &str) -> Deleter {
        Deleter {
            pods,
            namespace: namespace.to_owned(),
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    fn params() -> DeleteParams {
        DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        }
    }

    /// Deletes pod `name` now (bounded retries); if that fails, keeps
    /// trying in the background.
    pub async fn delete(&self, name: &str) {
        let request = Request::core("delete", "pods", &self.namespace).named(name);
        let params = Deleter::params();
        let result = retry::bounded(&request, || async {
            match self.pods.delete(name, &params).await {
                Err(err) if retry::is_not_found(&err) => Ok(()),
                other => other.map(|_| ()),
            }
        })
        .await;
        if let Err(err) = result {
            tracing::warn!(pod = %name, %err, "cannot delete the pod now; trying again in the background");
            self.later(name.to_owned());
        }
    }

    /// Deletes pod `name` in the background until it is gone or the
    /// submitter is.
    pub fn later(&self, name: String) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(pod = %name, "no tokio runtime to delete the pod on; `hype gc` removes it once the session's lease is stale");
            return;
        };
        let (pods, stop) = (self.pods.clone(), self.stop.clone());
        self.tracker
            .spawn_on(keep_deleting(pods, name, stop), &handle);
    }

    /// A guard that deletes pod `name` in the background when dropped
    /// while armed.
    pub fn guard(&self, name: &str, armed: bool) -> PodGuard {
        PodGuard {
            deleter: self.clone(),
            name: name.to_owned(),
            armed,
        }
    }

    /// Waits at most `bound` for the background deletions.
    pub async fn finish(&self, bound: Duration) {
        self.tracker.close();
        if tokio::time::timeout(bound, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pods = self.tracker.len(),
                "pod deletions still running after {bound:?}; sweeping anyway"
            );
        }
    }

    /// One collection delete of the pods matching `selector` (or one
    /// delete each, see [`delete_matching`]).
    pub async fn sweep(&self, selector: &str) -> Result<(), Error> {
        let params = Deleter::params();
        delete_matching(&self.pods, "pods", &self.namespace, selector, &params).await
    }

    /// Stops the background deletions.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Whether an API error says the server does not serve the request (404
/// or 405 to a collection delete).
fn unsupported(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404 || status.code == 405)
}

/// Deletes the `resource` objects of `api` (in `namespace`) that match
/// label selector `selector`: one collection delete; when the API server
/// refuses that as unsupported (404, 405), a list by the same selector and
/// one delete by name per object. Every request has bounded retries.
pub(crate) async fn delete_matching<K>(
    api: &Api<K>,
    resource: &'static str,
    namespace: &str,
    selector: &str,
    params: &DeleteParams,
) -> Result<(), Error>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let request = Request::core("deletecollection", resource, namespace);
    let list = ListParams::default().labels(selector);
    let collected = retry::bounded(&request, || async {
        match api.delete_collection(params, &list).await {
            Err(err) if unsupported(&err) => {
                tracing::debug!(%err, resource, "deletecollection is not served; deleting one by one");
                Ok(false)
            }
            other => other.map(|_| true),
        }
    })
    .await?;
    if collected {
        return Ok(());
    }
    let listing = Request::core("list", resource, namespace);
    let objects = retry::bounded(&listing, || api.list(&list)).await?;
    let mut first_failure = None;
    for name in objects.items.iter().map(|o| o.name_any()) {
        if let Err(err) = delete_named(api, resource, namespace, &name, params).await {
            first_failure.get_or_insert(err);
        }
    }
    first_failure.map_or(Ok(()), Err)
}

/// Deletes `resource` object `name` (bounded retries); one already gone
/// is fine.
pub(crate) async fn delete_named<K>(
    api: &Api<K>,
    resource: &'static str,
    namespace: &str,
    name: &str,
    params: &DeleteParams,
) -> Result<(), Error>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let request = Request::core("delete", resource, namespace).named(name);
    retry::bounded(&request, || async {
        match api.delete(name, params).await {
            Err(err) if retry::is_not_found(&err) => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await
}

/// Deletes a pod, backing off from 1 s to 30 s between attempts, until it
/// is gone, the API refuses (401, 403), or `stop` is cancelled.
async fn keep_deleting(pods: Api<Pod>, name: String, stop: CancellationToken) {
    let params = Deleter::params();
    let mut delays =
        crate::retry::backoff(Duration::from_secs(1), Duration::from_secs(30), None).build();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, pods.delete(&name, &params));
        let failure = match attempt.await {
            Ok(Ok(_)) => None,
            Ok(Err(err)) if retry::is_not_found(&err) => None,
            Ok(Err(kube::Error::Api(status))) if status.code == 401 || status.code == 403 => {
                // Refused: trying again will not help.
                tracing::warn!(pod = %name, message = %status.message, "the API refuses to delete the pod (HTTP {}); it stays until the session's lease is collected, or `hype gc` (docs/rbac.yaml: verb delete on pods)", status.code);
                return;
            }
            Ok(Err(err)) => Some(err.to_string()),
            Err(_) => Some(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
        };
        let Some(failure) = failure else {
            if attempts > 1 {
                tracing::info!(pod = %name, attempts, "deleted the pod after all");
            }
            return;
        };
        let delay = delays.next().unwrap_or(Duration::from_secs(30));
        tracing::warn!(pod = %name, %failure, ?delay, "cannot delete the pod; trying again");
        tokio::select! {
            _ = stop.cancelled() => {
                tracing::warn!(pod = %name, "the submitter is gone before its pod could be deleted; the session's garbage collection (its lease) or `hype gc` removes it");
                return;
            }
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Deletes the pod of a call in the background when dropped while armed:
/// the call's future was dropped, or its pod's create failed in a way that
/// may have created it.
pub(crate) struct PodGuard {
    deleter: Deleter,
    name: String,
    /// Whether dropping deletes the pod.
    pub armed: bool,
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        if self.armed {
            self.deleter.later(std::mem::take(&mut self.name));
        }
    }
}
