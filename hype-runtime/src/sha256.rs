//! SHA-256 at the same speed in every build profile.
//!
//! hype hashes whole executables (a debug build of a large program is
//! 150 MB and more) on the submitter and again where the call runs. The
//! pure-Rust `sha2` crate is fast only when optimised, and a user's
//! `cargo build` or `cargo run` compiles dependencies at opt-level 0:
//! there it hashed about 56 MB/s, seconds per call. `ring`'s SHA-256 is
//! assembly (SHA-NI or AVX where the CPU has them), so a debug build hashes
//! as fast as a release build (about 1.3 GB/s on the development machine;
//! see docs/benchmarks.md, "Hashing the executable").

/// An incremental SHA-256.
pub(crate) struct Sha256(ring::digest::Context);

impl Sha256 {
    /// An empty hash.
    pub(crate) fn new() -> Sha256 {
        Sha256(ring::digest::Context::new(&ring::digest::SHA256))
    }

    /// Hashes `bytes` next.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest, lowercase hex.
    pub(crate) fn finish_hex(self) -> String {
        hex::encode(self.0.finish().as_ref())
    }
}

/// SHA-256 of `bytes`, lowercase hex.
pub(crate) fn hex_of(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_sha2_in_one_piece_and_in_chunks() {
        use sha2::Digest as _;
        for len in [0usize, 1, 55, 56, 63, 64, 65, 1000, 300_000] {
            let input: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let expected = hex::encode(sha2::Sha256::digest(&input));
            assert_eq!(hex_of(&input), expected, "{len} bytes");
            let mut hasher = Sha256::new();
            for chunk in input.chunks(333) {
                hasher.update(chunk);
            }
            assert_eq!(hasher.finish_hex(), expected, "{len} bytes in chunks");
        }
    }
}
