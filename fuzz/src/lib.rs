//! What the fuzz targets of hype share: the checks of decoded envelopes
//! (used by the envelope targets and by the reference target on inline
//! references), the recursive value types the value target decodes, the
//! text form of a [`ClusterSpec`], the seed corpora, and [`verdict`], which
//! lets `run.sh` check that every seed is accepted or rejected as its name
//! says.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::OnceLock;

use hype_runtime::__tools::ClusterSpec;
use hype_runtime::wire::{
    self, BlobRef, BuildInfo, CallEnvelope, FAILURE_MESSAGE_LIMIT, Failure, Outcome,
    OutcomeEnvelope, Payload,
};
use hype_runtime::{Bytes, Error};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub mod seeds;

/// The variable `run.sh` sets while it runs a target once on each of its
/// seeds: `accepted` for seeds the parser must accept, `rejected` for the
/// `bad-*` seeds it must reject.
pub const EXPECT_VAR: &str = "HYPE_FUZZ_EXPECT";

/// Tells the seed check whether the parser accepted this input: panics
/// (a crash, so the seed check fails) when [`EXPECT_VAR`] says otherwise.
/// While fuzzing the variable is unset and this does nothing.
pub fn verdict(accepted: bool) {
    static EXPECT: OnceLock<Option<bool>> = OnceLock::new();
    let expect = EXPECT.get_or_init(|| match std::env::var(EXPECT_VAR).as_deref() {
        Ok("accepted") => Some(true),
        Ok("rejected") => Some(false),
        _ => None,
    });
    if let Some(expected) = *expect {
        assert_eq!(
            accepted,
            expected,
            "seed was {} but {EXPECT_VAR} expects it {}",
            if accepted { "accepted" } else { "rejected" },
            if expected { "accepted" } else { "rejected" },
        );
    }
}

/// Decodes `bytes` as a call envelope; when that succeeds, checks the
/// round trip: the envelope re-encodes, the encoding decodes to an equal
/// envelope, and re-encoding that gives the same bytes (the encoding of a
/// decoded envelope is a fixed point; the input itself may be another of
/// MessagePack's encodings of the same value). Returns whether it decoded.
pub fn check_call(bytes: &[u8]) -> bool {
    let Ok(call) = wire::decode_call(bytes) else {
        return false;
    };
    let encoded = wire::encode_call(&call).expect("a decoded call envelope encodes");
    let again = wire::decode_call(&encoded).expect("a re-encoded call envelope decodes");
    assert_eq!(again, call, "call envelope changed in a round trip");
    assert_eq!(
        wire::encode_call(&again).expect("encodes"),
        encoded,
        "re-encoding is not a fixed point"
    );
    let other = wire::decode_outcome(bytes).expect_err("a call envelope is no outcome");
    assert!(
        other.to_string().contains("found a call envelope"),
        "{other}"
    );
    true
}

/// As [`check_call`], for outcome envelopes; a `Failed` outcome's failure
/// also goes through the caller's error and back ([`check_failure`]).
pub fn check_outcome(bytes: &[u8]) -> bool {
    let Ok(outcome) = wire::decode_outcome(bytes) else {
        return false;
    };
    let encoded = wire::encode_outcome(&outcome).expect("a decoded outcome envelope encodes");
    let again = wire::decode_outcome(&encoded).expect("a re-encoded outcome envelope decodes");
    assert_eq!(again, outcome, "outcome envelope changed in a round trip");
    assert_eq!(
        wire::encode_outcome(&again).expect("encodes"),
        encoded,
        "re-encoding is not a fixed point"
    );
    let other = wire::decode_call(bytes).expect_err("an outcome envelope is no call");
    assert!(
        other.to_string().contains("found a outcome envelope")
            || other.to_string().contains("found an outcome envelope"),
        "{other}"
    );
    if let Outcome::Failed(failure) = &outcome.outcome {
        check_failure(failure, &outcome.function, &outcome.execution_id);
    }
    true
}

/// What a [`wire::FrameDecoder`] made of a stream: the messages, and the
/// first error's text if there was one.
type Decoded<T> = (Vec<T>, Option<String>);

fn decode_stream<T: DeserializeOwned>(stream: &[u8], piece: usize, max: usize) -> Decoded<T> {
    let mut decoder = wire::FrameDecoder::with_max_frame_len(max);
    let mut messages = Vec::new();
    for chunk in stream.chunks(piece.max(1)) {
        if let Err(err) = decoder.push(chunk) {
            return (messages, Some(err.to_string()));
        }
        loop {
            match decoder.next_message::<T>() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(err) => return (messages, Some(err.to_string())),
            }
        }
        assert!(
            decoder.buffered() < max + wire::FRAME_HEADER_LEN + piece.max(1),
            "the decoder holds {} bytes",
            decoder.buffered()
        );
    }
    let end = decoder.finish().err().map(|e| e.to_string());
    (messages, end)
}

fn check_direction<T>(stream: &[u8], piece: usize) -> bool
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let max = 4096;
    let (messages, error) = decode_stream::<T>(stream, piece, max);
    let (whole, whole_error) = decode_stream::<T>(stream, stream.len(), max);
    assert_eq!(
        messages, whole,
        "the messages depend on how the stream is cut"
    );
    assert_eq!(
        error.is_some(),
        whole_error.is_some(),
        "an error depends on how the stream is cut: {error:?} / {whole_error:?}"
    );
    for message in &messages {
        let frame = wire::encode_frame(message).expect("a decoded message encodes");
        let (again, again_error) = decode_stream::<T>(&frame, 1, max);
        assert_eq!(again_error, None, "a re-encoded message does not decode");
        assert_eq!(again.as_slice(), std::slice::from_ref(message));
    }
    error.is_none() && !messages.is_empty()
}

/// The `worker_frames` target: the first byte of `data` picks the direction
/// (even: [`wire::WorkerRequest`]s, odd: [`wire::WorkerEvent`]s) and the
/// piece size (`byte / 2 % 16 + 1`); the rest is the stream. Accepted when
/// it is whole frames of at least one message.
pub fn check_frames(data: &[u8]) -> bool {
    let Some((&head, stream)) = data.split_first() else {
        return false;
    };
    let piece = (head / 2 % 16) as usize + 1;
    if head % 2 == 0 {
        check_direction::<wire::WorkerRequest>(stream, piece)
    } else {
        check_direction::<wire::WorkerEvent>(stream, piece)
    }
}

/// A failure read from an outcome becomes the caller's error
/// ([`Failure::into_error`]); `hype-run` turns errors into failures
/// ([`Failure::from_error`]). Checks that the exit code survives that trip,
/// that every code is described, that messages come back within
/// [`FAILURE_MESSAGE_LIMIT`], and that a failure already within the limits
/// comes back unchanged (except `Staging`, whose message becomes the whole
/// error text).
pub fn check_failure(failure: &Failure, function: &str, execution_id: &str) {
    let code = failure.exit_code();
    assert!(
        wire::describe_exit_code(code).is_some(),
        "exit code {code} is not in EXIT_CODES"
    );
    let error: Error = failure.clone().into_error(function, execution_id);
    let _ = error.to_string();
    let _ = error.full_text();
    let back = Failure::from_error(&error);
    assert_eq!(back.exit_code(), code, "{failure:?} came back as {back:?}");
    let within = |s: &String| s.len() <= FAILURE_MESSAGE_LIMIT;
    for message in messages(&back) {
        assert!(within(message), "{back:?} has a message over the limit");
    }
    let unchanged_expected = match failure {
        Failure::Staging { transient, .. } => {
            assert!(
                matches!(back, Failure::Staging { transient: t, .. } if t == *transient),
                "{failure:?} lost whether it passes: {back:?}"
            );
            false
        }
        Failure::UnknownFunction { known } => known.len() <= 20,
        other => messages(other).into_iter().all(within),
    };
    if unchanged_expected {
        assert_eq!(&back, failure, "failure changed through the caller's error");
    }
}

/// The fields of a failure that `Failure::from_error` cuts to the limit.
fn messages(failure: &Failure) -> Vec<&String> {
    match failure {
        Failure::BadInvocation { message }
        | Failure::MalformedCall { message }
        | Failure::Staging { message, .. }
        | Failure::DecodeArguments { message }
        | Failure::EncodeResult { message } => vec![message],
        Failure::StagedObjectMissing { uri }
        | Failure::DigestMismatch { uri, .. }
        | Failure::ExecutableMissing { uri } => vec![uri],
        Failure::ExecutableCorrupt { uri, message } => vec![uri, message],
        Failure::ExecutableCannotStart { image, message } => vec![image, message],
        Failure::UnknownFunction { .. }
        | Failure::SignatureMismatch { .. }
        | Failure::DuplicateFunction { .. } => vec![],
        // Failure is #[non_exhaustive]: a new kind carries no text checked here.
        _ => vec![],
    }
}

/// `HYPE_CLUSTER` text naming `spec`, the inverse of [`ClusterSpec::parse`].
pub fn cluster_text(spec: &ClusterSpec) -> String {
    match spec {
        ClusterSpec::Local => "local".to_owned(),
        ClusterSpec::Docker => "docker".to_owned(),
        ClusterSpec::Kube { context: None } => "kube".to_owned(),
        ClusterSpec::Kube {
            context: Some(context),
        } => format!("kube:{context}"),
        ClusterSpec::Gke {
            project,
            location,
            cluster,
        } => format!("gke:{project}/{location}/{cluster}"),
        other => panic!("a ClusterSpec this target cannot write: {other:?}"),
    }
}

/// Decodes `bytes` as a `T` value ([`wire::decode_value`]); when that
/// succeeds, checks the round trip: the value encodes, the encoding decodes
/// to an equal value and, for types without a `HashMap` (`fixed_point`),
/// encoding that gives the same bytes again. Returns whether it decoded.
pub fn check_value<T>(bytes: &[u8], fixed_point: bool) -> bool
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(value) = wire::decode_value::<T>("fuzz::value", "arguments", bytes) else {
        return false;
    };
    let encoded =
        wire::encode_value("fuzz::value", "arguments", &value).expect("a decoded value encodes");
    let again: T = wire::decode_value("fuzz::value", "arguments", &encoded)
        .expect("a re-encoded value decodes");
    assert_eq!(again, value, "value changed in a round trip");
    if fixed_point {
        let twice = wire::encode_value("fuzz::value", "arguments", &again).expect("encodes");
        assert_eq!(twice, encoded, "re-encoding is not a fixed point");
    }
    true
}

/// An `f64` compared by its bits, so NaN equals itself and `-0.0` differs
/// from `0.0`: what a round trip must keep.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Float(pub f64);

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

/// A recursive value with every shape of serde's data model, nested without
/// bound: through enums, boxes, options, sequences, maps and structs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Tree {
    /// A unit variant (the variant name alone).
    Leaf,
    /// Integers of every width and sign.
    Int(i64),
    /// An unsigned integer.
    Uint(u64),
    /// A 128-bit integer (MessagePack `bin` of 16 bytes).
    Wide(i128),
    /// A float.
    Float(Float),
    /// A char (a one-character string).
    Char(char),
    /// A string.
    Text(String),
    /// `hype::Bytes`: one `bin`.
    Blob(Bytes),
    /// `serde_bytes`: one `bin`.
    Buf(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Plain `Vec<u8>`: an array of integers.
    Octets(Vec<u8>),
    /// Recursion through a box.
    Boxed(Box<Tree>),
    /// A tuple variant of two subtrees.
    Pair(Box<Tree>, Box<Tree>),
    /// Recursion through an option.
    Maybe(Option<Box<Tree>>),
    /// A sequence of subtrees.
    List(Vec<Tree>),
    /// A map with string keys.
    Map(BTreeMap<String, Tree>),
    /// A hash map with integer keys.
    Hashed(HashMap<u32, Tree>),
    /// A nested struct.
    Record(Box<Record>),
    /// A struct variant.
    Node {
        /// Its label.
        label: String,
        /// Its children.
        children: Vec<Tree>,
        /// Its parent, if any.
        parent: Option<Box<Tree>>,
    },
    /// A `Result`, as a function's result travels.
    Outcome(Result<Box<Tree>, String>),
}

/// A struct in a struct, as user arguments nest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// A number.
    pub id: u32,
    /// A name.
    pub name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// A nested struct.
    pub inner: Inner,
    /// Optional subtrees by name.
    pub attributes: HashMap<String, Option<Tree>>,
    /// A unit field.
    pub unit: (),
    /// A tuple.
    pub tuple: (u8, i16, Option<bool>),
}

/// The innermost struct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inner {
    /// A float.
    pub ratio: Float,
    /// A fixed-size array.
    pub flags: [bool; 3],
    /// Nested sequences of options.
    pub nested: Vec<Vec<Option<u8>>>,
}

/// Recursion with no enum in the way: a struct whose fields hold its own
/// type in sequences and a map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    /// A value.
    pub value: i32,
    /// Subtrees.
    pub children: Vec<Branch>,
    /// Subtrees by name.
    pub named: BTreeMap<String, Branch>,
}

/// What `#[hype::remote] fn add(a: i64, b: i64)` generates for its
/// arguments: a struct, encoded as an array (`92 01 02` for `add(1, 2)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddArgs {
    /// The first argument.
    pub a: i64,
    /// The second argument.
    pub b: i64,
}

/// Arguments of a function taking a tree, bytes and an optional note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeArgs {
    /// A tree.
    pub tree: Tree,
    /// Bytes.
    pub data: Bytes,
    /// A note.
    pub note: Option<String>,
}

/// A call envelope of `demo::add(1, 2)`, the example of
/// `docs/protocol.md` §2 (pinned there by the runtime's
/// `golden_call_bytes` test).
pub fn golden_call() -> CallEnvelope {
    CallEnvelope::new(
        "demo::add",
        0x0123_4567_89ab_cdef,
        Payload::Inline(Bytes::from(vec![0x92, 0x01, 0x02])),
    )
    .with_staging("file:///tmp/s")
    .with_build(BuildInfo::new("0.1.0", None))
}

/// A blob reference under the example staging location `file:///tmp/s`.
pub fn example_blob(bytes: &[u8]) -> BlobRef {
    let sha = wire::sha256_hex(bytes);
    BlobRef::new(
        format!("file:///tmp/s/blobs/sha256/{sha}"),
        bytes.len() as u64,
        sha,
    )
}

/// An outcome envelope of `demo::add` run as `hype-add-1`.
pub fn example_outcome(outcome: Outcome) -> OutcomeEnvelope {
    OutcomeEnvelope::new("demo::add", "hype-add-1", outcome)
}
