//! Staging in a local directory: the embedded default, and the store the
//! local runner's child processes share with their parent.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;

use super::hashing::copy_hashing;
use super::{Staging, blob_uri, check_digest, open_for_fetch, refuse_longer, verify};
use crate::error::Error;
use crate::wire::{BlobRef, sha256_hex};

/// A staging store in a directory, addressed as `file:///dir`.
///
/// Writes go to a temporary file in the same directory and are renamed into
/// place, so a reader never sees half a blob and concurrent writers of the
/// same blob do not interfere.
#[derive(Debug, Clone)]
pub struct LocalStaging {
    root: PathBuf,
    location: String,
}

impl LocalStaging {
    /// A store rooted at `dir`, which must be absolute. Directories are
    /// created when first written to.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let root: PathBuf = dir.into();
        if !root.is_absolute() {
            return Err(Error::Config {
                message: format!("staging directory {} is not absolute", root.display()),
            });
        }
        let location = format!("file://{}", root.display());
        Ok(LocalStaging { root, location })
    }

    /// A store from a `file:///dir` URI.
    pub fn from_uri(uri: &str) -> Result<Self, Error> {
        let path = path_of(uri)?;
        LocalStaging::new(path)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, bytes)?;
        readable_by_all(tmp.as_file())?;
        tmp.persist(path).map_err(|err| err.error)?;
        Ok(())
    }
}

/// Mode 0644 for a staged file (a temporary file is made 0600): the
/// containers of the Docker runner and of a local test cluster read and
/// write staging as another user (65532 by default) than the submitter's.
fn readable_by_all(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

/// The path a `file://` URI names.
pub(crate) fn path_of(uri: &str) -> Result<PathBuf, Error> {
    match uri.strip_prefix("file://") {
        Some(path) if path.starts_with('/') => Ok(PathBuf::from(path)),
        _ => Err(Error::Config {
            message: format!("{uri:?} is not a file:///absolute/path URI"),
        }),
    }
}

/// Opens the staged object at `uri` for reading, and gives its length. Only
/// a regular file is one: a directory, a FIFO (whose read may wait for
/// ever), a device (whose read may never end, as `/dev/zero`'s) or a socket
/// is refused, each with its own message, before a byte is read. Opened
/// non-blocking, so that opening a FIFO does not wait for a writer.
fn open_object(uri: &str) -> Result<(std::fs::File, u64), Error> {
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let path = path_of(uri)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32)
        .open(&path)
        .map_err(|err| match err.kind() {
            ErrorKind::NotFound => Error::StagedObjectMissing {
                uri: uri.to_owned(),
            },
            _ => Error::staging_io("read", uri, err),
        })?;
    let metadata = file
        .metadata()
        .map_err(|err| Error::staging_io("read", uri, err))?;
    let kind = metadata.file_type();
    let refused = if kind.is_file() {
        return Ok((file, metadata.len()));
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe), whose read could wait for ever"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device, whose read need never end"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(Error::Staging {
        operation: "read",
        uri: uri.to_owned(),
        message: format!(
            "{} is {refused}: a staged object is a regular file",
            path.display()
        ),
        source: None,
    })
}

/// Reads the staged object at `uri`: at most `declared` bytes when its
/// length is declared (a longer file is refused before it is read), else
/// at most the file's own length, plus one byte to notice a file that
/// grows.
fn read_bounded(uri: &str, declared: Option<&BlobRef>) -> Result<Vec<u8>, Error> {
    let (file, len) = open_object(uri)?;
    if let Some(blob) = declared {
        refuse_longer(uri, blob, len)?;
    }
    let limit = declared.map_or(len, |blob| blob.len);
    let mut bytes = Vec::with_capacity(usize::try_from(len.min(limit)).unwrap_or(0));
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, limit.saturating_add(1)),
        &mut bytes,
    )
    .map_err(|err| Error::staging_io("read", uri, err))?;
    Ok(bytes)
}

impl Staging for LocalStaging {
    fn location(&self) -> &str {
        &self.location
    }

    fn put_blob(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<BlobRef, Error>> {
        Box::pin(async move {
            let this = self.clone();
            blocking(move || {
                let sha256 = sha256_hex(&bytes);
                let uri = blob_uri(&this.location, &sha256);
                let path = this.root.join("blobs").join("sha256").join(&sha256);
                let len = bytes.len() as u64;
                let present = std::fs::metadata(&path).is_ok_and(|m| m.len() == len);
                if !present {
                    this.write_atomically(&path, &bytes)
                        .map_err(|err| Error::staging_io("write", &uri, err))?;
                }
                Ok(BlobRef { uri, len, sha256 })
            })
            .await
        })
    }

    fn get_blob<'a>(&'a self, blob: &'a BlobRef) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(async move {
            let blob = blob.clone();
            blocking(move || {
                let bytes = read_bounded(&blob.uri, Some(&blob))?;
                verify(&blob, &bytes)?;
                Ok(bytes)
            })
            .await
        })
    }

    fn put_file<'a>(
        &'a self,
        path: &'a Path,
        digest: &'a crate::executable::Digest,
    ) -> BoxFuture<'a, Result<BlobRef, Error>> {
        let (this, source, digest) = (self.clone(), path.to_owned(), digest.clone());
        Box::pin(blocking(move || {
            let uri = blob_uri(&this.location, &digest.sha256);
            let dest = this.root.join("blobs").join("sha256").join(&digest.sha256);
            if std::fs::metadata(&dest).is_ok_and(|m| m.len() == digest.len) {
                return Ok(BlobRef::new(uri, digest.len, digest.sha256));
            }
            let io = |err| Error::staging_io("write", &uri, err);
            let dir = dest.parent().unwrap_or(&this.root);
            std::fs::create_dir_all(dir).map_err(io)?;
            let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
            let mut file = std::fs::File::open(&source)
                .map_err(|err| Error::staging_io("read", source.display().to_string(), err))?;
            let copied = copy_hashing(&mut file, tmp.as_file_mut()).map_err(io)?;
            readable_by_all(tmp.as_file()).map_err(io)?;
            if copied != digest {
                return Err(Error::Staging {
                    operation: "write",
                    uri,
                    message: format!(
                        "{} changed while it was staged (hashed {} bytes {}, read {} bytes {})",
                        source.display(),
                        digest.len,
                        digest.sha256,
                        copied.len,
                        copied.sha256
                    ),
                    source: None,
                });
            }
            tmp.persist(&dest).map_err(|err| io(err.error))?;
            Ok(BlobRef::new(uri, digest.len, digest.sha256))
        }))
    }

    fn get_blob_to_file<'a>(
        &'a self,
        blob: &'a BlobRef,
        dest: &'a Path,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let (blob, dest) = (blob.clone(), dest.to_owned());
        Box::pin(blocking(move || {
            let (mut file, len) = open_object(&blob.uri)?;
            refuse_longer(&blob.uri, &blob, len)?;
            let mut out = open_for_fetch(&dest)?;
            // One byte more than the blob's length is enough to know it is
            // too long: never read an unbounded file.
            let mut limited = std::io::Read::take(&mut file, blob.len.saturating_add(1));
            let copied = copy_hashing(&mut limited, &mut out)
                .map_err(|err| Error::staging_io("read", &blob.uri, err))?;
            let actual = if copied.len > blob.len {
                "(not read to the end: longer than the blob)".to_owned()
            } else {
                copied.sha256
            };
            check_digest(&blob, copied.len, actual)
        }))
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
            let uri = format!("{}/outcomes/{execution_id}", self.location);
            let path = self.root.join("outcomes").join(execution_id);
            let this = self.clone();
            let written = uri.clone();
            blocking(move || {
                this.write_atomically(&path, &bytes)
                    .map_err(|err| Error::staging_io("write", &written, err))
            })
            .await?;
            Ok(uri)
        })
    }

    fn get_object<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        let uri = uri.to_owned();
        Box::pin(blocking(move || read_bounded(&uri, None)))
    }

    fn delete_object<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let uri = uri.to_owned();
        Box::pin(blocking(move || {
            let path = path_of(&uri)?;
            match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
                Err(err) => Err(Error::staging_io("delete", &uri, err)),
            }
        }))
    }
}

/// Runs file I/O off the async threads when there are any.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn_blocking(work)
            .await
            .map_err(|err| Error::Staging {
                operation: "run",
                uri: String::new(),
                message: format!("staging task failed: {err}"),
                source: None,
            })?,
        Err(_) => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalStaging) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStaging::new(dir.path().join("staging")).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn blobs_round_trip_and_dedupe() {
        let (_dir, store) = store();
        let blob = store.put_blob(b"hello".to_vec()).await.unwrap();
        assert_eq!(blob.len, 5);
        assert_eq!(blob.sha256, sha256_hex(b"hello"));
        assert!(
            blob.uri
                .ends_with(&format!("/blobs/sha256/{}", blob.sha256))
        );
        let path = path_of(&blob.uri).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let again = store.put_blob(b"hello".to_vec()).await.unwrap();
        assert_eq!(again, blob);
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            mtime,
            "second put rewrote the blob"
        );
        assert_eq!(store.get_blob(&blob).await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn corruption_and_absence_are_typed() {
        let (_dir, store) = store();
        let blob = store.put_blob(b"hello".to_vec()).await.unwrap();
        std::fs::write(path_of(&blob.uri).unwrap(), b"hellO").unwrap();
        let err = store.get_blob(&blob).await.unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        std::fs::remove_file(path_of(&blob.uri).unwrap()).unwrap();
        let err = store.get_blob(&blob).await.unwrap_err();
        assert!(matches!(err, Error::StagedObjectMissing { .. }), "{err}");
    }

    #[tokio::test]
    async fn outcomes_are_per_execution_and_deletable() {
        let (_dir, store) = store();
        let uri = store.put_outcome("hype-f-1", b"x".to_vec()).await.unwrap();
        assert!(uri.ends_with("/outcomes/hype-f-1"));
        assert_eq!(store.get_object(&uri).await.unwrap(), b"x");
        store.delete_object(&uri).await.unwrap();
        store.delete_object(&uri).await.unwrap();
        assert!(matches!(
            store.get_object(&uri).await,
            Err(Error::StagedObjectMissing { .. })
        ));
        assert!(store.put_outcome("../escape", vec![]).await.is_err());
    }

    #[test]
    fn relative_roots_are_refused() {
        assert!(LocalStaging::new("relative").is_err());
        assert!(LocalStaging::from_uri("file://relative").is_err());
    }
}
