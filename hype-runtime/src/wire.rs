//! The wire: how a call and its outcome travel between the submitter and
//! `hype-run`. The full protocol is specified in `docs/protocol.md`; this
//! module is its reference implementation.
//!
//! - A **call envelope** ([`CallEnvelope`]) and an **outcome envelope**
//!   ([`OutcomeEnvelope`]) are a 4-byte magic, a 1-byte protocol version,
//!   and a MessagePack map (field names as keys).
//! - **Values** (the generated `{Name}Args` struct, the result) are
//!   MessagePack with structs as arrays (`rmp_serde::to_vec`).
//! - A **payload** is inline bytes or a reference to a staged,
//!   content-addressed blob ([`BlobRef`]) verified by SHA-256.
//! - As text (the `hype-run` argument, the termination message), an
//!   envelope is a [`Reference`]: `inline:<base64>` or a staging URI.
//!
//! Decoding never panics: every malformed input is an [`Error`].

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The first four bytes of an encoded call envelope.
pub const CALL_MAGIC: [u8; 4] = *b"HYPC";
/// The first four bytes of an encoded outcome envelope.
pub const OUTCOME_MAGIC: [u8; 4] = *b"HYPO";
/// The protocol version this build writes and reads.
pub const PROTOCOL_VERSION: u8 = 1;

/// Arguments up to this many encoded bytes travel inside the call; larger
/// ones are staged. 64 KiB keeps the `hype-run` argument (base64) under
/// Linux's 128 KiB limit for one argument.
pub const INLINE_ARGUMENTS_LIMIT: usize = 64 * 1024;

/// The most bytes a termination message may hold (Kubernetes' per-container
/// limit). An outcome whose inline text is longer is staged.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// The longest message kept in a [`Failure`], so a failure outcome always
/// fits in a termination message.
pub const FAILURE_MESSAGE_LIMIT: usize = 1024;

pub use crate::bytes::Bytes;

/// A call of a remote function, as sent to `hype-run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Which build of which program made a call: shown when the two sides of a
/// call disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// The `hype` version of the caller.
    pub hype_version: String,
    /// SHA-256 (hex) of the caller's executable, when it could be read.
    pub binary_sha256: Option<String>,
}

static BINARY_SHA256: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

impl BuildInfo {
    /// This process's build info. `binary_sha256` is informative: it is
    /// there once [`BuildInfo::start_hashing`] has finished hashing the
    /// executable in the background (a debug build of a large binary takes
    /// about a second), and never delays a call.
    pub fn current() -> BuildInfo {
        BuildInfo {
            hype_version: env!("CARGO_PKG_VERSION").to_owned(),
            binary_sha256: BINARY_SHA256.get().cloned().flatten(),
        }
    }

    /// Starts hashing this executable on a background thread, once per
    /// process. Submitters call it when they are created.
    pub fn start_hashing() {
        static STARTED: std::sync::Once = std::sync::Once::new();
        STARTED.call_once(|| {
            let spawned = std::thread::Builder::new()
                .name("hype-hash-exe".to_owned())
                .spawn(|| {
                    let digest = std::env::current_exe()
                        .and_then(std::fs::read)
                        .ok()
                        .map(|bytes| sha256_hex(&bytes));
                    let _ = BINARY_SHA256.set(digest);
                });
            if spawned.is_err() {
                let _ = BINARY_SHA256.set(None);
            }
        });
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
pub struct BlobRef {
    /// Where it is: `<staging>/blobs/sha256/<hex>`.
    pub uri: String,
    /// Its length in bytes.
    pub len: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// What became of a call, as written by `hype-run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeEnvelope {
    /// The function's ID, as the call named it (empty if the call could not
    /// be decoded).
    pub function: String,
    /// The execution that ran it (`HYPE_EXECUTION_ID`).
    pub execution_id: String,
    /// What happened.
    pub outcome: Outcome,
}

/// What happened to a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Why `hype-run` could not run a call. Each kind has its own exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// Wrong command line.
    BadInvocation {
        /// What was wrong.
        message: String,
    },
    /// The call text or envelope is not valid.
    MalformedCall {
        /// What was wrong.
        message: String,
    },
    /// No function with the call's ID in this binary.
    UnknownFunction {
        /// Up to 20 IDs this binary knows.
        known: Vec<String>,
    },
    /// The function's signature differs.
    SignatureMismatch {
        /// The caller's signature.
        expected: u64,
        /// This binary's signature.
        found: u64,
    },
    /// A staged object is missing.
    StagedObjectMissing {
        /// Its URI.
        uri: String,
    },
    /// A staged blob does not match its digest.
    DigestMismatch {
        /// Its URI.
        uri: String,
        /// The digest the reference names.
        expected: String,
        /// The digest found.
        actual: String,
        /// The length the reference names.
        expected_len: u64,
        /// The length found.
        actual_len: u64,
    },
    /// The staging store failed.
    Staging {
        /// What went wrong.
        message: String,
    },
    /// The arguments did not decode into the function's argument types.
    DecodeArguments {
        /// The decoder's message.
        message: String,
    },
    /// The result could not be encoded.
    EncodeResult {
        /// The encoder's message.
        message: String,
    },
    /// The binary registers one ID twice.
    DuplicateFunction {
        /// The duplicated IDs.
        ids: Vec<String>,
    },
}

impl Failure {
    /// The exit code `hype-run` ends with for this failure. Codes are
    /// distinct so the cause is visible even where only the exit code is
    /// (`kubectl get pods`, `docker ps -a`).
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::BadInvocation { .. } => 64,
            Failure::MalformedCall { .. } => 65,
            Failure::UnknownFunction { .. } => 66,
            Failure::SignatureMismatch { .. } => 67,
            Failure::StagedObjectMissing { .. } => 68,
            Failure::DigestMismatch { .. } => 69,
            Failure::Staging { .. } => 70,
            Failure::DuplicateFunction { .. } => 71,
            Failure::DecodeArguments { .. } => 73,
            Failure::EncodeResult { .. } => 74,
        }
    }

    /// What an exit code of `hype-run` means, for errors that carry only it.
    pub fn describe_exit_code(code: i32) -> Option<&'static str> {
        Some(match code {
            0 => "the function returned",
            EXIT_PANICKED => "the function panicked",
            64 => "bad hype-run invocation",
            65 => "malformed call",
            66 => "unknown function",
            67 => "signature mismatch",
            68 => "staged object missing",
            69 => "staged object corrupt",
            70 => "staging failed",
            71 => "duplicate function IDs",
            EXIT_OUTCOME_UNWRITABLE => "the outcome could not be written",
            73 => "arguments did not decode",
            74 => "result did not encode",
            _ => return None,
        })
    }

    /// The error the caller sees for this failure.
    pub fn into_error(self, function: &str, execution_id: &str) -> Error {
        let (function, execution_id) = (function.to_owned(), execution_id.to_owned());
        match self {
            Failure::BadInvocation { message } => Error::BadInvocation { message },
            Failure::MalformedCall { message } => Error::MalformedEnvelope {
                what: "call".to_owned(),
                reason: message,
            },
            Failure::UnknownFunction { known } => Error::UnknownFunction {
                function,
                execution_id,
                known,
            },
            Failure::SignatureMismatch { expected, found } => Error::SignatureMismatch {
                function,
                expected,
                found,
                execution_id,
            },
            Failure::StagedObjectMissing { uri } => Error::StagedObjectMissing { uri },
            Failure::DigestMismatch {
                uri,
                expected,
                actual,
                expected_len,
                actual_len,
            } => Error::DigestMismatch {
                uri,
                expected,
                actual,
                expected_len,
                actual_len,
            },
            Failure::Staging { message } => Error::Staging {
                operation: "access",
                uri: format!("(from {execution_id})"),
                message,
                source: None,
            },
            Failure::DecodeArguments { message } => Error::Decode {
                function,
                what: "arguments",
                message,
            },
            Failure::EncodeResult { message } => Error::Encode {
                function,
                what: "result",
                message,
            },
            Failure::DuplicateFunction { ids } => Error::DuplicateFunction { ids },
        }
    }

    /// The failure `hype-run` reports for an error it met, with messages cut
    /// to [`FAILURE_MESSAGE_LIMIT`].
    pub fn from_error(err: &Error) -> Failure {
        let cut = |s: String| truncate(s, FAILURE_MESSAGE_LIMIT);
        match err {
            Error::BadInvocation { message } => Failure::BadInvocation {
                message: cut(message.clone()),
            },
            Error::MalformedEnvelope { what, reason } => Failure::MalformedCall {
                message: cut(if what == "call" {
                    reason.clone()
                } else {
                    format!("{what}: {reason}")
                }),
            },
            Error::UnknownFunction { known, .. } => Failure::UnknownFunction {
                known: known.iter().take(20).cloned().collect(),
            },
            Error::SignatureMismatch {
                expected, found, ..
            } => Failure::SignatureMismatch {
                expected: *expected,
                found: *found,
            },
            Error::StagedObjectMissing { uri } => Failure::StagedObjectMissing {
                uri: cut(uri.clone()),
            },
            Error::DigestMismatch {
                uri,
                expected,
                actual,
                expected_len,
                actual_len,
            } => Failure::DigestMismatch {
                uri: cut(uri.clone()),
                expected: expected.clone(),
                actual: actual.clone(),
                expected_len: *expected_len,
                actual_len: *actual_len,
            },
            Error::Decode { message, .. } => Failure::DecodeArguments {
                message: cut(message.clone()),
            },
            Error::Encode { message, .. } => Failure::EncodeResult {
                message: cut(message.clone()),
            },
            Error::DuplicateFunction { ids } => Failure::DuplicateFunction { ids: ids.clone() },
            other => Failure::Staging {
                message: cut(other.to_string()),
            },
        }
    }
}

/// Exit code of `hype-run` when the function panicked (the outcome says
/// how); Rust's own exit code for a panicking `main`.
pub const EXIT_PANICKED: i32 = 101;
/// Exit code of `hype-run` when it could not write the outcome at all.
pub const EXIT_OUTCOME_UNWRITABLE: i32 = 72;

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max.saturating_sub(3);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Encodes a call envelope: magic, version, MessagePack map.
pub fn encode_call(envelope: &CallEnvelope) -> Result<Vec<u8>, Error> {
    encode_envelope(CALL_MAGIC, envelope, "call envelope")
}

/// Decodes a call envelope, checking magic, version and trailing bytes.
pub fn decode_call(bytes: &[u8]) -> Result<CallEnvelope, Error> {
    decode_envelope(CALL_MAGIC, bytes, "call envelope")
}

/// Encodes an outcome envelope.
pub fn encode_outcome(envelope: &OutcomeEnvelope) -> Result<Vec<u8>, Error> {
    encode_envelope(OUTCOME_MAGIC, envelope, "outcome envelope")
}

/// Decodes an outcome envelope.
pub fn decode_outcome(bytes: &[u8]) -> Result<OutcomeEnvelope, Error> {
    decode_envelope(OUTCOME_MAGIC, bytes, "outcome envelope")
}

fn encode_envelope<T: Serialize>(magic: [u8; 4], value: &T, what: &str) -> Result<Vec<u8>, Error> {
    let mut out = crate::bytes::LargeWriter(Vec::with_capacity(128));
    out.0.extend_from_slice(&magic);
    out.0.push(PROTOCOL_VERSION);
    value
        .serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())
        .map_err(|err| Error::malformed(what, format!("cannot encode: {err}")))?;
    Ok(out.0)
}

fn decode_envelope<T: serde::de::DeserializeOwned>(
    magic: [u8; 4],
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
    if head[4] != PROTOCOL_VERSION {
        return Err(Error::malformed(
            what,
            format!(
                "protocol version {} but this build speaks version {PROTOCOL_VERSION}: build both sides from the same hype version",
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

/// Encodes a value (arguments or a result) for the wire.
pub fn encode_value<T: Serialize + ?Sized>(
    function: &str,
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, Error> {
    let mut writer = crate::bytes::LargeWriter::default();
    value
        .serialize(&mut rmp_serde::Serializer::new(&mut writer))
        .map_err(|err| Error::Encode {
            function: function.to_owned(),
            what,
            message: err.to_string(),
        })?;
    Ok(writer.0)
}

/// Decodes a value (arguments or a result) from the wire; trailing bytes are
/// an error.
pub fn decode_value<T: serde::de::DeserializeOwned>(
    function: &str,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, Error> {
    let error = |message: String| Error::Decode {
        function: function.to_owned(),
        what,
        message,
    };
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes);
    let value = T::deserialize(&mut deserializer).map_err(|err| error(err.to_string()))?;
    if !at_end(&mut deserializer) {
        return Err(error("unexpected bytes after the value".to_owned()));
    }
    Ok(value)
}

/// Whether a slice deserializer has consumed all its input: reading one
/// more value must fail on end of input, not succeed or fail otherwise.
fn at_end<'de, R: rmp_serde::decode::ReadSlice<'de>>(
    deserializer: &mut rmp_serde::Deserializer<R>,
) -> bool {
    use serde::Deserialize as _;
    matches!(
        serde::de::IgnoredAny::deserialize(deserializer),
        Err(rmp_serde::decode::Error::InvalidMarkerRead(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof
    )
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// An envelope as text: the `hype-run` argument, the termination message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `inline:<base64>`: the envelope's bytes, standard base64 with padding.
    Inline(Vec<u8>),
    /// A URI of a staged object holding the envelope (`file:///…`, `gs://…`).
    Object(String),
}

impl Reference {
    /// The prefix of inline references.
    pub const INLINE_PREFIX: &'static str = "inline:";

    /// Parses `inline:<base64>` or a URI with a scheme.
    pub fn parse(text: &str) -> Result<Reference, Error> {
        let text = text.trim_end_matches(['\n', '\r']);
        if let Some(encoded) = text.strip_prefix(Self::INLINE_PREFIX) {
            return base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map(Reference::Inline)
                .map_err(|err| Error::malformed("inline reference", format!("bad base64: {err}")));
        }
        match text.split_once("://") {
            Some((scheme, rest))
                if !scheme.is_empty()
                    && !rest.is_empty()
                    && scheme.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.'
                    }) =>
            {
                Ok(Reference::Object(text.to_owned()))
            }
            _ => {
                let shown: String = text.chars().take(40).collect();
                Err(Error::malformed(
                    "reference",
                    format!(
                        "expected `inline:<base64>` or a staging URI such as file:///dir/blobs/sha256/<hex>, got {shown:?}"
                    ),
                ))
            }
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Inline(bytes) => {
                f.write_str(Self::INLINE_PREFIX)?;
                f.write_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            Reference::Object(uri) => f.write_str(uri),
        }
    }
}

/// The length of `inline:<base64>` for `len` bytes.
pub fn inline_text_len(len: usize) -> usize {
    Reference::INLINE_PREFIX.len() + len.div_ceil(3) * 4
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    /// The example of docs/protocol.md, byte for byte.
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
            let env = OutcomeEnvelope {
                function: "f".into(),
                execution_id: "e".into(),
                outcome,
            };
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
    fn magic_and_version_are_checked() {
        let bytes = encode_call(&call()).unwrap();
        let err = decode_outcome(&bytes).unwrap_err();
        assert!(err.to_string().contains("found a call envelope"), "{err}");
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert!(
            decode_call(&v2)
                .unwrap_err()
                .to_string()
                .contains("protocol version 2")
        );
        assert!(
            decode_call(b"garbage garbage")
                .unwrap_err()
                .to_string()
                .contains("not hype data")
        );
    }

    #[test]
    fn references_parse_and_print() {
        let r = Reference::Inline(vec![1, 2, 3]);
        assert_eq!(r.to_string(), "inline:AQID");
        assert_eq!(Reference::parse("inline:AQID\n").unwrap(), r);
        assert_eq!(
            Reference::parse("gs://b/p/blobs/sha256/00").unwrap(),
            Reference::Object("gs://b/p/blobs/sha256/00".into())
        );
        assert!(Reference::parse("inline:!!").is_err());
        assert!(Reference::parse("hello").is_err());
        assert!(Reference::parse("://x").is_err());
        assert_eq!(inline_text_len(3), "inline:AQID".len());
        assert_eq!(inline_text_len(4), "inline:".len() + 8);
    }

    #[test]
    fn values_reject_trailing_bytes() {
        let mut bytes = encode_value("f", "result", &7u32).unwrap();
        assert_eq!(decode_value::<u32>("f", "result", &bytes).unwrap(), 7);
        bytes.push(0xc0);
        assert!(decode_value::<u32>("f", "result", &bytes).is_err());
        assert!(decode_value::<String>("f", "result", &[0xc1]).is_err());
    }

    #[test]
    fn failures_map_to_their_errors_and_codes() {
        let codes: std::collections::HashSet<i32> = [
            Failure::BadInvocation {
                message: String::new(),
            },
            Failure::MalformedCall {
                message: String::new(),
            },
            Failure::UnknownFunction { known: vec![] },
            Failure::SignatureMismatch {
                expected: 0,
                found: 0,
            },
            Failure::StagedObjectMissing { uri: String::new() },
            Failure::DigestMismatch {
                uri: String::new(),
                expected: String::new(),
                actual: String::new(),
                expected_len: 0,
                actual_len: 0,
            },
            Failure::Staging {
                message: String::new(),
            },
            Failure::DecodeArguments {
                message: String::new(),
            },
            Failure::EncodeResult {
                message: String::new(),
            },
            Failure::DuplicateFunction { ids: vec![] },
        ]
        .iter()
        .map(Failure::exit_code)
        .collect();
        assert_eq!(codes.len(), 10);
        assert!(
            !codes.contains(&0)
                && !codes.contains(&EXIT_PANICKED)
                && !codes.contains(&EXIT_OUTCOME_UNWRITABLE)
        );
        let err = Failure::UnknownFunction {
            known: vec!["a::b".into()],
        }
        .into_error("x::y", "hype-y-1");
        assert!(matches!(err, Error::UnknownFunction { ref function, .. } if function == "x::y"));
        assert!(err.to_string().contains("version skew"), "{err}");
        let long = Failure::from_error(&Error::BadInvocation {
            message: "x".repeat(5000),
        });
        let Failure::BadInvocation { message } = long else {
            panic!()
        };
        assert!(message.len() <= FAILURE_MESSAGE_LIMIT);
    }
}
