//! Moving bytes: reading an object into memory or a file ([`Sink`]),
//! hashing as it arrives; uploading with a CRC32C and an optional
//! generation precondition; and the deadline every operation runs within.

use std::time::Duration;

use super::GcsStaging;
use super::location::parse_object_uri;
use crate::error::Error;
use crate::staging::hashing::StreamHasher;
use crate::staging::refuse_longer;
use crate::wire::BlobRef;

impl GcsStaging {
    /// The bucket as the client names it.
    fn bucket_path(bucket: &str) -> String {
        format!("projects/_/buckets/{bucket}")
    }

    /// How long an operation on `len` bytes may take.
    pub(super) fn deadline(&self, len: u64) -> Duration {
        let transfer = Duration::try_from_secs_f64(len as f64 / self.inner.min_throughput as f64)
            .unwrap_or(Duration::MAX);
        self.inner.timeout.saturating_add(transfer)
    }

    /// Runs `work` within the deadline for `len` bytes.
    pub(super) async fn bounded<T>(
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

    /// Reads an object into one buffer, hashing as the bytes arrive when
    /// `expected` names the blob they should be.
    pub(super) async fn read(
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
    pub(super) async fn read_into(
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
    pub(super) async fn write(
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

/// Where [`GcsStaging::read_into`] puts what it reads.
pub(super) enum Sink<'a> {
    Memory(&'a mut Vec<u8>),
    /// A file written through tokio (on its blocking pool).
    File(&'a mut tokio::io::BufWriter<tokio::fs::File>),
}

impl Sink<'_> {
    /// Makes room for `len` bytes, when that helps.
    pub(super) fn reserve(&mut self, len: usize) {
        if let Sink::Memory(bytes) = self {
            bytes.reserve(len);
        }
    }

    pub(super) async fn write_all(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Memory(bytes) => {
                bytes.extend_from_slice(chunk);
                Ok(())
            }
            Sink::File(file) => tokio::io::AsyncWriteExt::write_all(file, chunk).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
