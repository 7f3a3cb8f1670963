//! Staging stores: where payloads too large to travel inline wait for the
//! other side of a call.
//!
//! A store holds two kinds of object:
//! - **blobs**, content-addressed at `<location>/blobs/sha256/<hex>`,
//!   written once (a second write of the same bytes is skipped) and
//!   verified against their digest on every read;
//! - **outcome objects**, one per execution at
//!   `<location>/outcomes/<execution-id>`, holding an outcome envelope too
//!   large for a termination message.
//!
//! `open` picks the implementation from the location's scheme:
//! `file:///dir` is [`LocalStaging`]; `gs://bucket/prefix` is Google Cloud
//! Storage (the `gcs` feature). [`listing`] lists what a store holds, with
//! ages, for `hype gc --staging`.

#[cfg(feature = "gcs")]
pub(crate) mod gcs;
mod hashing;
pub mod listing;
mod local;

use futures::future::BoxFuture;
use std::sync::Arc;

#[cfg(feature = "gcs")]
pub use gcs::{GcsStaging, GcsStagingBuilder};
pub use local::LocalStaging;

use crate::error::Error;
use crate::wire::BlobRef;

/// A place to stage payloads and outcomes.
pub trait Staging: Send + Sync + std::fmt::Debug {
    /// The store's location as a URI (`file:///dir`, `gs://bucket/prefix`),
    /// as written into call envelopes.
    fn location(&self) -> &str;

    /// Stores `bytes` as a content-addressed blob, unless a blob with their
    /// digest is already there.
    fn put_blob(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<BlobRef, Error>>;

    /// Reads a blob and verifies its length and digest:
    /// [`Error::StagedObjectMissing`] if it is not there,
    /// [`Error::DigestMismatch`] if its bytes are not the ones named.
    fn get_blob<'a>(&'a self, blob: &'a BlobRef) -> BoxFuture<'a, Result<Vec<u8>, Error>>;

    /// Stages the file at `path`, whose contents are `digest` (computed
    /// beforehand, once), as a content-addressed blob: one existence check,
    /// then an upload only if it is missing. Used for the executable a
    /// submitter ships. The default reads the file and calls
    /// [`Staging::put_blob`]; stores override it to stream.
    fn put_file<'a>(
        &'a self,
        path: &'a std::path::Path,
        digest: &'a crate::executable::Digest,
    ) -> BoxFuture<'a, Result<BlobRef, Error>> {
        Box::pin(async move {
            let file = path.display().to_string();
            let owned = path.to_owned();
            let bytes = tokio::task::spawn_blocking(move || std::fs::read(&owned))
                .await
                .map_err(|err| Error::Staging {
                    operation: "read",
                    uri: file.clone(),
                    message: format!("the read of a file to stage failed: {err}"),
                    source: None,
                })?
                .map_err(|err| Error::staging_io("read", file, err))?;
            let blob = self.put_blob(bytes).await?;
            if blob.sha256 != digest.sha256 || blob.len != digest.len {
                return Err(Error::Staging {
                    operation: "write",
                    uri: blob.uri,
                    message: format!(
                        "the file changed while it was staged (hashed {} bytes {}, staged {} bytes {})",
                        digest.len, digest.sha256, blob.len, blob.sha256
                    ),
                    source: None,
                });
            }
            Ok(blob)
        })
    }

    /// Reads a blob into the file `dest` (created or replaced) and verifies
    /// its length and digest, with the errors of [`Staging::get_blob`]. The
    /// default reads the blob into memory; stores override it to stream.
    fn get_blob_to_file<'a>(
        &'a self,
        blob: &'a BlobRef,
        dest: &'a std::path::Path,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let bytes = self.get_blob(blob).await?;
            let dest = dest.to_owned();
            tokio::task::spawn_blocking(move || {
                let mut file = open_for_fetch(&dest)?;
                std::io::Write::write_all(&mut file, &bytes)
                    .map_err(|err| Error::staging_io("write", dest.display().to_string(), err))
            })
            .await
            .map_err(|err| Error::Staging {
                operation: "write",
                uri: blob.uri.clone(),
                message: format!("the write of a fetched blob failed: {err}"),
                source: None,
            })?
        })
    }

    /// Writes the outcome object of an execution, returning its URI.
    fn put_outcome<'a>(
        &'a self,
        execution_id: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, Error>>;

    /// Reads an object by URI (an outcome object, or a call envelope staged
    /// by a tool). No digest check: callers verify what they decode.
    fn get_object<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<Vec<u8>, Error>>;

    /// Deletes an outcome object once it has been read. Deleting one that is
    /// not there is not an error.
    fn delete_object<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<(), Error>>;
}

/// Opens the staging store at `location`.
pub(crate) fn open(location: &str) -> Result<Arc<dyn Staging>, Error> {
    if location.starts_with("file://") {
        return Ok(Arc::new(LocalStaging::from_uri(location)?));
    }
    #[cfg(feature = "gcs")]
    if location.starts_with("gs://") {
        return Ok(Arc::new(GcsStaging::new(location)?));
    }
    #[cfg(not(feature = "gcs"))]
    if location.starts_with("gs://") {
        return Err(Error::Config {
            message: format!(
                "staging location {location} needs Google Cloud Storage, which this build lacks: enable hype's `gcs` feature"
            ),
        });
    }
    Err(Error::Config {
        message: format!(
            "staging location {location:?} is not supported: use file:///absolute/dir or gs://bucket/prefix"
        ),
    })
}

/// The content address of a blob under `location`. Trailing slashes of the
/// location's path go, but never those of `scheme://`: the root store
/// `file:///` gives `file:///blobs/sha256/<hex>`.
pub(crate) fn blob_uri(location: &str, sha256_hex: &str) -> String {
    match location.split_once("://") {
        Some((scheme, path)) => format!(
            "{scheme}://{}/blobs/sha256/{sha256_hex}",
            path.trim_end_matches('/')
        ),
        None => format!(
            "{}/blobs/sha256/{sha256_hex}",
            location.trim_end_matches('/')
        ),
    }
}

/// Where a store at `location` keeps the outcome of `execution_id`.
pub(crate) fn outcome_uri(location: &str, execution_id: &str) -> String {
    match location.split_once("://") {
        Some((scheme, path)) => format!(
            "{scheme}://{}/outcomes/{execution_id}",
            path.trim_end_matches('/')
        ),
        None => format!("{}/outcomes/{execution_id}", location.trim_end_matches('/')),
    }
}

/// Checks that what an execution reports lies in the store at `location`:
/// its outcome object at [`outcome_uri`], a result blob at [`blob_uri`] of
/// its own digest. Anything else (a hostile or broken `hype-run`, a
/// `file:///etc/...`) is an error naming it, so that the caller reads and
/// deletes only what it staged itself.
pub(crate) fn check_reported(
    location: &str,
    execution_id: &str,
    reported: Reported<'_>,
) -> Result<(), Error> {
    let (what, uri, expected) = match reported {
        Reported::Outcome(uri) => ("its outcome", uri, outcome_uri(location, execution_id)),
        Reported::Blob(blob) => (
            "its result",
            blob.uri.as_str(),
            blob_uri(location, &blob.sha256),
        ),
    };
    if uri == expected && !expected.contains("/../") {
        return Ok(());
    }
    Err(Error::malformed(
        "outcome",
        format!(
            "{execution_id} reports {what} at {uri}, outside this submitter's staging location {location} (expected {expected}): refusing to read or delete it; is the execution running another staging configuration?"
        ),
    ))
}

/// What an execution reports, for [`check_reported`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reported<'a> {
    /// The URI of its outcome object.
    Outcome(&'a str),
    /// Its staged result.
    Blob(&'a BlobRef),
}

/// The digest a content-addressed URI names, if it is one.
pub(crate) fn digest_in_uri(uri: &str) -> Option<&str> {
    let (_, hex) = uri.rsplit_once("/blobs/sha256/")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// Opens `dest` to receive a fetched blob: created if missing, emptied
/// only if it is not empty already. Not `File::create`: on ext4, opening an
/// existing file with `O_TRUNC` marks it for a flush to disk when it is
/// closed (`auto_da_alloc`), which doubles the time a fetch into a fresh
/// temporary file takes.
pub(crate) fn open_for_fetch(dest: &std::path::Path) -> Result<std::fs::File, Error> {
    let io = |err| Error::staging_io("write", dest.display().to_string(), err);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dest)
        .map_err(io)?;
    if file.metadata().map_err(io)?.len() != 0 {
        file.set_len(0).map_err(io)?;
    }
    Ok(file)
}

/// Checks bytes read from `uri` against the blob reference that named them.
pub(crate) fn verify(blob: &BlobRef, bytes: &[u8]) -> Result<(), Error> {
    check_digest(blob, bytes.len() as u64, crate::wire::sha256_hex(bytes))
}

/// Refuses, unread, an object at `uri` of `len` bytes that is longer than
/// the blob it should be: [`Error::DigestMismatch`] when it is.
pub(crate) fn refuse_longer(uri: &str, blob: &BlobRef, len: u64) -> Result<(), Error> {
    if len <= blob.len {
        return Ok(());
    }
    Err(Error::DigestMismatch {
        uri: uri.to_owned(),
        expected: blob.sha256.clone(),
        actual: "(not read: the object is longer than the blob)".to_owned(),
        expected_len: blob.len,
        actual_len: len,
    })
}

/// Checks what was read for `blob` (`len` bytes with SHA-256 `actual`, hex)
/// against it: [`Error::DigestMismatch`] unless both agree. The one check
/// of every store's reads.
pub(crate) fn check_digest(blob: &BlobRef, len: u64, actual: String) -> Result<(), Error> {
    if len == blob.len && actual.eq_ignore_ascii_case(&blob.sha256) {
        return Ok(());
    }
    Err(Error::DigestMismatch {
        uri: blob.uri.clone(),
        expected: blob.sha256.clone(),
        actual,
        expected_len: blob.len,
        actual_len: len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_picks_by_scheme_and_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("file://{}", dir.path().display());
        assert_eq!(open(&uri).unwrap().location(), uri);
        #[cfg(not(feature = "gcs"))]
        {
            let err = open("gs://bucket/x").unwrap_err();
            assert!(err.to_string().contains("`gcs` feature"), "{err}");
        }
        #[cfg(feature = "gcs")]
        assert_eq!(open("gs://bucket/x").unwrap().location(), "gs://bucket/x");
        let err = open("s3://bucket").unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn digest_in_uri_only_for_content_addresses() {
        let hex = "a".repeat(64);
        assert_eq!(
            digest_in_uri(&blob_uri("file:///s/", &hex)),
            Some(hex.as_str())
        );
        assert_eq!(digest_in_uri("file:///s/outcomes/x"), None);
        // Found by the staging_uri fuzz target: the root store lost the
        // slashes of `file://`, and its blobs could not be read back.
        assert_eq!(
            blob_uri("file:///", &hex),
            format!("file:///blobs/sha256/{hex}")
        );
        assert_eq!(
            blob_uri("gs://bucket/prefix//", &hex),
            format!("gs://bucket/prefix/blobs/sha256/{hex}")
        );
        let root = LocalStaging::from_uri("file:///").unwrap();
        assert!(LocalStaging::from_uri(&blob_uri(root.location(), &hex)).is_ok());
        assert_eq!(digest_in_uri("file:///s/blobs/sha256/zz"), None);
    }
}
