//! `hype-run`'s timings of an execution, carried in the outcome envelope
//! as an optional field: an older reader ignores it, a newer reader
//! accepts its absence (`docs/protocol.md`, §2).

use serde::{Deserialize, Serialize};

/// How long the steps of one execution took, as `hype-run` measured them
/// on its own machine with its own clock: durations, never instants, so
/// that the caller never subtracts clocks of two machines. Every field is
/// optional; a writer sets what it knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Timings {
    /// Microseconds from the launcher's start to its start of the shipped
    /// executable: fetching and verifying it, or finding it cached. Absent
    /// when no launcher ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_us: Option<u64>,
    /// Microseconds from the start of the `hype-run` that ran the function
    /// to the function's start (decoding the call, reading its arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_us: Option<u64>,
    /// Microseconds the function ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_us: Option<u64>,
}

impl Timings {
    /// Timings with these fields.
    pub fn new(launch_us: Option<u64>, start_us: Option<u64>, function_us: Option<u64>) -> Timings {
        Timings {
            launch_us,
            start_us,
            function_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Bytes, Outcome, OutcomeEnvelope, Payload, decode_outcome, encode_outcome};

    fn returned() -> OutcomeEnvelope {
        OutcomeEnvelope::new("f", "e", Outcome::Returned(Payload::Inline(Bytes::new())))
    }

    #[test]
    fn an_outcome_without_timings_is_encoded_as_before() {
        // The bytes of an outcome without timings do not change: no key.
        let bytes = encode_outcome(&returned()).unwrap();
        assert!(!bytes.windows(7).any(|w| w == b"timings"));
        assert_eq!(decode_outcome(&bytes).unwrap().timings, None);
    }

    #[test]
    fn timings_round_trip_and_an_older_reader_ignores_them() {
        let timings = Timings::new(Some(1_500), None, Some(42));
        let envelope = returned().with_timings(timings);
        let bytes = encode_outcome(&envelope).unwrap();
        let decoded = decode_outcome(&bytes).unwrap();
        assert_eq!(decoded.timings, Some(timings));
        assert_eq!(decoded, envelope);

        // An older reader: the outcome envelope as it was, without the field.
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct OlderOutcome {
            function: String,
            execution_id: String,
            outcome: Outcome,
        }
        let older: OlderOutcome = rmp_serde::from_slice(&bytes[5..]).unwrap();
        assert_eq!(older.execution_id, "e");
        assert!(matches!(older.outcome, Outcome::Returned(_)));
    }
}
