//! Google credentials for GCS staging and GKE clusters: Application Default
//! Credentials (ADC), with errors that say where hype looked.
//!
//! ADC is searched in this order (google-cloud-auth, AIP-4110):
//! 1. the file `GOOGLE_APPLICATION_CREDENTIALS` names (a service account
//!    key, or any other credential file);
//! 2. gcloud's application-default file,
//!    `$HOME/.config/gcloud/application_default_credentials.json`
//!    (`gcloud auth application-default login`);
//! 3. the metadata server of the machine or pod (`metadata.google.internal`,
//!    or `GCE_METADATA_HOST`): a GCE VM's service account, or a GKE pod's
//!    Workload Identity.
//!
//! Tokens are cached and refreshed by google-cloud-auth in the background,
//! four minutes before they expire (ten seconds after they were fetched,
//! for tokens that live shorter than that), so every request gets a valid
//! one without waiting.

use std::path::PathBuf;

use google_cloud_auth::credentials::{CacheableResource, Credentials};
use http::{Extensions, HeaderMap};

use crate::error::Error;

/// The OAuth scope hype asks for: Cloud Storage and the GKE API.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Makes sure rustls has a process-wide crypto provider before a TLS client
/// is built. hype compiles in only rustls's `ring` provider (kube's choice
/// too): google-cloud-auth and reqwest are built without a provider of
/// their own, and expect the application to install one. An application
/// that installed another provider first keeps it.
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Where a set of credentials came from, for error messages.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// Given in code (`ContainerEngineCluster::credentials`).
    Injected,
    /// No credentials: requests go unauthenticated (an emulator).
    Anonymous,
    /// The file `GOOGLE_APPLICATION_CREDENTIALS` names.
    KeyFile(PathBuf),
    /// gcloud's application-default file.
    GcloudFile(PathBuf),
    /// The metadata server, after no file was found; `looked` says where.
    MetadataServer { looked: Vec<String> },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Injected => write!(f, "credentials given in code"),
            Source::Anonymous => write!(f, "no credentials (anonymous)"),
            Source::KeyFile(path) => {
                write!(f, "GOOGLE_APPLICATION_CREDENTIALS={}", path.display())
            }
            Source::GcloudFile(path) => write!(f, "gcloud credentials {}", path.display()),
            Source::MetadataServer { .. } => {
                write!(f, "the metadata server ({})", metadata_host())
            }
        }
    }
}

fn metadata_host() -> String {
    std::env::var("GCE_METADATA_HOST")
        .map(|host| format!("GCE_METADATA_HOST={host}"))
        .unwrap_or_else(|_| "metadata.google.internal".to_owned())
}

/// Credentials and where they came from.
#[derive(Debug, Clone)]
pub(crate) struct GoogleCredentials {
    pub(crate) credentials: Credentials,
    pub(crate) source: Source,
}

impl GoogleCredentials {
    /// Application Default Credentials. Must run inside a tokio runtime:
    /// google-cloud-auth starts its token refresh task here.
    pub(crate) fn application_default(purpose: &str) -> Result<GoogleCredentials, Error> {
        ensure_crypto_provider();
        let source = adc_source();
        let built = google_cloud_auth::credentials::Builder::default()
            .with_scopes([CLOUD_PLATFORM_SCOPE])
            .build();
        match built {
            Ok(credentials) => Ok(GoogleCredentials {
                credentials,
                source,
            }),
            Err(err) => match &source {
                Source::KeyFile(path) if !path.exists() => Err(Error::CredentialsNotFound {
                    purpose: purpose.to_owned(),
                    looked: vec![format!(
                        "GOOGLE_APPLICATION_CREDENTIALS names {}, which does not exist",
                        path.display()
                    )],
                }),
                _ => Err(Error::Config {
                    message: format!(
                        "the Google credentials of {source} cannot be used for {purpose}: {err}"
                    ),
                }),
            },
        }
    }

    /// Credentials given in code.
    pub(crate) fn injected(credentials: Credentials) -> GoogleCredentials {
        GoogleCredentials {
            credentials,
            source: Source::Injected,
        }
    }

    /// No credentials, for an emulator.
    pub(crate) fn anonymous() -> GoogleCredentials {
        GoogleCredentials {
            credentials: google_cloud_auth::credentials::anonymous::Builder::new().build(),
            source: Source::Anonymous,
        }
    }

    /// The headers that authenticate a request (`authorization`, and
    /// `x-goog-user-project` when a quota project is set).
    pub(crate) async fn headers(
        &self,
        purpose: &str,
        otherwise: impl FnOnce(String) -> Error,
    ) -> Result<HeaderMap, Error> {
        match self.credentials.headers(Extensions::new()).await {
            Ok(CacheableResource::New { data, .. }) => Ok(data),
            // Only returned when the caller passes an entity tag; hype never does.
            Ok(CacheableResource::NotModified) => Ok(HeaderMap::new()),
            Err(err) => Err(self.failure(purpose, &err, otherwise)),
        }
    }

    /// The error for credentials that gave no token: "not found" when hype
    /// fell back to a metadata server that is not there, else `otherwise`
    /// with a message naming the credentials.
    pub(crate) fn failure(
        &self,
        purpose: &str,
        err: &dyn std::fmt::Display,
        otherwise: impl FnOnce(String) -> Error,
    ) -> Error {
        match &self.source {
            Source::MetadataServer { looked } => {
                let mut looked = looked.clone();
                looked.push(format!(
                    "{} gave no token: {}",
                    self.source,
                    one_line(&err.to_string())
                ));
                Error::CredentialsNotFound {
                    purpose: purpose.to_owned(),
                    looked,
                }
            }
            source => otherwise(format!(
                "cannot get an access token from {source}: {}",
                one_line(&err.to_string())
            )),
        }
    }
}

/// Which ADC source google-cloud-auth will use, by the same rules.
fn adc_source() -> Source {
    if let Some(path) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
        return Source::KeyFile(PathBuf::from(path));
    }
    let mut looked = vec!["GOOGLE_APPLICATION_CREDENTIALS is not set".to_owned()];
    match std::env::var_os("HOME") {
        Some(home) => {
            let path =
                PathBuf::from(home).join(".config/gcloud/application_default_credentials.json");
            if path.exists() {
                return Source::GcloudFile(path);
            }
            looked.push(format!(
                "{} does not exist (`gcloud auth application-default login` writes it)",
                path.display()
            ));
        }
        None => looked.push("HOME is not set, so there is no gcloud credentials file".to_owned()),
    }
    Source::MetadataServer { looked }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// An `Arc`ed source error for [`Error::Staging`].
pub(crate) fn arc_source<E: std::error::Error + Send + Sync + 'static>(
    err: E,
) -> Option<crate::error::ErrorSource> {
    Some(err.into())
}
