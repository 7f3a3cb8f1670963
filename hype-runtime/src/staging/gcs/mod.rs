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
//!
//! This module is the store itself: its settings and the [`Staging`]
//! operations. `builder` holds [`GcsStagingBuilder`]; `client` the
//! clients and their credentials; `transfer` reads, uploads and
//! deadlines; `errors` what a failed client call means.

mod builder;
mod client;
mod digest;
mod errors;
mod json;
mod list;
mod location;
mod transfer;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::OnceCell;

pub use self::builder::GcsStagingBuilder;
use self::client::{Clients, CredentialChoice};
use self::digest::hash;
use self::location::parse_object_uri;
use self::transfer::Sink;
use super::{Staging, blob_uri, check_digest, open_for_fetch};
use crate::error::Error;
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
/// use hype_runtime::GcsStaging;
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

impl GcsStaging {
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
}
