//! Call and outcome envelopes: what they hold, and their encoding (a
//! 4-byte magic, a 1-byte protocol version, a MessagePack map with field
//! names as keys).

use serde::{Deserialize, Serialize};

use super::failure::Failure;
use super::timings::Timings;
use super::value::at_end;
use super::{Bytes, CALL_MAGIC, OUTCOME_MAGIC, PROTOCOL_VERSION};
use crate::error::Error;

/// A call of a remote function, as sent to `hype-run`. Built with
/// [`CallEnvelope::new`]; fields may be added in later protocol versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallEnvelope {
    /// The function's stable ID.
    pub function: String,
    /// The caller's signature hash of the function.
    pub signature: u64,
    /// Which build sent the call.
    pub build: BuildInfo,
    /// Where `hype-run` stages a result too large to return inline
    /// (`file:///dir`, `gs://bucket/prefix`), if anywhere.
    pub staging: Option<String>,
    /// The encoded `{Name}Args` value.
    pub payload: Payload,
    /// The executable to run the call with, staged as a blob (protocol
    /// version 2): a launcher `hype-run` whose own executable is another
    /// fetches it and runs the call with it. `None` (version 1): whatever
    /// `hype-run` receives the call runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<BlobRef>,
}

impl CallEnvelope {
    /// A call of `function` with its signature and encoded arguments, from
    /// this build ([`BuildInfo::current`]), naming no staging location.
    pub fn new(function: impl Into<String>, signature: u64, payload: Payload) -> CallEnvelope {
        CallEnvelope {
            function: function.into(),
            signature,
            build: BuildInfo::current(),
            staging: None,
            payload,
            executable: None,
        }
    }

    /// The same call, to be run by the staged executable `executable`.
    pub fn with_executable(mut self, executable: BlobRef) -> CallEnvelope {
        self.executable = Some(executable);
        self
    }

    /// The same call, telling `hype-run` where to stage a large result.
    pub fn with_staging(mut self, location: impl Into<String>) -> CallEnvelope {
        self.staging = Some(location.into());
        self
    }

    /// The same call, as sent by another build.
    pub fn with_build(mut self, build: BuildInfo) -> CallEnvelope {
        self.build = build;
        self
    }
}

/// Which build of which program made a call: shown when the two sides of a
/// call disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BuildInfo {
    /// The `hype` version of the caller.
    pub hype_version: String,
    /// SHA-256 (hex) of the caller's executable, when it could be read.
    pub binary_sha256: Option<String>,
}

impl BuildInfo {
    /// The build info of `hype_version`, with the executable's digest if
    /// known.
    pub fn new(hype_version: impl Into<String>, binary_sha256: Option<String>) -> BuildInfo {
        BuildInfo {
            hype_version: hype_version.into(),
            binary_sha256,
        }
    }

    /// This process's build info. `binary_sha256` is informative: it is
    /// there once [`BuildInfo::start_hashing`] has finished hashing the
    /// executable in the background (a debug build of a large binary takes
    /// about a second), and never delays a call.
    pub fn current() -> BuildInfo {
        BuildInfo {
            hype_version: env!("CARGO_PKG_VERSION").to_owned(),
            binary_sha256: crate::executable::current_digest_now().map(|d| d.sha256),
        }
    }

    /// Starts hashing this executable on a background thread, once per
    /// process (the same hash a shipped executable uses). Submitters call
    /// it when they are created.
    pub fn start_hashing() {
        crate::executable::start_hashing_current();
    }
}

/// Bytes carried inline or staged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// The bytes themselves.
    Inline(Bytes),
    /// A staged blob holding the bytes.
    Staged(BlobRef),
}

/// A content-addressed blob in a staging store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BlobRef {
    /// Where it is: `<staging>/blobs/sha256/<hex>`.
    pub uri: String,
    /// Its length in bytes.
    pub len: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

impl BlobRef {
    /// The blob at `uri` of `len` bytes whose SHA-256 is `sha256` (hex).
    pub fn new(uri: impl Into<String>, len: u64, sha256: impl Into<String>) -> BlobRef {
        BlobRef {
            uri: uri.into(),
            len,
            sha256: sha256.into(),
        }
    }
}

/// What became of a call, as written by `hype-run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutcomeEnvelope {
    /// The function's ID, as the call named it (empty if the call could not
    /// be decoded).
    pub function: String,
    /// The execution that ran it (`HYPE_EXECUTION_ID`).
    pub execution_id: String,
    /// What happened.
    pub outcome: Outcome,
    /// How long `hype-run`'s own steps took, each measured on its machine
    /// (absent from older writers; older readers ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

impl OutcomeEnvelope {
    /// The outcome of `function` as run by `execution_id`.
    pub fn new(
        function: impl Into<String>,
        execution_id: impl Into<String>,
        outcome: Outcome,
    ) -> OutcomeEnvelope {
        OutcomeEnvelope {
            function: function.into(),
            execution_id: execution_id.into(),
            outcome,
            timings: None,
        }
    }

    /// The same outcome, with `hype-run`'s timings.
    pub fn with_timings(mut self, timings: Timings) -> OutcomeEnvelope {
        self.timings = Some(timings);
        self
    }
}

/// What happened to a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Outcome {
    /// The function returned; the payload is its encoded result (a user
    /// `Err(e)` is a returned value too).
    Returned(Payload),
    /// The function panicked.
    Panicked {
        /// The panic message.
        message: String,
        /// `file:line:column`, when known.
        location: Option<String>,
    },
    /// The call could not be run.
    Failed(Failure),
}

/// Encodes a call envelope: magic, version, MessagePack map.
/// A call that names no executable is written as version 1, so a
/// `hype-run` of an older build still reads it; one that does is version 2.
pub fn encode_call(envelope: &CallEnvelope) -> Result<Vec<u8>, Error> {
    let version = if envelope.executable.is_some() {
        PROTOCOL_VERSION
    } else {
        1
    };
    encode_envelope(CALL_MAGIC, version, envelope, "call envelope")
}

/// Decodes a call envelope (version 1 or 2), checking magic, version and
/// trailing bytes.
pub fn decode_call(bytes: &[u8]) -> Result<CallEnvelope, Error> {
    decode_envelope(CALL_MAGIC, 1..=PROTOCOL_VERSION, bytes, "call envelope")
}

/// Encodes an outcome envelope (version 1: outcomes did not change in
/// version 2).
pub fn encode_outcome(envelope: &OutcomeEnvelope) -> Result<Vec<u8>, Error> {
    encode_envelope(OUTCOME_MAGIC, 1, envelope, "outcome envelope")
}

/// Decodes an outcome envelope.
pub fn decode_outcome(bytes: &[u8]) -> Result<OutcomeEnvelope, Error> {
    decode_envelope(OUTCOME_MAGIC, 1..=1, bytes, "outcome envelope")
}

fn encode_envelope<T: Serialize>(
    magic: [u8; 4],
    version: u8,
    value: &T,
    what: &str,
) -> Result<Vec<u8>, Error> {
    let mut out = crate::bytes::LargeWriter(Vec::with_capacity(128));
    out.0.extend_from_slice(&magic);
    out.0.push(version);
    value
        .serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())
        .map_err(|err| Error::malformed(what, format!("cannot encode: {err}")))?;
    Ok(out.0)
}

fn decode_envelope<T: serde::de::DeserializeOwned>(
    magic: [u8; 4],
    versions: std::ops::RangeInclusive<u8>,
    bytes: &[u8],
    what: &str,
) -> Result<T, Error> {
    let Some((head, body)) = bytes.split_at_checked(5) else {
        return Err(Error::malformed(
            what,
            format!("{} bytes is too short for a hype envelope", bytes.len()),
        ));
    };
    if head[..4] != magic {
        let other = if magic == CALL_MAGIC {
            OUTCOME_MAGIC
        } else {
            CALL_MAGIC
        };
        let reason = if head[..4] == other {
            format!(
                "found a {} envelope instead",
                if other == CALL_MAGIC {
                    "call"
                } else {
                    "outcome"
                }
            )
        } else {
            format!(
                "does not start with {:?} (found {:02x?}): not hype data",
                String::from_utf8_lossy(&magic),
                &head[..4]
            )
        };
        return Err(Error::malformed(what, reason));
    }
    if !versions.contains(&head[4]) {
        let speaks = if versions.start() == versions.end() {
            format!("version {}", versions.start())
        } else {
            format!("versions {} to {}", versions.start(), versions.end())
        };
        return Err(Error::malformed(
            what,
            format!(
                "protocol version {} but this build reads {speaks}: build both sides from compatible hype versions",
                head[4]
            ),
        ));
    }
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(body);
    let value = T::deserialize(&mut deserializer)
        .map_err(|err| Error::malformed(what, format!("invalid or truncated: {err}")))?;
    if !at_end(&mut deserializer) {
        return Err(Error::malformed(
            what,
            "unexpected bytes after the envelope",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode_value;

    fn call() -> CallEnvelope {
        CallEnvelope {
            function: "demo::word_count".into(),
            signature: 0x1234_5678_9abc_def0,
            build: BuildInfo {
                hype_version: "0.1.0".into(),
                binary_sha256: None,
            },
            staging: Some("file:///tmp/s".into()),
            payload: Payload::Inline(Bytes::from(vec![0x91, 0xa1, b'x'])),
            executable: None,
        }
    }

    #[test]
    fn golden_call_bytes() {
        let call = CallEnvelope {
            function: "demo::add".into(),
            signature: 0x0123_4567_89ab_cdef,
            build: BuildInfo {
                hype_version: "0.1.0".into(),
                binary_sha256: None,
            },
            staging: Some("file:///tmp/s".into()),
            payload: Payload::Inline(Bytes::from(vec![0x92, 0x01, 0x02])),
            executable: None,
        };
        fn fixstr(out: &mut Vec<u8>, s: &str) {
            out.push(0xa0 | s.len() as u8);
            out.extend_from_slice(s.as_bytes());
        }
        let mut expected = b"HYPC\x01\x85".to_vec();
        fixstr(&mut expected, "function");
        fixstr(&mut expected, "demo::add");
        fixstr(&mut expected, "signature");
        expected.extend_from_slice(&[0xcf, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        fixstr(&mut expected, "build");
        expected.push(0x82);
        fixstr(&mut expected, "hype_version");
        fixstr(&mut expected, "0.1.0");
        fixstr(&mut expected, "binary_sha256");
        expected.push(0xc0);
        fixstr(&mut expected, "staging");
        fixstr(&mut expected, "file:///tmp/s");
        fixstr(&mut expected, "payload");
        expected.push(0x81);
        fixstr(&mut expected, "Inline");
        expected.extend_from_slice(&[0xc4, 0x03, 0x92, 0x01, 0x02]);
        assert_eq!(encode_call(&call).unwrap(), expected);
        assert_eq!(
            encode_value("demo::add", "arguments", &(1i64, 2i64)).unwrap(),
            [0x92, 0x01, 0x02]
        );
    }

    #[test]
    fn call_round_trip() {
        let bytes = encode_call(&call()).unwrap();
        assert_eq!(&bytes[..5], b"HYPC\x01");
        assert_eq!(decode_call(&bytes).unwrap(), call());
    }

    #[test]
    fn outcome_round_trip_each_kind() {
        for outcome in [
            Outcome::Returned(Payload::Staged(BlobRef {
                uri: "file:///s/blobs/sha256/ab".into(),
                len: 3,
                sha256: "ab".into(),
            })),
            Outcome::Panicked {
                message: "boom".into(),
                location: Some("src/lib.rs:1:2".into()),
            },
            Outcome::Failed(Failure::SignatureMismatch {
                expected: 1,
                found: 2,
            }),
        ] {
            let env = OutcomeEnvelope::new("f", "e", outcome);
            assert_eq!(decode_outcome(&encode_outcome(&env).unwrap()).unwrap(), env);
        }
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let bytes = encode_call(&call()).unwrap();
        for len in 0..bytes.len() {
            let err = decode_call(&bytes[..len]).unwrap_err();
            assert!(
                matches!(err, Error::MalformedEnvelope { .. }),
                "{len}: {err}"
            );
        }
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[i] ^= flip;
                // Either still a valid envelope (a flipped payload byte) or a typed error.
                let _ = decode_call(&corrupt);
            }
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        let err = decode_call(&trailing).unwrap_err().to_string();
        assert!(err.contains("unexpected bytes"), "{err}");
        trailing.pop();
        trailing.push(0xc1); // a reserved marker: still trailing bytes
        let err = decode_call(&trailing).unwrap_err().to_string();
        assert!(err.contains("unexpected bytes"), "{err}");
    }

    #[test]
    fn a_call_naming_an_executable_is_version_2_and_round_trips() {
        let plain = encode_call(&call()).unwrap();
        assert_eq!(plain[4], 1, "a call without an executable stays version 1");
        let blob = BlobRef::new("file:///s/blobs/sha256/aa", 7, "aa");
        let shipped = call().with_executable(blob.clone());
        let bytes = encode_call(&shipped).unwrap();
        assert_eq!(bytes[4], 2);
        let decoded = decode_call(&bytes).unwrap();
        assert_eq!(decoded.executable, Some(blob));
        assert_eq!(decoded, shipped);
    }

    #[test]
    fn magic_and_version_are_checked() {
        let bytes = encode_call(&call()).unwrap();
        let err = decode_outcome(&bytes).unwrap_err();
        assert!(err.to_string().contains("found a call envelope"), "{err}");
        // A version-2 reader reads version 1 and 2; 0 and 3 are refused.
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert_eq!(decode_call(&v2).unwrap(), call());
        for version in [0, 3] {
            let mut other = bytes.clone();
            other[4] = version;
            let err = decode_call(&other).unwrap_err().to_string();
            assert!(
                err.contains(&format!("protocol version {version}")),
                "{err}"
            );
            assert!(err.contains("versions 1 to 2"), "{err}");
        }
        let mut outcome = encode_outcome(&OutcomeEnvelope::new(
            "f",
            "e",
            Outcome::Returned(Payload::Inline(Bytes::new())),
        ))
        .unwrap();
        assert_eq!(outcome[4], 1);
        outcome[4] = 2;
        let err = decode_outcome(&outcome).unwrap_err().to_string();
        assert!(err.contains("reads version 1"), "{err}");
        assert!(
            decode_call(b"garbage garbage")
                .unwrap_err()
                .to_string()
                .contains("not hype data")
        );
    }

    #[test]
    fn start_hashing_records_the_digest_of_this_executable() {
        use std::time::{Duration, Instant};
        BuildInfo::start_hashing();
        BuildInfo::start_hashing(); // Once per process: a no-op.
        let deadline = crate::clock::later(Instant::now(), Duration::from_secs(10));
        let digest = loop {
            if let Some(digest) = BuildInfo::current().binary_sha256 {
                break digest;
            }
            assert!(
                Instant::now() < deadline,
                "the executable was not hashed within 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let exe = std::env::current_exe().unwrap();
        assert_eq!(digest, crate::executable::hash_file(&exe).unwrap().sha256);
        assert_eq!(BuildInfo::current().hype_version, env!("CARGO_PKG_VERSION"));
    }
}
