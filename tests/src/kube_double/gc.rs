//! The garbage collector, as kube-controller-manager runs it with
//! background propagation: an object (pod or claim) whose every
//! `ownerReference` names an owner that no longer exists (no object of
//! that kind, namespace and name, or one with another UID) is deleted,
//! shortly after its owner went. Owners of kinds the double does not store
//! are taken to exist, as the real collector keeps what it cannot resolve.
//!
//! Runs on the server's runtime from [`KubeTestServer::start`]
//! unless [`KubeletOptions::garbage_collector`] turns it off (not every API
//! server runs one: `hype gc` must not rely on it).
//!
//! [`KubeTestServer::start`]: super::KubeTestServer::start
//! [`KubeletOptions::garbage_collector`]: super::KubeletOptions::garbage_collector

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};

use super::Shared;
use super::api::ApiKind;
use super::store::{Key, Kind, State};

/// How long the collector lets changes gather before it looks.
const SETTLE: Duration = Duration::from_millis(50);

/// Collects dependents of deleted owners until the server stops.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut changes = shared.store.subscribe();
    loop {
        if changes.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(SETTLE).await;
        changes.borrow_and_update();
        collect(&shared);
    }
}

/// One pass: deletes every object whose owners are all gone.
pub(crate) fn collect(shared: &Arc<Shared>) {
    let (pods, claims) = {
        let state = shared.store.lock();
        (
            orphans(&state, state.pods.iter().map(|(k, p)| (k, &p.metadata))),
            orphans(&state, state.pvcs.iter().map(|(k, c)| (k, &c.metadata))),
        )
    };
    let options = DeleteOptions {
        propagation_policy: Some("Background".to_owned()),
        ..DeleteOptions::default()
    };
    for key in pods {
        tracing::debug!(pod = %key.1, "garbage collector: its owner is gone");
        let _ = Pod::delete(shared, &key, &options);
    }
    for key in claims {
        tracing::debug!(claim = %key.1, "garbage collector: its owner is gone");
        let _ = PersistentVolumeClaim::delete(shared, &key, &options);
    }
}

/// The keys of objects with owners, all of them gone, and not being
/// deleted already.
fn orphans<'a>(
    state: &State,
    objects: impl Iterator<Item = (&'a Key, &'a ObjectMeta)>,
) -> Vec<Key> {
    objects
        .filter(|(_, meta)| meta.deletion_timestamp.is_none())
        .filter(|(key, meta)| {
            let owners = meta.owner_references.as_deref().unwrap_or_default();
            !owners.is_empty()
                && owners.iter().all(|owner| {
                    let Some(kind) = Kind::from_reference(&owner.api_version, &owner.kind) else {
                        return false;
                    };
                    let owner_key = (key.0.clone(), owner.name.clone());
                    uid_of(state, kind, &owner_key).as_deref() != Some(owner.uid.as_str())
                })
        })
        .map(|(key, _)| key.clone())
        .collect()
}

fn uid_of(state: &State, kind: Kind, key: &Key) -> Option<String> {
    let meta = match kind {
        Kind::Pod => state.get::<Pod>(key).map(|o| &o.metadata),
        Kind::Pvc => state.get::<PersistentVolumeClaim>(key).map(|o| &o.metadata),
        Kind::Secret => state.get::<Secret>(key).map(|o| &o.metadata),
        Kind::Lease => state.get::<Lease>(key).map(|o| &o.metadata),
    }?;
    meta.uid.clone()
}
