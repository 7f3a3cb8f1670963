//! [`GcsStagingBuilder`]: a [`GcsStaging`]'s settings before it is built
//! (endpoint, credentials, attempts, deadlines, the resumable-upload
//! threshold), and [`GcsStaging::new`], which reads the emulator variable.

use std::sync::Arc;
use std::time::Duration;

use google_cloud_auth::credentials::Credentials;
use tokio::sync::OnceCell;

use super::client::CredentialChoice;
use super::location::parse_location;
use super::{
    DEFAULT_ATTEMPTS, DEFAULT_ENDPOINT, DEFAULT_MIN_THROUGHPUT, DEFAULT_TIMEOUT, EMULATOR_HOST_VAR,
    GcsStaging, Inner,
};
use crate::error::Error;

/// Settings of a [`GcsStaging`] before it is built.
#[derive(Clone)]
#[must_use]
pub struct GcsStagingBuilder {
    location: String,
    endpoint: Option<String>,
    credentials: CredentialChoice,
    attempts: u32,
    timeout: Duration,
    min_throughput: u64,
    resumable_upload_threshold: Option<usize>,
}

impl std::fmt::Debug for GcsStagingBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsStagingBuilder")
            .field("location", &self.location)
            .field("endpoint", &self.endpoint)
            .field("attempts", &self.attempts)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl GcsStagingBuilder {
    /// The storage endpoint (default `DEFAULT_ENDPOINT`): an emulator's
    /// `http://127.0.0.1:PORT`, or a private endpoint.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into().trim_end_matches('/').to_owned());
        self
    }

    /// Uses these credentials instead of Application Default Credentials.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = CredentialChoice::Given(credentials);
        self
    }

    /// Whether to send requests without credentials (an emulator);
    /// `false` goes back to Application Default Credentials.
    pub fn anonymous(mut self, anonymous: bool) -> Self {
        self.credentials = if anonymous {
            CredentialChoice::Anonymous
        } else {
            CredentialChoice::ApplicationDefault
        };
        self
    }

    /// How many times one request is tried (at least 1; default
    /// `DEFAULT_ATTEMPTS`).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The fixed part of each operation's deadline (default
    /// `DEFAULT_TIMEOUT`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The slowest throughput, in bytes per second, an operation's deadline
    /// allows for (default `DEFAULT_MIN_THROUGHPUT`).
    pub fn min_throughput(mut self, bytes_per_second: u64) -> Self {
        self.min_throughput = bytes_per_second.max(1);
        self
    }

    /// Objects of this many bytes or more are uploaded with a resumable
    /// session, smaller ones in one request (the client's default:
    /// 16 MiB).
    pub fn resumable_upload_threshold(mut self, bytes: usize) -> Self {
        self.resumable_upload_threshold = Some(bytes);
        self
    }

    /// The store. Nothing is contacted until it is first used.
    pub fn build(self) -> Result<GcsStaging, Error> {
        let (bucket, prefix) = parse_location(&self.location)?;
        let location = if prefix.is_empty() {
            format!("gs://{bucket}")
        } else {
            format!("gs://{bucket}/{prefix}")
        };
        Ok(GcsStaging {
            inner: Arc::new(Inner {
                location,
                bucket,
                prefix,
                endpoint: self.endpoint.unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
                credentials: self.credentials,
                attempts: self.attempts,
                timeout: self.timeout,
                min_throughput: self.min_throughput,
                resumable_upload_threshold: self.resumable_upload_threshold,
                clients: OnceCell::new(),
            }),
        })
    }
}

impl GcsStaging {
    /// The store at `location` (`gs://bucket/prefix`) with Application
    /// Default Credentials, or, when `STORAGE_EMULATOR_HOST` is set, the
    /// emulator it names without credentials. This is what
    /// `crate::staging::open` (and so `hype-run`) uses.
    pub fn new(location: &str) -> Result<GcsStaging, Error> {
        let builder = GcsStaging::builder(location);
        match std::env::var(EMULATOR_HOST_VAR) {
            Ok(host) if !host.trim().is_empty() => {
                let host = host.trim();
                let endpoint = if host.contains("://") {
                    host.to_owned()
                } else {
                    format!("http://{host}")
                };
                builder.endpoint(endpoint).anonymous(true).build()
            }
            _ => builder.build(),
        }
    }

    /// Settings for a store at `location`, starting from the defaults.
    pub fn builder(location: &str) -> GcsStagingBuilder {
        GcsStagingBuilder {
            location: location.to_owned(),
            endpoint: None,
            credentials: CredentialChoice::ApplicationDefault,
            attempts: DEFAULT_ATTEMPTS,
            timeout: DEFAULT_TIMEOUT,
            min_throughput: DEFAULT_MIN_THROUGHPUT,
            resumable_upload_threshold: None,
        }
    }
}
