//! Persistent volume claims for `VolumeRequest`s: transient claims are
//! created once per submitter and deleted when it closes (unless
//! `keep_on_exit`); persistent claims are created if missing, reused when
//! present, and kept. Claims ask for `ReadWriteOnce` and `ReadOnlyMany`, so
//! one writer can fill a volume and many readers can share it afterwards.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use tokio::sync::OnceCell;

use super::retry;
use crate::backend::labels;
use crate::environment::{VolumeLifetime, VolumeRequest};
use crate::error::Error;

/// The claims of one submitter.
#[derive(Debug)]
pub struct Volumes {
    api: Api<PersistentVolumeClaim>,
    session: String,
    ready: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    transient: Mutex<Vec<String>>,
}

impl Volumes {
    /// Claims in `api`'s namespace for `session`.
    pub fn new(api: Api<PersistentVolumeClaim>, session: &str) -> Volumes {
        Volumes {
            api,
            session: session.to_owned(),
            ready: Mutex::default(),
            transient: Mutex::default(),
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
            let existing =
                retry::bounded(&format!("get claim {name}"), || self.api.get_opt(name)).await?;
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
        let claim = claim(request, &self.session);
        let operation = format!("create claim {name}");
        match retry::bounded(&operation, || async {
            match self.api.create(&PostParams::default(), &claim).await {
                Err(err) if retry::is_conflict(&err) => Ok(None),
                other => other.map(Some),
            }
        })
        .await?
        {
            Some(_) => tracing::debug!(claim = %name, "created"),
            None => tracing::debug!(claim = %name, "already there; reusing"),
        }
        if request.lifetime() == VolumeLifetime::Transient && !request.is_kept_on_exit() {
            self.transient
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(name.to_owned());
        }
        Ok(())
    }

    /// Deletes the transient claims this submitter created.
    pub async fn delete_transient(&self) -> Result<(), Error> {
        let names = std::mem::take(&mut *self.transient.lock().unwrap_or_else(|e| e.into_inner()));
        let mut failures = Vec::new();
        for name in names {
            let operation = format!("delete claim {name}");
            let result = retry::bounded(&operation, || async {
                match self.api.delete(&name, &DeleteParams::default()).await {
                    Err(err) if retry::is_not_found(&err) => Ok(()),
                    other => other.map(|_| ()),
                }
            })
            .await;
            if let Err(err) = result {
                failures.push(err.to_string());
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::Cluster {
                operation: "delete transient claims".to_owned(),
                message: failures.join("; "),
                source: None,
            })
        }
    }
}

/// The claim of a volume request.
pub fn claim(request: &VolumeRequest, session: &str) -> PersistentVolumeClaim {
    let labels = match request.lifetime() {
        // A transient claim belongs to its session; a persistent one outlives it.
        VolumeLifetime::Transient => labels::session_labels(session),
        VolumeLifetime::Persistent => labels::managed_labels(),
    };
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(request.name().to_owned()),
            labels: Some(labels),
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
        let claim = claim(&request, "sess");
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
        let kept = super::claim(
            &VolumeRequest::persistent("data", "standard", "1Gi"),
            "sess",
        );
        assert!(
            !kept
                .metadata
                .labels
                .unwrap()
                .contains_key("hype.dev/session")
        );
    }
}
