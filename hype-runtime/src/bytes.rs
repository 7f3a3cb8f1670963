//! [`Bytes`]: binary data that crosses the wire as one MessagePack `bin`,
//! with buffers sized and placed for large payloads.
//!
//! Large buffers are where a call's time goes: a fresh 64 MiB buffer costs
//! more in page faults than in copying. Buffers of 4 MiB or more are
//! allocated once at their final size and, on Linux, advised to use
//! transparent huge pages (`madvise(MADV_HUGEPAGE)`), which cuts the faults
//! 512-fold where the kernel allows it (`/sys/kernel/mm/transparent_hugepage/enabled`
//! set to `madvise` or `always`). Elsewhere the advice is a no-op.

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Buffers at least this large get huge-page advice.
pub const LARGE_BUFFER: usize = 4 << 20;

/// An empty `Vec<u8>` with room for `capacity` bytes, advised to use huge
/// pages when large.
pub fn vec_with_capacity(capacity: usize) -> Vec<u8> {
    let mut vec = Vec::with_capacity(capacity);
    advise_huge_pages(&mut vec);
    vec
}

/// Advises the kernel to back `vec`'s allocation with huge pages, if it is
/// large. A hint: nothing changes but speed.
pub fn advise_huge_pages(vec: &mut Vec<u8>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        if vec.capacity() < LARGE_BUFFER {
            return;
        }
        let start = vec.as_mut_ptr() as usize;
        let end = start + vec.capacity();
        let aligned_start = (start + HUGE - 1) & !(HUGE - 1);
        let aligned_end = end & !(HUGE - 1);
        if aligned_end > aligned_start {
            // SAFETY: the range lies inside `vec`'s allocation, which this
            // function borrows mutably; MADV_HUGEPAGE changes no contents
            // and no mapping the allocator relies on, only how the kernel
            // backs the pages.
            unsafe {
                let _ = rustix::mm::madvise(
                    aligned_start as *mut std::ffi::c_void,
                    aligned_end - aligned_start,
                    rustix::mm::Advice::LinuxHugepage,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = vec;
}

/// A writer into a `Vec<u8>` that grows large buffers with huge-page advice.
#[derive(Debug, Default)]
pub(crate) struct LargeWriter(pub(crate) Vec<u8>);

impl std::io::Write for LargeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let needed = self.0.len() + buf.len();
        if needed > self.0.capacity() {
            let target = needed.max(self.0.capacity() * 2);
            self.0.reserve_exact(target - self.0.len());
            advise_huge_pages(&mut self.0);
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes that travel as one MessagePack `bin` (not an array of integers),
/// decoded into a buffer allocated once at its final size. Use it for
/// binary arguments and results; it converts to and from `Vec<u8>` for free.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(Vec<u8>);

impl Bytes {
    /// Empty bytes.
    pub fn new() -> Self {
        Bytes(Vec::new())
    }

    /// The bytes as a `Vec<u8>`.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Deref for Bytes {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(vec: Vec<u8>) -> Self {
        Bytes(vec)
    }
}

impl From<&[u8]> for Bytes {
    fn from(slice: &[u8]) -> Self {
        let mut vec = vec_with_capacity(slice.len());
        vec.extend_from_slice(slice);
        Bytes(vec)
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(bytes: Bytes) -> Self {
        bytes.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Bytes, E> {
                Ok(Bytes::from(v.as_bytes()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Bytes, A::Error> {
                let mut vec = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element::<u8>()? {
                    vec.push(b);
                }
                Ok(Bytes(vec))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_one_bin_and_round_trip() {
        let bytes = Bytes::from(vec![1u8, 2, 3]);
        let encoded = rmp_serde::to_vec(&bytes).unwrap();
        assert_eq!(encoded, [0xc4, 3, 1, 2, 3]);
        let decoded: Bytes = rmp_serde::from_slice(&encoded).unwrap();
        assert_eq!(decoded, bytes);
        // Interoperates with serde_bytes and with arrays of integers.
        let from_seq: Bytes =
            rmp_serde::from_slice(&rmp_serde::to_vec(&vec![4u8, 5]).unwrap()).unwrap();
        assert_eq!(from_seq.into_vec(), vec![4, 5]);
    }

    #[test]
    fn large_buffers_keep_their_contents() {
        let data: Vec<u8> = (0..(LARGE_BUFFER + 12345)).map(|i| i as u8).collect();
        let mut writer = LargeWriter::default();
        std::io::Write::write_all(&mut writer, &data[..10]).unwrap();
        std::io::Write::write_all(&mut writer, &data[10..]).unwrap();
        assert_eq!(writer.0, data);
        assert_eq!(Bytes::from(&data[..]).into_vec(), data);
    }
}
