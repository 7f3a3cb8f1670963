//! Hashing staged bytes: SHA-256 (the content address, verified on read)
//! and CRC32C (what Cloud Storage checks on upload) in one pass, off the
//! async threads for large payloads.

use crate::error::Error;
use crate::sha256::Sha256;

/// Payloads at least this large are hashed on a blocking thread.
const HASH_OFF_THREAD: usize = 1024 * 1024;

/// A payload's SHA-256 (hex: its name) and CRC32C (sent with the upload,
/// so the service checks what it received).
pub(super) struct Digests {
    pub(super) sha256: String,
    pub(super) crc32c: u32,
}

pub(super) fn digests(bytes: &[u8]) -> Digests {
    // One pass, a megabyte at a time, so the second hash reads from cache.
    let mut sha = Sha256::new();
    let mut crc = 0;
    for chunk in bytes.chunks(1024 * 1024) {
        sha.update(chunk);
        crc = crc32c::crc32c_append(crc, chunk);
    }
    Digests {
        sha256: sha.finish_hex(),
        crc32c: crc,
    }
}

/// Hashes a payload, off the async threads when it is large.
pub(super) async fn hash(bytes: Vec<u8>) -> Result<(Vec<u8>, Digests), Error> {
    if bytes.len() < HASH_OFF_THREAD {
        let digests = digests(&bytes);
        return Ok((bytes, digests));
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn_blocking(move || {
                let digests = digests(&bytes);
                (bytes, digests)
            })
            .await
            .map_err(|err| Error::Staging {
                operation: "write",
                uri: String::new(),
                message: format!("hashing the payload failed: {err}"),
                source: None,
            }),
        Err(_) => {
            let digests = digests(&bytes);
            Ok((bytes, digests))
        }
    }
}
