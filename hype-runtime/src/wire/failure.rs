//! Why `hype-run` could not run a call ([`Failure`]), the error each
//! failure becomes on the caller's side, and the one table of `hype-run`'s
//! exit codes.

use serde::{Deserialize, Serialize};

use super::FAILURE_MESSAGE_LIMIT;
use crate::error::Error;

/// Why `hype-run` could not run a call. Each kind has its own exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
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
        /// Whether the failure passes (the store answered 5xx, 408 or 429,
        /// or could not be reached): the caller sees
        /// [`Error::StagingUnavailable`], which is retried. Absent (false)
        /// in the outcomes of older `hype-run`s, which older callers ignore.
        #[serde(default, skip_serializing_if = "is_false")]
        transient: bool,
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
    /// The executable the call names is not in the staging store.
    ExecutableMissing {
        /// Where it should be.
        uri: String,
    },
    /// The staged executable does not match its digest or length.
    ExecutableCorrupt {
        /// Where it was.
        uri: String,
        /// What did not match.
        message: String,
    },
    /// The shipped executable cannot start in this image.
    ExecutableCannotStart {
        /// The image (`HYPE_IMAGE`), or `unknown`.
        image: String,
        /// The loader's or the kernel's message.
        message: String,
    },
}

impl Failure {
    /// The exit code `hype-run` ends with for this failure. Codes are
    /// distinct so the cause is visible even where only the exit code is
    /// (`kubectl get pods`, `docker ps -a`).
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::BadInvocation { .. } => EXIT_BAD_INVOCATION,
            Failure::MalformedCall { .. } => EXIT_MALFORMED_CALL,
            Failure::UnknownFunction { .. } => EXIT_UNKNOWN_FUNCTION,
            Failure::SignatureMismatch { .. } => EXIT_SIGNATURE_MISMATCH,
            Failure::StagedObjectMissing { .. } => EXIT_STAGED_OBJECT_MISSING,
            Failure::DigestMismatch { .. } => EXIT_DIGEST_MISMATCH,
            Failure::Staging { .. } => EXIT_STAGING,
            Failure::DuplicateFunction { .. } => EXIT_DUPLICATE_FUNCTION,
            Failure::DecodeArguments { .. } => EXIT_DECODE_ARGUMENTS,
            Failure::EncodeResult { .. } => EXIT_ENCODE_RESULT,
            Failure::ExecutableMissing { .. } => EXIT_EXECUTABLE_MISSING,
            Failure::ExecutableCorrupt { .. } => EXIT_EXECUTABLE_CORRUPT,
            Failure::ExecutableCannotStart { .. } => EXIT_EXECUTABLE_CANNOT_START,
        }
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
            Failure::Staging {
                message,
                transient: false,
            } => Error::Staging {
                operation: "access",
                uri: format!("(from {execution_id})"),
                message,
                source: None,
            },
            Failure::Staging {
                message,
                transient: true,
            } => Error::StagingUnavailable {
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
            Failure::ExecutableMissing { uri } => Error::ExecutableMissing { execution_id, uri },
            Failure::ExecutableCorrupt { uri, message } => Error::ExecutableCorrupt {
                execution_id,
                uri,
                message,
            },
            Failure::ExecutableCannotStart { image, message } => Error::ExecutableCannotStart {
                execution_id,
                image,
                message,
            },
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
            Error::ExecutableMissing { uri, .. } => Failure::ExecutableMissing {
                uri: cut(uri.clone()),
            },
            Error::ExecutableCorrupt { uri, message, .. } => Failure::ExecutableCorrupt {
                uri: cut(uri.clone()),
                message: cut(message.clone()),
            },
            Error::ExecutableCannotStart { image, message, .. } => Failure::ExecutableCannotStart {
                image: cut(image.clone()),
                message: cut(message.clone()),
            },
            other => Failure::Staging {
                message: cut(other.full_text()),
                transient: matches!(other, Error::StagingUnavailable { .. }),
            },
        }
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// `hype-run` ended because the function returned (the outcome holds the value).
pub const EXIT_RETURNED: i32 = 0;
/// The command line was wrong.
pub const EXIT_BAD_INVOCATION: i32 = 64;
/// The call text or envelope was not valid.
pub const EXIT_MALFORMED_CALL: i32 = 65;
/// The binary has no function with the call's ID.
pub const EXIT_UNKNOWN_FUNCTION: i32 = 66;
/// The binary's function has another signature.
pub const EXIT_SIGNATURE_MISMATCH: i32 = 67;
/// A staged object was missing.
pub const EXIT_STAGED_OBJECT_MISSING: i32 = 68;
/// A staged object did not match its digest or length.
pub const EXIT_DIGEST_MISMATCH: i32 = 69;
/// The staging store failed.
pub const EXIT_STAGING: i32 = 70;
/// The binary registers one ID twice.
pub const EXIT_DUPLICATE_FUNCTION: i32 = 71;
/// `hype-run` could not write the outcome at all.
pub const EXIT_OUTCOME_UNWRITABLE: i32 = 72;
/// The arguments did not decode into the function's argument types.
pub const EXIT_DECODE_ARGUMENTS: i32 = 73;
/// The result could not be encoded.
pub const EXIT_ENCODE_RESULT: i32 = 74;
/// The executable the call names is not in the staging store.
pub const EXIT_EXECUTABLE_MISSING: i32 = 75;
/// The staged executable did not match its digest or length.
pub const EXIT_EXECUTABLE_CORRUPT: i32 = 76;
/// The shipped executable cannot start in this image.
pub const EXIT_EXECUTABLE_CANNOT_START: i32 = 77;
/// The function panicked (the outcome says how); Rust's own exit code for a
/// panicking `main`.
pub const EXIT_PANICKED: i32 = 101;

/// Every exit code of `hype-run` and what it means: the one table, read by
/// [`describe_exit_code`] and written out in `docs/protocol.md`.
pub const EXIT_CODES: &[(i32, &str)] = &[
    (EXIT_RETURNED, "the function returned"),
    (EXIT_BAD_INVOCATION, "bad hype-run invocation"),
    (EXIT_MALFORMED_CALL, "malformed call"),
    (EXIT_UNKNOWN_FUNCTION, "unknown function"),
    (EXIT_SIGNATURE_MISMATCH, "signature mismatch"),
    (EXIT_STAGED_OBJECT_MISSING, "staged object missing"),
    (EXIT_DIGEST_MISMATCH, "staged object corrupt"),
    (EXIT_STAGING, "staging failed"),
    (EXIT_DUPLICATE_FUNCTION, "duplicate function IDs"),
    (EXIT_OUTCOME_UNWRITABLE, "the outcome could not be written"),
    (EXIT_DECODE_ARGUMENTS, "arguments did not decode"),
    (EXIT_ENCODE_RESULT, "result did not encode"),
    (EXIT_EXECUTABLE_MISSING, "the shipped executable is missing"),
    (EXIT_EXECUTABLE_CORRUPT, "the shipped executable is corrupt"),
    (
        EXIT_EXECUTABLE_CANNOT_START,
        "the shipped executable cannot start in this image",
    ),
    (EXIT_PANICKED, "the function panicked"),
];

/// What an exit code of `hype-run` means, for errors that carry only it.
pub fn describe_exit_code(code: i32) -> Option<&'static str> {
    EXIT_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, meaning)| *meaning)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// The README's range of `hype-run`'s failure exit codes is the one the
    /// constants span.
    #[test]
    fn the_readme_states_the_range_of_exit_codes() {
        let readme = include_str!("../../../README.md");
        let codes = [
            EXIT_BAD_INVOCATION,
            EXIT_MALFORMED_CALL,
            EXIT_UNKNOWN_FUNCTION,
            EXIT_SIGNATURE_MISMATCH,
            EXIT_STAGED_OBJECT_MISSING,
            EXIT_DIGEST_MISMATCH,
            EXIT_STAGING,
            EXIT_DUPLICATE_FUNCTION,
            EXIT_OUTCOME_UNWRITABLE,
            EXIT_DECODE_ARGUMENTS,
            EXIT_ENCODE_RESULT,
            EXIT_EXECUTABLE_MISSING,
            EXIT_EXECUTABLE_CORRUPT,
            EXIT_EXECUTABLE_CANNOT_START,
        ];
        let (low, high) = (codes.iter().min().unwrap(), codes.iter().max().unwrap());
        assert_eq!(
            high - low + 1,
            codes.len() as i32,
            "the codes are contiguous"
        );
        let range = format!("{low}–{high} for each kind of call it cannot run");
        assert!(readme.contains(&range), "README lacks {range:?}");
    }

    fn named(value: &impl Serialize) -> Vec<u8> {
        let mut out = Vec::new();
        value
            .serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())
            .unwrap();
        out
    }

    #[test]
    fn transient_staging_failures_are_lost_and_compatible_both_ways() {
        let transient = Failure::from_error(&Error::StagingUnavailable {
            operation: "read",
            uri: "gs://b/o".into(),
            message: "HTTP 503".into(),
            source: None,
        });
        assert!(matches!(
            transient,
            Failure::Staging {
                transient: true,
                ..
            }
        ));
        let err = transient.clone().into_error("f", "e");
        assert!(matches!(err, Error::StagingUnavailable { .. }), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Lost);
        let permanent = Failure::from_error(&Error::Staging {
            operation: "read",
            uri: "gs://b/o".into(),
            message: "denied".into(),
            source: None,
        });
        assert_eq!(
            permanent.clone().into_error("f", "e").kind(),
            ErrorKind::Other
        );

        // An older hype-run's failure has no `transient`: it reads as false.
        #[derive(Serialize, Deserialize)]
        enum Old {
            Staging { message: String },
        }
        let old = named(&Old::Staging {
            message: "m".into(),
        });
        let read: Failure = rmp_serde::from_slice(&old).unwrap();
        assert_eq!(
            read,
            Failure::Staging {
                message: "m".into(),
                transient: false
            }
        );
        // A permanent failure is encoded exactly as before.
        assert_eq!(named(&read), old);
        // An older caller reads a transient failure, ignoring the field.
        let Old::Staging { message } = rmp_serde::from_slice(&named(&transient)).unwrap();
        assert!(message.contains("HTTP 503"), "{message}");
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
                transient: false,
            },
            Failure::DecodeArguments {
                message: String::new(),
            },
            Failure::EncodeResult {
                message: String::new(),
            },
            Failure::DuplicateFunction { ids: vec![] },
            Failure::ExecutableMissing { uri: String::new() },
            Failure::ExecutableCorrupt {
                uri: String::new(),
                message: String::new(),
            },
            Failure::ExecutableCannotStart {
                image: String::new(),
                message: String::new(),
            },
        ]
        .iter()
        .map(Failure::exit_code)
        .collect();
        assert_eq!(codes.len(), 13);
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

    #[test]
    fn malformed_envelopes_name_what_was_malformed_unless_it_was_the_call() {
        assert_eq!(
            Failure::from_error(&Error::malformed("call", "bad magic")),
            Failure::MalformedCall {
                message: "bad magic".into()
            }
        );
        assert_eq!(
            Failure::from_error(&Error::malformed("inline reference", "bad base64")),
            Failure::MalformedCall {
                message: "inline reference: bad base64".into()
            }
        );
    }

    #[test]
    fn truncate_keeps_short_text_and_cuts_long_text_on_a_char_boundary() {
        assert_eq!(truncate(String::new(), 10), "");
        assert_eq!(truncate("short".into(), 10), "short");
        assert_eq!(truncate("exactly10!".into(), 10), "exactly10!");
        assert_eq!(truncate("eleven char".into(), 10), "eleven ...");
        // 'é' is bytes 6..8: a cut at byte 7 backs up to 6.
        assert_eq!(truncate("abcdef\u{e9}xyz".into(), 10), "abcdef...");
        let at_limit = "y".repeat(FAILURE_MESSAGE_LIMIT);
        assert_eq!(
            Failure::from_error(&Error::BadInvocation {
                message: at_limit.clone()
            }),
            Failure::BadInvocation { message: at_limit }
        );
        let Failure::BadInvocation { message } = Failure::from_error(&Error::BadInvocation {
            message: "z".repeat(FAILURE_MESSAGE_LIMIT + 1),
        }) else {
            panic!()
        };
        assert_eq!(message.len(), FAILURE_MESSAGE_LIMIT);
        assert!(message.ends_with("z..."), "{message}");
    }
}
