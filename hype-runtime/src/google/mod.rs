//! Google Cloud plumbing shared by Cloud Storage staging
//! ([`crate::staging::gcs`]) and GKE clusters
//! ([`crate::backend::kubernetes::gke`]): Application Default Credentials
//! and the REST helpers both use. The `gcs` feature (GKE: `gke`, which
//! includes `gcs`).

pub(crate) mod credentials;
pub(crate) mod rest;
