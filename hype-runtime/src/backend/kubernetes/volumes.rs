//! Persistent volume claims for `VolumeRequest`s: transient claims are
//! created once per submitter and deleted when it closes (unless
//! `keep_on_exit`); persistent claims are created if missing, reused when
//! present, and kept. Claims ask for `ReadWriteOnce` and `ReadOnlyMany`, so
//! one writer can fill a volume and many readers can share it afterwards.
//!
//! A transient claim carries the labels `hype.dev/session=<session>` and
//! `hype.dev/lifetime=transient` and an `ownerReference` to the session's
//! Lease; `close()` deletes those the submitter created by name, then
//! sweeps the session's label with one collection delete (one delete each
//! where `deletecollection` is not served), and the garbage collector (or
//! `hype gc`) removes those of a killed submitter. A
//! kept transient claim (`keep_on_exit`) is labelled `hype.dev/lifetime=kept`
//! and has no owner; a persistent one `hype.dev/lifetime=persistent`.
//! Each claim carries a marker annotation unique to its creation, so a 409
//! after a lost create response is known to be this submitter's own claim.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams};
use tokio::sync::OnceCell;

use super::deletion;
use super::pod::ANNOTATION_MARKER;
use super::retry::{self, Request};
use crate::backend::labels;
use crate::environment::{VolumeLifetime, VolumeRequest};
use crate::error::Error;

/// The claims of one submitter.
#[derive(Debug)]
pub struct Volumes {
    api: Api<PersistentVolumeClaim>,
    namespace: String,
    session: String,
    owner: OwnerReference,
    ready: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    /// The transient claims (not kept) this submitter created: deleted
    /// by name on close, whatever the sweep does.
    created: Mutex<Vec<String>>,
}

impl Volumes {
    /// Claims in `namespace` (`api`'s) for `session`, whose transient claims
    /// `owner` owns (the session's Lease).
    pub fn new(
        api: Api<PersistentVolumeClaim>,
        namespace: &str,
        session: &str,
        owner: OwnerReference,
    ) -> Volumes {
        Volumes {
            api,
            namespace: namespace.to_owned(),
            session: session.to_owned(),
            owner,
            ready: Mutex::default(),
            created: Mutex::default(),
        }
    }

    /// Makes sure the claim of `request` exists (once per submitter, even
    /// when many calls ask at the same time).
    pub async fn ensure(&self, request: &VolumeRequest) -> Result<(), Error> {
        let cell = self
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(request.name().to_owned())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.create_or_reuse(request))
            .await?;
        Ok(())
    }

    async fn create_or_reuse(&self, request: &VolumeRequest) -> Result<(), Error> {
        let name = request.name();
        if request.lifetime() == VolumeLifetime::Persistent {
            let get = Request::core("get", "persistentvolumeclaims", &self.namespace).named(name);
            let existing = retry::bounded(&get, || self.api.get_opt(name)).await?;
            if let Some(claim) = existing {
                let class = claim
                    .spec
                    .as_ref()
                    .and_then(|s| s.storage_class_name.as_deref());
                if class != Some(request.storage_class()) {
                    tracing::warn!(claim = %name, ?class, wanted = %request.storage_class(), "reusing a claim of another storage class");
                }
                return Ok(());
            }
        }
        let marker = format!("{}-{}", self.session, crate::ids::random_suffix(16));
        let claim = claim(request, &self.session, &self.owner, &marker);
        let create = Request::core("create", "persistentvolumeclaims", &self.namespace).named(name);
        let created = retry::bounded(&create, || async {
            match self.api.create(&PostParams::default(), &claim).await {
                Err(err) if retry::is_conflict(&err) => {
                    let existing = self.api.get(name).await?;
                    let theirs = existing
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(ANNOTATION_MARKER));
                    Ok(if theirs == Some(&marker) {
                        "created (an earlier attempt's response was lost)"
                    } else {
                        "already there; reusing"
                    })
                }
                other => other.map(|_| "created"),
            }
        })
        .await?;
        tracing::debug!(claim = %name, "{created}");
        let ours = created != "already there; reusing";
        if ours && request.lifetime() == VolumeLifetime::Transient && !request.is_kept_on_exit() {
            self.created
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(name.to_owned());
        }
        Ok(())
    }

    /// Deletes the session's transient claims: those it created, by name;
    /// then every claim with the session's transient label, with one
    /// collection delete (kept and persistent claims carry other labels),
    /// or one delete each where `deletecollection` is not served.
    pub async fn delete_transient(&self) -> Result<(), Error> {
        const RESOURCE: &str = "persistentvolumeclaims";
        let params = DeleteParams::background();
        let created = self
            .created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut first_failure = None;
        for name in &created {
            if let Err(err) =
                deletion::delete_named(&self.api, RESOURCE, &self.namespace, name, &params).await
            {
                first_failure.get_or_insert(err);
            }
        }
        let selector = transient_selector(&self.session);
        let swept =
            deletion::delete_matching(&self.api, RESOURCE, &self.namespace, &selector, &params)
                .await;
        match (first_failure, swept) {
            (Some(err), _) | (None, Err(err)) => Err(err),
            (None, Ok(())) => Ok(()),
        }
    }
}

/// The label selector of a session's transient claims.
pub fn transient_selector(session: &str) -> String {
    let [managed, session] = labels::session_selector_terms(session);
    format!("{managed},{session},{}=transient", labels::LABEL_LIFETIME)
}

/// The claim of a volume request, with its creation's `marker`; a
/// transient claim is owned by `owner` (the session's Lease).
pub fn claim(
    request: &VolumeRequest,
    session: &str,
    owner: &OwnerReference,
    marker: &str,
) -> PersistentVolumeClaim {
    let transient = request.lifetime() == VolumeLifetime::Transient;
    let mut labels: BTreeMap<String, String> = if transient {
        // A transient claim belongs to its session; a persistent one outlives it.
        labels::session_labels(session)
    } else {
        labels::managed_labels()
    };
    let lifetime = match request.lifetime() {
        VolumeLifetime::Transient if request.is_kept_on_exit() => "kept",
        VolumeLifetime::Transient => "transient",
        VolumeLifetime::Persistent => "persistent",
    };
    labels.insert(labels::LABEL_LIFETIME.to_owned(), lifetime.to_owned());
    let owned = transient && !request.is_kept_on_exit();
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(request.name().to_owned()),
            labels: Some(labels),
            annotations: Some([(ANNOTATION_MARKER.to_owned(), marker.to_owned())].into()),
            owner_references: owned.then(|| vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned(), "ReadOnlyMany".to_owned()]),
            storage_class_name: Some(request.storage_class().to_owned()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(request.size().to_owned()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_ask_for_one_writer_then_many_readers() {
        let request = VolumeRequest::new("gce-ssd-pd", "10Gi");
        let lease = OwnerReference {
            kind: "Lease".to_owned(),
            name: "hype-sess".to_owned(),
            uid: "u1".to_owned(),
            ..OwnerReference::default()
        };
        let claim = claim(&request, "sess", &lease, "sess-m");
        assert_eq!(
            claim.metadata.owner_references.unwrap(),
            std::slice::from_ref(&lease)
        );
        assert_eq!(
            claim.metadata.labels.as_ref().unwrap()["hype.dev/lifetime"],
            "transient"
        );
        let spec = claim.spec.unwrap();
        assert_eq!(
            spec.access_modes.unwrap(),
            ["ReadWriteOnce", "ReadOnlyMany"]
        );
        assert_eq!(spec.storage_class_name.as_deref(), Some("gce-ssd-pd"));
        assert_eq!(
            spec.resources.unwrap().requests.unwrap()["storage"],
            Quantity("10Gi".into())
        );
        assert_eq!(claim.metadata.labels.unwrap()["hype.dev/session"], "sess");
        let persistent = super::claim(
            &VolumeRequest::persistent("data", "standard", "1Gi"),
            "sess",
            &lease,
            "sess-m",
        );
        assert_eq!(persistent.metadata.owner_references, None);
        let labels = persistent.metadata.labels.unwrap();
        assert!(!labels.contains_key("hype.dev/session"));
        assert_eq!(labels["hype.dev/lifetime"], "persistent");
        let kept = super::claim(
            &VolumeRequest::new("standard", "1Gi").keep_on_exit(true),
            "sess",
            &lease,
            "sess-m",
        );
        assert_eq!(kept.metadata.owner_references, None);
        assert_eq!(kept.metadata.labels.unwrap()["hype.dev/lifetime"], "kept");
    }
}
