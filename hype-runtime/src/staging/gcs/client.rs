//! The clients of a [`GcsStaging`]: the `google-cloud-storage` client for
//! reads and uploads and the JSON API client ([`Rest`]) for the rest, made
//! on first use with the store's credentials, retry policy and backoff.

use std::time::Duration;

use google_cloud_auth::credentials::Credentials;
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::RetryPolicyExt;
use google_cloud_storage::client::Storage;
use google_cloud_storage::retry_policy::RetryableErrors;

use super::GcsStaging;
use super::json::Rest;
use crate::error::Error;
use crate::google::credentials::{GoogleCredentials, ensure_crypto_provider};

/// The credentials a store was given.
#[derive(Clone)]
pub(super) enum CredentialChoice {
    ApplicationDefault,
    Anonymous,
    Given(Credentials),
}

/// A store's clients, made on first use.
pub(super) struct Clients {
    pub(super) storage: Storage,
    pub(super) rest: Rest,
}

impl GcsStaging {
    /// The Cloud Storage client this store uses (created on first use), for
    /// tools and benchmarks that want to compare against it.
    pub async fn storage_client(&self) -> Result<Storage, Error> {
        Ok(self.clients().await?.storage.clone())
    }

    /// The clients, made on first use.
    pub(super) async fn clients(&self) -> Result<&Clients, Error> {
        self.inner
            .clients
            .get_or_try_init(|| async {
                ensure_crypto_provider();
                let credentials = match &self.inner.credentials {
                    CredentialChoice::ApplicationDefault => {
                        GoogleCredentials::application_default(&self.purpose())?
                    }
                    CredentialChoice::Anonymous => GoogleCredentials::anonymous(),
                    CredentialChoice::Given(credentials) => {
                        GoogleCredentials::injected(credentials.clone())
                    }
                };
                let backoff = ExponentialBackoffBuilder::new()
                    .with_initial_delay(Duration::from_millis(100))
                    .with_maximum_delay(Duration::from_secs(1))
                    .with_scaling(2.0)
                    .build()
                    .map_err(|err| self.setup_error(err.to_string()))?;
                let mut builder = Storage::builder()
                    .with_endpoint(self.inner.endpoint.clone())
                    .with_credentials(credentials.credentials.clone())
                    .with_retry_policy(RetryableErrors.with_attempt_limit(self.inner.attempts))
                    .with_backoff_policy(backoff);
                if let Some(threshold) = self.inner.resumable_upload_threshold {
                    builder = builder.with_resumable_upload_threshold(threshold);
                }
                let storage = builder
                    .build()
                    .await
                    .map_err(|err| self.setup_error(err.to_string()))?;
                let http = reqwest::Client::builder()
                    .build()
                    .map_err(|err| self.setup_error(err.to_string()))?;
                let rest = Rest {
                    http,
                    endpoint: self.inner.endpoint.clone(),
                    credentials,
                    attempts: self.inner.attempts,
                    request_timeout: self.inner.timeout,
                    purpose: self.purpose(),
                };
                Ok(Clients { storage, rest })
            })
            .await
    }

    fn setup_error(&self, message: String) -> Error {
        Error::Staging {
            operation: "open",
            uri: self.inner.location.clone(),
            message: format!("cannot create the Cloud Storage client: {message}"),
            source: None,
        }
    }
}
