//! Staging in Google Cloud Storage (the `gcs` feature): `gs://bucket/prefix`.
//!
//! Objects, under the location's prefix:
//! - `<prefix>/blobs/sha256/<hex>`: content-addressed blobs. Before an
//!   upload hype asks whether the blob is already there (same name, same
//!   size) and skips the upload if so; the upload itself carries the
//!   precondition `ifGenerationMatch=0`, so two submitters staging the same
//!   bytes at once write it once. Reads verify length and SHA-256 (hashed
//!   while the bytes arrive) before anything decodes them.
//! - `<prefix>/outcomes/<execution-id>`: outcome envelopes too large for a
//!   termination message, deleted once read.
//!
//! Payloads are streamed: an upload hands the caller's buffer to the client
//! without a copy (single request below the resumable-upload threshold,
//! 16 MiB by default, one resumable session above it), and a download
//! fills one buffer of the expected size.
//!
//! Failures are bounded: each request is tried at most
//! [`DEFAULT_ATTEMPTS`] times, with 100 ms to 1 s between tries, and each
//! operation has a deadline of [`DEFAULT_TIMEOUT`] plus the time the
//! payload takes at [`DEFAULT_MIN_THROUGHPUT`]. A store that is down fails
//! in about a second, one that hangs within the deadline, instead of the
//! client's default five minutes of retries.
//!
//! Credentials are Application Default Credentials (the key file
//! `GOOGLE_APPLICATION_CREDENTIALS` names, gcloud's application-default
//! file, or the metadata server); in a pod, the pod's own: Workload
//! Identity, or a key file mounted from a secret and named by
//! `GOOGLE_APPLICATION_CREDENTIALS`. The environment variable
//! `STORAGE_EMULATOR_HOST` (`host:port` or a URL, as Google's other client
//! libraries read it) points [`GcsStaging::new`], and so `hype-run`, at an
//! emulator such as fake-gcs-server, without credentials.
//!
//! A store creates its client on first use, inside the tokio runtime that
//! uses it, and stays bound to that runtime.

mod digest;
mod json;
mod list;
mod location;

use std::sync::Arc;
use std::time::Duration;

use google_cloud_auth::credentials::Credentials;
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::RetryPolicyExt;
use google_cloud_storage::client::Storage;
use google_cloud_storage::retry_policy::RetryableErrors;
use tokio::sync::OnceCell;

use self::digest::hash;
use self::json::{BucketState, Rest};
use self::location::{parse_location, parse_object_uri};
use super::hashing::StreamHasher;
use super::{BoxFuture, Staging, blob_uri, check_digest, open_for_fetch, refuse_longer};
use crate::error::Error;
use crate::google::credentials::{GoogleCredentials, arc_source, ensure_crypto_provider};
use crate::google::rest::api_message;
use crate::wire::BlobRef;

/// The Cloud Storage endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// The environment variable that points [`GcsStaging::new`] at an emulator
/// (`host:port` or `http://host:port`), with no credentials.
pub const EMULATOR_HOST_VAR: &str = "STORAGE_EMULATOR_HOST";
/// How many times a request is tried before its operation fails.
pub const DEFAULT_ATTEMPTS: u32 = 3;
/// The fixed part of an operation's deadline (and the timeout of one
/// metadata request).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The slowest transfer the deadline allows for: an operation on `n` bytes
/// may take [`DEFAULT_TIMEOUT`] plus `n` / this many bytes per second.
pub const DEFAULT_MIN_THROUGHPUT: u64 = 1024 * 1024;

/// A staging store in a Google Cloud Storage bucket, addressed as
/// `gs://bucket` or `gs://bucket/prefix`.
///
/// ```no_run
/// # async fn demo() -> Result<(), hype_runtime::Error> {
/// use hype_runtime::staging::GcsStaging;
/// // Production: Application Default Credentials.
/// let store = GcsStaging::new("gs://my-staging-bucket/hype")?;
/// // An emulator (fake-gcs-server), no credentials.
/// let test = GcsStaging::builder("gs://test-bucket")
///     .endpoint("http://127.0.0.1:4443")
///     .anonymous(true)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct GcsStaging {
    inner: Arc<Inner>,
}

struct Inner {
    location: String,
    bucket: String,
    prefix: String,
    endpoint: String,
    credentials: CredentialChoice,
    attempts: u32,
    timeout: Duration,
    min_throughput: u64,
    resumable_upload_threshold: Option<usize>,
    clients: OnceCell<Clients>,
}

#[derive(Clone)]
enum CredentialChoice {
    ApplicationDefault,
    Anonymous,
    Given(Credentials),
}

struct Clients {
    storage: Storage,
    rest: Rest,
}

impl std::fmt::Debug for GcsStaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let credentials = match &self.inner.credentials {
            CredentialChoice::ApplicationDefault => "application default",
            CredentialChoice::Anonymous => "anonymous",
            CredentialChoice::Given(_) => "given",
        };
        f.debug_struct("GcsStaging")
            .field("location", &self.inner.location)
            .field("endpoint", &self.inner.endpoint)
            .field("credentials", &credentials)
            .finish()
    }
}

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
    /// The storage endpoint (default [`DEFAULT_ENDPOINT`]): an emulator's
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
    /// [`DEFAULT_ATTEMPTS`]).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The fixed part of each operation's deadline (default
    /// [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The slowest throughput, in bytes per second, an operation's deadline
    /// allows for (default [`DEFAULT_MIN_THROUGHPUT`]).
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
    /// [`crate::staging::open`] (and so `hype-run`) uses.
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

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The prefix of every object name (empty for a whole bucket).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The storage endpoint.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The Cloud Storage client this store uses (created on first use), for
    /// tools and benchmarks that want to compare against it.
    pub async fn storage_client(&self) -> Result<Storage, Error> {
        Ok(self.clients().await?.storage.clone())
    }

    /// The object name under the prefix.
    fn object_name(&self, rest: &str) -> String {
        if self.inner.prefix.is_empty() {
            rest.to_owned()
        } else {
            format!("{}/{rest}", self.inner.prefix)
        }
    }

    fn purpose(&self) -> String {
        format!("staging {}", self.inner.location)
    }

    async fn clients(&self) -> Result<&Clients, Error> {
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

    /// The bucket as the client names it.
    fn bucket_path(bucket: &str) -> String {
        format!("projects/_/buckets/{bucket}")
    }

    /// How long an operation on `len` bytes may take.
    fn deadline(&self, len: u64) -> Duration {
        let transfer = Duration::try_from_secs_f64(len as f64 / self.inner.min_throughput as f64)
            .unwrap_or(Duration::MAX);
        self.inner.timeout.saturating_add(transfer)
    }

    /// Runs `work` within the deadline for `len` bytes.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        uri: &str,
        len: u64,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let deadline = self.deadline(len);
        match tokio::time::timeout(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::StagingUnavailable {
                operation,
                uri: uri.to_owned(),
                message: format!(
                    "no result from {} within {deadline:?}; the store is unreachable or too slow (GcsStaging::builder sets the timeout)",
                    self.inner.endpoint
                ),
                source: None,
            }),
        }
    }

    /// The error for a failed client call: missing objects and buckets,
    /// credentials and permissions said plainly.
    async fn client_error(
        &self,
        operation: &'static str,
        uri: &str,
        bucket: &str,
        err: google_cloud_storage::Error,
    ) -> Error {
        let Ok(clients) = self.clients().await else {
            return staging_error(operation, uri, err);
        };
        if err.is_authentication() {
            return clients
                .rest
                .credentials
                .failure(&self.purpose(), &err, |message| Error::Staging {
                    operation,
                    uri: uri.to_owned(),
                    message,
                    source: None,
                });
        }
        match err.http_status_code() {
            Some(404) => {
                if clients.rest.bucket_state(bucket).await == BucketState::Missing {
                    return missing_bucket(operation, uri, bucket);
                }
                if operation == "read" {
                    return Error::StagedObjectMissing {
                        uri: uri.to_owned(),
                    };
                }
                staging_error(operation, uri, err)
            }
            Some(403) => Error::Staging {
                operation,
                uri: uri.to_owned(),
                message: format!(
                    "permission denied for {} (403: {}); grant it roles/storage.objectAdmin on gs://{bucket}",
                    clients.rest.credentials.source,
                    err.http_payload()
                        .map(|body| api_message(body))
                        .unwrap_or_else(|| err.to_string())
                ),
                source: arc_source(err),
            },
            _ => staging_error(operation, uri, err),
        }
    }

    /// Reads an object into one buffer, hashing as the bytes arrive when
    /// `expected` names the blob they should be.
    async fn read(
        &self,
        uri: &str,
        expected: Option<&BlobRef>,
    ) -> Result<(Vec<u8>, Option<String>), Error> {
        let mut bytes = Vec::new();
        let digest = self
            .read_into(uri, expected, Sink::Memory(&mut bytes))
            .await?;
        Ok((bytes, digest))
    }

    /// Reads an object chunk by chunk into `sink` (after `reserve` with the
    /// length to expect), hashing as the bytes arrive when `expected` names
    /// the blob they should be; an object longer than that blob is refused
    /// before it is read.
    async fn read_into(
        &self,
        uri: &str,
        expected: Option<&BlobRef>,
        mut sink: Sink<'_>,
    ) -> Result<Option<String>, Error> {
        let (bucket, name) = parse_object_uri(uri)?;
        let clients = self.clients().await?;
        let mut response = match clients
            .storage
            .read_object(GcsStaging::bucket_path(&bucket), &name)
            .send()
            .await
        {
            Ok(response) => response,
            Err(err) => return Err(self.client_error("read", uri, &bucket, err).await),
        };
        let size = u64::try_from(response.object().size).unwrap_or(0);
        let limit = expected.map(|blob| blob.len);
        // A blob longer than its reference is corrupt: stop early instead
        // of buffering all of it.
        if let Some(blob) = expected {
            refuse_longer(uri, blob, size)?;
        }
        sink.reserve(usize::try_from(limit.unwrap_or(size).min(size)).unwrap_or(0));
        // Hashed on a thread of its own while the next bytes arrive.
        let mut hasher = match expected {
            Some(_) => Some(
                StreamHasher::<bytes::Bytes>::new()
                    .map_err(|err| Error::staging_io("read", uri, err))?,
            ),
            None => None,
        };
        while let Some(chunk) = response.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => return Err(self.client_error("read", uri, &bucket, err).await),
            };
            sink.write_all(&chunk)
                .await
                .map_err(|err| Error::staging_io("read", uri, err))?;
            if let Some(hasher) = &mut hasher {
                hasher
                    .update(chunk)
                    .await
                    .map_err(|err| Error::staging_io("read", uri, err))?;
            }
        }
        match hasher {
            Some(hasher) => Ok(Some(
                hasher
                    .finish()
                    .await
                    .map_err(|err| Error::staging_io("read", uri, err))?
                    .sha256,
            )),
            None => Ok(None),
        }
    }

    /// Uploads `bytes` as `name` with an optional generation precondition.
    /// The CRC32C goes in the object's metadata up front: the service
    /// verifies the upload against it, and the client sends no trailing
    /// checksum part (which fake-gcs-server would store as data).
    async fn write(
        &self,
        uri: &str,
        name: &str,
        bytes: Vec<u8>,
        crc32c: u32,
        if_generation_match: Option<i64>,
    ) -> Result<(), Error> {
        let clients = self.clients().await?;
        let bucket = &self.inner.bucket;
        let mut request = clients
            .storage
            .write_object(
                GcsStaging::bucket_path(bucket),
                name,
                bytes::Bytes::from(bytes),
            )
            .set_content_type("application/octet-stream")
            .with_known_crc32c(crc32c);
        if let Some(generation) = if_generation_match {
            request = request.set_if_generation_match(generation);
        }
        match request.send_unbuffered().await {
            Ok(_) => Ok(()),
            // Someone staged the same blob between our check and our write.
            Err(err) if if_generation_match.is_some() && err.http_status_code() == Some(412) => {
                tracing::debug!(%uri, "blob staged concurrently by someone else");
                Ok(())
            }
            Err(err) => Err(self.client_error("write", uri, bucket, err).await),
        }
    }
}

impl Staging for GcsStaging {
    fn location(&self) -> &str {
        &self.inner.location
    }

    fn put_blob(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<BlobRef, Error>> {
        Box::pin(async move {
            let (bytes, digests) = hash(bytes).await?;
            let sha256 = digests.sha256;
            let len = bytes.len() as u64;
            let uri = blob_uri(&self.inner.location, &sha256);
            let name = self.object_name(&format!("blobs/sha256/{sha256}"));
            self.bounded("write", &uri, len, async {
                let clients = self.clients().await?;
                let existing = clients
                    .rest
                    .object_info(&self.inner.bucket, &name, &uri)
                    .await?;
                let precondition = match existing {
                    Some(info) if info.size == len => {
                        tracing::debug!(%uri, len, "blob already staged");
                        return Ok(());
                    }
                    // A blob of the wrong length is corrupt: replace exactly it.
                    Some(info) => info.generation,
                    None => 0,
                };
                self.write(&uri, &name, bytes, digests.crc32c, Some(precondition))
                    .await
            })
            .await?;
            Ok(BlobRef { uri, len, sha256 })
        })
    }

    fn get_blob<'a>(&'a self, blob: &'a BlobRef) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(async move {
            let (bytes, actual) = self
                .bounded(
                    "read",
                    &blob.uri,
                    blob.len,
                    self.read(&blob.uri, Some(blob)),
                )
                .await?;
            check_digest(blob, bytes.len() as u64, actual.unwrap_or_default())?;
            Ok(bytes)
        })
    }

    /// Streams the blob into `dest` (a shipped executable on the pod side),
    /// never holding it in memory.
    fn get_blob_to_file<'a>(
        &'a self,
        blob: &'a BlobRef,
        dest: &'a std::path::Path,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            // tokio's file: its writes run on the blocking pool, never on
            // the async worker thread that reads the response.
            let io = |err| Error::staging_io("write", dest.display().to_string(), err);
            let opened = {
                let dest = dest.to_owned();
                tokio::task::spawn_blocking(move || open_for_fetch(&dest))
                    .await
                    .map_err(|err| io(std::io::Error::other(err)))??
            };
            let mut file =
                tokio::io::BufWriter::with_capacity(256 * 1024, tokio::fs::File::from_std(opened));
            let actual = self
                .bounded(
                    "read",
                    &blob.uri,
                    blob.len,
                    self.read_into(&blob.uri, Some(blob), Sink::File(&mut file)),
                )
                .await?;
            tokio::io::AsyncWriteExt::flush(&mut file)
                .await
                .map_err(io)?;
            let written = file.get_ref().metadata().await.map_err(io)?.len();
            check_digest(blob, written, actual.unwrap_or_default())
        })
    }

    fn put_outcome<'a>(
        &'a self,
        execution_id: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(async move {
            if execution_id.is_empty()
                || execution_id.contains(['/', '\0'])
                || execution_id.starts_with('.')
            {
                return Err(Error::Config {
                    message: format!("execution ID {execution_id:?} cannot name an outcome object"),
                });
            }
            let name = self.object_name(&format!("outcomes/{execution_id}"));
            let uri = format!("gs://{}/{name}", self.inner.bucket);
            let len = bytes.len() as u64;
            let crc32c = crc32c::crc32c(&bytes);
            self.bounded(
                "write",
                &uri,
                len,
                self.write(&uri, &name, bytes, crc32c, None),
            )
            .await?;
            Ok(uri)
        })
    }

    fn get_object<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(async move {
            let (bytes, _) = self.bounded("read", uri, 0, self.read(uri, None)).await?;
            Ok(bytes)
        })
    }

    fn delete_object<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let (bucket, name) = parse_object_uri(uri)?;
            self.bounded("delete", uri, 0, async {
                self.clients()
                    .await?
                    .rest
                    .delete_object(&bucket, &name, uri)
                    .await
            })
            .await
        })
    }
}

/// Where [`GcsStaging::read_into`] puts what it reads.
enum Sink<'a> {
    Memory(&'a mut Vec<u8>),
    /// A file written through tokio (on its blocking pool).
    File(&'a mut tokio::io::BufWriter<tokio::fs::File>),
}

impl Sink<'_> {
    /// Makes room for `len` bytes, when that helps.
    fn reserve(&mut self, len: usize) {
        if let Sink::Memory(bytes) = self {
            bytes.reserve(len);
        }
    }

    async fn write_all(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Memory(bytes) => {
                bytes.extend_from_slice(chunk);
                Ok(())
            }
            Sink::File(file) => tokio::io::AsyncWriteExt::write_all(file, chunk).await,
        }
    }
}

/// A Cloud Storage client failure in hype's words, with the client's error
/// as its source: [`Error::StagingUnavailable`] when it passes (no
/// connection, no answer in time, 408, 429, 5xx), else [`Error::Staging`].
fn staging_error(operation: &'static str, uri: &str, err: google_cloud_storage::Error) -> Error {
    let status = err.http_status_code();
    let (message, transient) = if err.is_connect() {
        ("cannot connect to the storage service".to_owned(), true)
    } else if err.is_timeout() {
        (
            "the storage service did not answer in time".to_owned(),
            true,
        )
    } else if let Some(code) = status {
        (
            format!(
                "HTTP {code}: {}",
                err.http_payload()
                    .map(|body| api_message(body))
                    .unwrap_or_else(|| "no details".to_owned())
            ),
            crate::retry::is_transient_status(code),
        )
    } else if err.is_io() || err.is_transport() {
        (
            "the connection to the storage service failed".to_owned(),
            true,
        )
    } else {
        ("the storage client failed".to_owned(), false)
    };
    let source = arc_source(err);
    if transient {
        Error::StagingUnavailable {
            operation,
            uri: uri.to_owned(),
            message,
            source,
        }
    } else {
        Error::Staging {
            operation,
            uri: uri.to_owned(),
            message,
            source,
        }
    }
}

fn missing_bucket(operation: &'static str, uri: &str, bucket: &str) -> Error {
    Error::Staging {
        operation,
        uri: uri.to_owned(),
        message: format!(
            "bucket {bucket} does not exist: create it (`gcloud storage buckets create gs://{bucket}`) or point the staging location (HYPE_STAGING) at an existing bucket"
        ),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_normalised_and_checked() {
        let store = GcsStaging::builder("gs://my-bucket/a/b/").build().unwrap();
        assert_eq!(store.location(), "gs://my-bucket/a/b");
        assert_eq!(store.bucket(), "my-bucket");
        assert_eq!(store.prefix(), "a/b");
        assert_eq!(store.object_name("outcomes/x"), "a/b/outcomes/x");
        let whole = GcsStaging::builder("gs://my-bucket").build().unwrap();
        assert_eq!(whole.location(), "gs://my-bucket");
        assert_eq!(whole.object_name("blobs/sha256/ab"), "blobs/sha256/ab");
        assert_eq!(
            blob_uri(whole.location(), "ab"),
            "gs://my-bucket/blobs/sha256/ab"
        );
        for bad in [
            "gs://",
            "gs://A-Bucket",
            "gs://ab",
            "gs://-bucket",
            "s3://bucket",
            "gs://bucket/../x",
            "gs://bucket/a//b",
        ] {
            let err = GcsStaging::builder(bad).build().unwrap_err().to_string();
            assert!(err.contains("expected gs://bucket"), "{bad}: {err}");
        }
    }

    #[test]
    fn deadlines_grow_with_the_payload() {
        let store = GcsStaging::builder("gs://bucket")
            .timeout(Duration::from_secs(2))
            .min_throughput(1024)
            .build()
            .unwrap();
        assert_eq!(store.deadline(0), Duration::from_secs(2));
        assert_eq!(store.deadline(4096), Duration::from_secs(6));
    }
}
