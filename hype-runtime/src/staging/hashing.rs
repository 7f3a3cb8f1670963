//! SHA-256 of bytes as they stream past, computed on a thread of its own.
//!
//! A shipped executable is verified on every fetch, and on one core SHA-256
//! runs at about the speed of a local copy: hashing inline doubles the time
//! a fetch takes. [`StreamHasher`] takes each chunk after it was written
//! and hashes it on a second thread, so the download (or the copy) and the
//! verification overlap and a fetch costs about the slower of the two.

use std::io::ErrorKind;

use tokio::sync::mpsc;

use crate::executable::Digest;

/// How many chunks may wait for the hashing thread before the producer
/// waits for it: enough to ride out a scheduling hiccup, little memory.
const DEPTH: usize = 8;

/// The size of the chunks [`copy_hashing`] reads and writes.
const CHUNK: usize = 256 * 1024;

/// A SHA-256 and byte count over chunks handed to it in order, computed on
/// a thread of its own. Chunks are moved in (a `Vec` or `Bytes` costs
/// nothing to move); with [`StreamHasher::recycling`] the buffers come back
/// through [`StreamHasher::spare`] for reuse.
pub(crate) struct StreamHasher<T> {
    chunks: Option<mpsc::Sender<T>>,
    spent: Option<std::sync::mpsc::Receiver<T>>,
    digest: tokio::sync::oneshot::Receiver<Digest>,
}

// The async half serves the GCS store only.
#[cfg_attr(not(feature = "gcs"), allow(dead_code))]
impl<T: AsRef<[u8]> + Send + 'static> StreamHasher<T> {
    /// A hasher that drops each chunk once hashed.
    pub(crate) fn new() -> std::io::Result<Self> {
        Self::start(false)
    }

    /// A hasher that hands each chunk back once hashed (see
    /// [`StreamHasher::spare`]).
    pub(crate) fn recycling() -> std::io::Result<Self> {
        Self::start(true)
    }

    fn start(recycle: bool) -> std::io::Result<Self> {
        let (chunks, mut incoming) = mpsc::channel::<T>(DEPTH);
        let (spent_tx, spent) = std::sync::mpsc::channel();
        let (digest_tx, digest) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("hype-sha256".into())
            .spawn(move || {
                let mut hasher = crate::sha256::Sha256::new();
                let mut len = 0u64;
                while let Some(chunk) = incoming.blocking_recv() {
                    hasher.update(chunk.as_ref());
                    len += chunk.as_ref().len() as u64;
                    if recycle {
                        let _ = spent_tx.send(chunk);
                    }
                }
                let _ = digest_tx.send(Digest {
                    sha256: hasher.finish_hex(),
                    len,
                });
            })?;
        Ok(StreamHasher {
            chunks: Some(chunks),
            spent: recycle.then_some(spent),
            digest,
        })
    }

    /// Hands the next chunk over, waiting while [`DEPTH`] chunks are
    /// queued. For synchronous code (not on an async thread).
    pub(crate) fn update_blocking(&mut self, chunk: T) -> std::io::Result<()> {
        match &self.chunks {
            Some(chunks) => chunks.blocking_send(chunk).map_err(|_| gone()),
            None => Err(gone()),
        }
    }

    /// Hands the next chunk over, waiting while [`DEPTH`] chunks are queued.
    pub(crate) async fn update(&mut self, chunk: T) -> std::io::Result<()> {
        match &self.chunks {
            Some(chunks) => chunks.send(chunk).await.map_err(|_| gone()),
            None => Err(gone()),
        }
    }

    /// A chunk already hashed, to reuse as a buffer (recycling hashers).
    pub(crate) fn spare(&self) -> Option<T> {
        self.spent.as_ref()?.try_recv().ok()
    }

    /// The digest of everything handed over, once the thread has hashed
    /// it all. For synchronous code (not on an async thread).
    pub(crate) fn finish_blocking(mut self) -> std::io::Result<Digest> {
        self.chunks = None;
        self.digest.blocking_recv().map_err(|_| gone())
    }

    /// The digest of everything handed over, once the thread has hashed
    /// it all.
    pub(crate) async fn finish(mut self) -> std::io::Result<Digest> {
        // Closing the channel lets the thread finish; dropping a hasher
        // unfinished ends the thread the same way, without waiting.
        self.chunks = None;
        (&mut self.digest).await.map_err(|_| gone())
    }
}

fn gone() -> std::io::Error {
    std::io::Error::other("the hashing thread ended early")
}

/// Copies `from` to `to` in [`CHUNK`]-sized pieces while a second thread
/// hashes what was written, and gives back the digest of all of it. For
/// synchronous code (not on an async thread).
pub(crate) fn copy_hashing(
    from: &mut impl std::io::Read,
    to: &mut impl std::io::Write,
) -> std::io::Result<Digest> {
    let mut hasher = StreamHasher::<Vec<u8>>::recycling()?;
    loop {
        let mut buf = hasher.spare().unwrap_or_else(|| vec![0u8; CHUNK]);
        buf.resize(CHUNK, 0);
        let n = loop {
            match from.read(&mut buf) {
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                result => break result?,
            }
        };
        if n == 0 {
            break;
        }
        buf.truncate(n);
        to.write_all(&buf)?;
        hasher.update_blocking(buf)?;
    }
    to.flush()?;
    hasher.finish_blocking()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256(bytes: &[u8]) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(bytes))
    }

    #[test]
    fn copy_hashing_copies_and_hashes_every_byte() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 17] {
            let input: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut out = Vec::new();
            let digest = copy_hashing(&mut &input[..], &mut out).unwrap();
            assert_eq!(out, input, "{len} bytes");
            assert_eq!(digest.len, len as u64);
            assert_eq!(digest.sha256, sha256(&input), "{len} bytes");
        }
    }

    /// A reader that hands out a few bytes at a time, as a pipe or a
    /// network stream does.
    struct Trickle<'a>(&'a [u8]);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn short_reads_reuse_buffers_and_keep_the_order() {
        let input: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let mut out = Vec::new();
        let digest = copy_hashing(&mut Trickle(&input), &mut out).unwrap();
        assert_eq!(out, input);
        assert_eq!(digest.sha256, sha256(&input));
    }

    #[tokio::test]
    async fn async_chunks_are_hashed_in_order() {
        let mut hasher = StreamHasher::<Vec<u8>>::new().unwrap();
        let mut all = Vec::new();
        for i in 0..100u8 {
            let chunk = vec![i; usize::from(i) * 3];
            all.extend_from_slice(&chunk);
            hasher.update(chunk).await.unwrap();
        }
        assert!(
            hasher.spare().is_none(),
            "a non-recycling hasher keeps nothing"
        );
        let digest = hasher.finish().await.unwrap();
        assert_eq!(digest.sha256, sha256(&all));
        assert_eq!(digest.len, all.len() as u64);
    }
}
