//! The wire: how a call and its outcome travel between the submitter and
//! `hype-run`. This is the one module tools need of the protocol; the full
//! protocol is specified in `docs/protocol.md`, and this module is its
//! reference implementation.
//!
//! - `envelope.rs`: a **call envelope** ([`CallEnvelope`]) and an **outcome
//!   envelope** ([`OutcomeEnvelope`]) are a 4-byte magic, a 1-byte protocol
//!   version, and a MessagePack map (field names as keys). A **payload** is
//!   inline bytes or a reference to a staged, content-addressed blob
//!   ([`BlobRef`]) verified by SHA-256.
//! - `value.rs`: **values** (the generated `{Name}Args` struct, the result)
//!   are MessagePack with structs as arrays (`rmp_serde::to_vec`).
//! - `failure.rs`: why `hype-run` could not run a call ([`Failure`]), and the
//!   one table of `hype-run`'s exit codes ([`EXIT_CODES`]).
//! - `reference.rs`: as text (the `hype-run` argument, the termination
//!   message), an envelope is a [`Reference`]: `inline:<base64>` or a
//!   staging URI.
//! - `frame.rs`: the warm-worker stream — length-prefixed MessagePack
//!   frames ([`FrameDecoder`], [`encode_frame`]) carrying
//!   [`WorkerRequest`]s and [`WorkerEvent`]s.
//!
//! Decoding never panics: every malformed input is an [`Error`](crate::Error).

mod envelope;
mod failure;
mod frame;
mod reference;
mod timings;
mod value;

pub use self::envelope::{
    BlobRef, BuildInfo, CallEnvelope, Outcome, OutcomeEnvelope, Payload, decode_call,
    decode_outcome, encode_call, encode_outcome,
};
pub use self::failure::{
    EXIT_BAD_INVOCATION, EXIT_CODES, EXIT_DECODE_ARGUMENTS, EXIT_DIGEST_MISMATCH,
    EXIT_DUPLICATE_FUNCTION, EXIT_ENCODE_RESULT, EXIT_EXECUTABLE_CANNOT_START,
    EXIT_EXECUTABLE_CORRUPT, EXIT_EXECUTABLE_MISSING, EXIT_MALFORMED_CALL, EXIT_OUTCOME_UNWRITABLE,
    EXIT_PANICKED, EXIT_RETURNED, EXIT_SIGNATURE_MISMATCH, EXIT_STAGED_OBJECT_MISSING,
    EXIT_STAGING, EXIT_UNKNOWN_FUNCTION, Failure, describe_exit_code,
};
pub use self::frame::{
    CallId, ExitStatus, FRAME_HEADER_LEN, FrameDecoder, MAX_FRAME_LEN, OutputStream,
    WORKER_PROTOCOL_VERSION, WorkerEvent, WorkerRequest, decode_frame_body, encode_frame,
};
pub use self::reference::{Reference, inline_text_len};
pub use self::timings::Timings;
pub use self::value::{decode_value, encode_value};
pub use crate::bytes::Bytes;

/// The name the entrypoint answers to, as argv\[0\] basename or first
/// argument: `hype-run <call>`.
pub const HYPE_RUN: &str = "hype-run";

/// The first four bytes of an encoded call envelope.
pub const CALL_MAGIC: [u8; 4] = *b"HYPC";
/// The first four bytes of an encoded outcome envelope.
pub const OUTCOME_MAGIC: [u8; 4] = *b"HYPO";
/// The newest protocol version this build writes and reads. Version 2
/// adds the call's `executable`; a call without one is still written as
/// version 1, and outcomes are version 1.
pub const PROTOCOL_VERSION: u8 = 2;

/// By default, arguments up to this many encoded bytes travel inside the
/// call; larger ones are staged (`SubmitterBuilder::inline_arguments_limit`
/// changes it). 16 KiB: on Kubernetes the call is in the pod's spec, which
/// every watch event and list resends to every watcher.
pub const INLINE_ARGUMENTS_LIMIT: usize = 16 * 1024;

/// The most encoded bytes of arguments a call can carry inline: 64 KiB
/// keeps the `hype-run` argument (base64) under Linux's 128 KiB limit for
/// one argument.
pub const MAX_INLINE_ARGUMENTS: usize = 64 * 1024;

/// The most bytes a termination message may hold (Kubernetes' per-container
/// limit). An outcome whose inline text is longer is staged.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// How deep a value may nest arrays, maps and enum variants: rmp-serde's
/// own limit for arrays and maps, counted through enum variants too, so a
/// recursive type cannot overflow the decoding thread's stack.
pub const MAX_NESTING: usize = 1024;

/// The longest message kept in a [`Failure`], so a failure outcome always
/// fits in a termination message.
pub const FAILURE_MESSAGE_LIMIT: usize = 1024;

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::sha256::hex_of(bytes)
}

/// FNV-1a, 64 bit: the fixed hash of remote-function signatures
/// ([`crate::RemoteFn::SIGNATURE`]). The macro computes the same function
/// at compile time; it is here so tools and tests can compute a signature
/// from its normalised text.
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_reference_vectors() {
        // Reference values of FNV-1a 64 (from the FNV specification's test suite).
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn limits_are_as_documented() {
        assert_eq!(INLINE_ARGUMENTS_LIMIT, 16 * 1024);
        assert_eq!(MAX_INLINE_ARGUMENTS, 65_536);
        // Inline arguments as base64 stay under Linux's 128 KiB for one
        // argument, with room for the rest of the envelope.
        let text_len = inline_text_len(MAX_INLINE_ARGUMENTS);
        assert!(text_len < 128 * 1024, "{text_len}");
        assert!(text_len > 80 * 1024, "{text_len}");
    }
}
