//! The submitter's Lease: a `coordination.k8s.io/v1` Lease named
//! `hype-<session>` in the submitter's namespace, created when the
//! submitter connects, renewed every [`RENEW_EVERY`] while it lives, and
//! deleted by `close()`.
//!
//! Every pod and transient claim of the session carries an
//! `ownerReference` to it, so deleting the Lease lets the cluster's garbage
//! collector remove whatever the session left; a submitter killed before
//! it could close leaves a Lease that is no longer renewed, which
//! `hype gc` deletes: at once when it runs on the submitter's host and
//! sees the holder gone, else once the Lease's duration and its grace
//! period have passed (and then removes the session's objects itself too,
//! for API servers without a garbage collector).
//!
//! The Lease says who holds it: `spec.holderIdentity` is the submitter's
//! [`Owner`] (`<pid>.<start>.<boot>@<host>`), `spec.leaseDurationSeconds`
//! is [`LEASE_DURATION`], `spec.renewTime` the last renewal.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use super::retry::{self, Request};
use crate::backend::labels;
use crate::error::Error;
use crate::owner::Owner;

/// What `spec.leaseDurationSeconds` says: a Lease not renewed for this
/// long belongs to a submitter that is gone (or cut off).
pub const LEASE_DURATION: Duration = Duration::from_secs(60);
/// How often a living submitter renews its Lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(20);
/// The bound on one renewal.
const RENEW_TIMEOUT: Duration = Duration::from_secs(10);
/// The API group of Leases.
pub(crate) const GROUP: &str = "coordination.k8s.io";
/// Annotation of the Lease (and of pods): the owner process, as text.
pub(crate) const ANNOTATION_OWNER: &str = "hype.dev/owner";

/// The name of a session's Lease.
pub fn lease_name(session: &str) -> String {
    format!("hype-{}", labels::label_value(session))
}

/// The Lease of one submitter, renewed until it is released or dropped.
#[derive(Debug)]
pub(crate) struct SessionLease {
    api: Api<Lease>,
    namespace: String,
    name: String,
    /// The Lease's UID: a new one if the Lease had to be created again.
    uid: Arc<Mutex<String>>,
    renewer: tokio::task::JoinHandle<()>,
    released: std::sync::atomic::AtomicBool,
}

impl Drop for SessionLease {
    /// A submitter dropped without `close()`: the Lease is deleted in the
    /// background (when a runtime still runs), so the garbage collector
    /// removes what the session left; if that cannot happen, the Lease
    /// goes stale and `hype gc` collects it.
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (api, name) = (self.api.clone(), self.name.clone());
        handle.spawn(async move {
            let params = DeleteParams::background();
            let deleting = api.delete(&name, &params);
            match tokio::time::timeout(super::retry::ATTEMPT_TIMEOUT, deleting).await {
                Ok(Ok(_)) => tracing::debug!(lease = %name, "deleted the lease of a dropped submitter"),
                Ok(Err(err)) if retry::is_not_found(&err) => {}
                Ok(Err(err)) => tracing::warn!(lease = %name, %err, "cannot delete the lease of a dropped submitter; `hype gc` removes it once stale"),
                Err(_) => tracing::warn!(lease = %name, "no answer to the lease's delete; `hype gc` removes it once stale"),
            }
        });
    }
}

impl SessionLease {
    /// Creates the Lease of `session` in `namespace` and starts renewing it.
    pub async fn acquire(
        api: Api<Lease>,
        namespace: &str,
        session: &str,
    ) -> Result<SessionLease, Error> {
        let name = lease_name(session);
        let lease = lease(&name, session);
        let uid = create_or_adopt(&api, namespace, &lease).await?;
        tracing::debug!(lease = %name, %uid, "holding the session's lease");
        let uid = Arc::new(Mutex::new(uid));
        let renewer = tokio::spawn(renew(
            api.clone(),
            namespace.to_owned(),
            lease,
            Arc::clone(&uid),
        ));
        Ok(SessionLease {
            api,
            namespace: namespace.to_owned(),
            name,
            uid,
            renewer,
            released: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The `ownerReference` every pod and transient claim of the session
    /// carries.
    pub fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: format!("{GROUP}/v1"),
            kind: "Lease".to_owned(),
            name: self.name.clone(),
            uid: self.uid.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            block_owner_deletion: None,
            controller: None,
        }
    }

    /// Stops renewing and deletes the Lease (bounded retries); with
    /// background propagation, the garbage collector removes its dependents.
    pub async fn release(&self) -> Result<(), Error> {
        self.renewer.abort();
        let request = Request::core("delete", "leases", &self.namespace)
            .in_group(GROUP)
            .named(&self.name);
        let params = DeleteParams::background();
        retry::bounded(&request, || async {
            match self.api.delete(&self.name, &params).await {
                Err(err) if retry::is_not_found(&err) => Ok(()),
                other => other.map(|_| ()),
            }
        })
        .await?;
        self.released
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// The Lease object of a session, held from now.
fn lease(name: &str, session: &str) -> Lease {
    let now = MicroTime(Timestamp::now());
    let owner = Owner::current().to_string();
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels::session_labels(session)),
            annotations: Some([(ANNOTATION_OWNER.to_owned(), owner.clone())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(owner),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..LeaseSpec::default()
        }),
    }
}

/// Creates the Lease; a 409 on a retried create (its first response was
/// lost) is this process's own Lease when it names this process as holder.
async fn create_or_adopt(
    api: &Api<Lease>,
    namespace: &str,
    lease: &Lease,
) -> Result<String, Error> {
    let name = lease.metadata.name.as_deref().unwrap_or_default();
    let request = Request::core("create", "leases", namespace)
        .in_group(GROUP)
        .named(name);
    let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
    let created = retry::bounded(&request, || async {
        match api.create(&PostParams::default(), lease).await {
            Err(err) if retry::is_conflict(&err) => match api.get(name).await {
                Ok(existing)
                    if existing
                        .spec
                        .as_ref()
                        .and_then(|s| s.holder_identity.as_ref())
                        == holder.as_ref() =>
                {
                    Ok(existing)
                }
                Ok(_) => Err(err),
                Err(get_err) => Err(get_err),
            },
            other => other,
        }
    })
    .await?;
    created.metadata.uid.ok_or_else(|| Error::Cluster {
        operation: request.to_string(),
        message: "the API server returned a Lease without a UID".to_owned(),
        source: None,
    })
}

/// Renews the Lease every [`RENEW_EVERY`]; creates it again (with a new
/// UID, logged) if someone deleted it, for instance `hype gc` on another
/// host after this process was suspended for longer than the Lease's
/// duration and the grace period.
async fn renew(api: Api<Lease>, namespace: String, lease: Lease, uid: Arc<Mutex<String>>) {
    let name = lease.metadata.name.clone().unwrap_or_default();
    let mut ticks = tokio::time::interval(RENEW_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is now: the Lease was just created
    loop {
        ticks.tick().await;
        let patch = serde_json::json!({
            "spec": {"renewTime": MicroTime(Timestamp::now())}
        });
        let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
        match tokio::time::timeout(RENEW_TIMEOUT, api.patch(&name, &params, &patch)).await {
            Ok(Ok(_)) => tracing::trace!(lease = %name, "renewed"),
            Ok(Err(err)) if retry::is_not_found(&err) => {
                tracing::warn!(lease = %name, "the session's lease was deleted while the submitter lives (by `hype gc` on another host after a long pause?): creating it again; its pods may have been collected");
                let mut fresh = lease.clone();
                if let Some(spec) = fresh.spec.as_mut() {
                    let now = MicroTime(Timestamp::now());
                    spec.acquire_time = Some(now.clone());
                    spec.renew_time = Some(now);
                }
                match create_or_adopt(&api, &namespace, &fresh).await {
                    Ok(new_uid) => *uid.lock().unwrap_or_else(|e| e.into_inner()) = new_uid,
                    Err(err) => {
                        tracing::warn!(lease = %name, %err, "cannot create the lease again")
                    }
                }
            }
            Ok(Err(err)) => {
                tracing::warn!(lease = %name, %err, "cannot renew the session's lease; trying again in {RENEW_EVERY:?}")
            }
            Err(_) => {
                tracing::warn!(lease = %name, "no answer to the lease renewal within {RENEW_TIMEOUT:?}; trying again in {RENEW_EVERY:?}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_names_its_session_and_holder() {
        let lease = lease(&lease_name("abc123"), "abc123");
        assert_eq!(lease.metadata.name.as_deref(), Some("hype-abc123"));
        let labels = lease.metadata.labels.unwrap();
        assert_eq!(labels["hype.dev/session"], "abc123");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "hype");
        let spec = lease.spec.unwrap();
        assert_eq!(spec.lease_duration_seconds, Some(60));
        assert_eq!(
            spec.holder_identity.as_deref(),
            Some(Owner::current().to_string().as_str())
        );
        assert!(spec.renew_time.is_some() && spec.acquire_time.is_some());
    }
}
