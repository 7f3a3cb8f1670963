//! Property tests of the wire (every envelope, reference and value
//! survives its round trip; no input makes a decoder panic; a truncated
//! envelope is always an error) and of `RunEnvironment::validate` (every
//! bad setting is reported, once, and good ones pass).

use std::collections::BTreeMap;

use hype_runtime::wire::{
    self, BlobRef, BuildInfo, CallEnvelope, Failure, Outcome, OutcomeEnvelope, Payload, Reference,
};
use hype_runtime::{Bytes, Error, RunEnvironment, Secret, VolumeRequest};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9_:./ é-]{0,40}").unwrap()
}

fn blob() -> impl Strategy<Value = BlobRef> {
    (text(), any::<u64>(), "[0-9a-f]{64}").prop_map(|(uri, len, sha)| BlobRef::new(uri, len, sha))
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| Payload::Inline(Bytes::from(b))),
        blob().prop_map(Payload::Staged),
    ]
}

fn failure() -> impl Strategy<Value = Failure> {
    prop_oneof![
        text().prop_map(|message| Failure::BadInvocation { message }),
        text().prop_map(|message| Failure::MalformedCall { message }),
        proptest::collection::vec(text(), 0..4)
            .prop_map(|known| Failure::UnknownFunction { known }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(expected, found)| Failure::SignatureMismatch { expected, found }),
        text().prop_map(|uri| Failure::StagedObjectMissing { uri }),
        (text(), text(), text(), any::<u64>(), any::<u64>()).prop_map(
            |(uri, expected, actual, expected_len, actual_len)| Failure::DigestMismatch {
                uri,
                expected,
                actual,
                expected_len,
                actual_len
            }
        ),
        (text(), any::<bool>())
            .prop_map(|(message, transient)| Failure::Staging { message, transient }),
        text().prop_map(|message| Failure::DecodeArguments { message }),
        text().prop_map(|message| Failure::EncodeResult { message }),
        proptest::collection::vec(text(), 0..4).prop_map(|ids| Failure::DuplicateFunction { ids }),
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        payload().prop_map(Outcome::Returned),
        (text(), proptest::option::of(text()))
            .prop_map(|(message, location)| Outcome::Panicked { message, location }),
        failure().prop_map(Outcome::Failed),
    ]
}

fn call() -> impl Strategy<Value = CallEnvelope> {
    (
        text(),
        any::<u64>(),
        text(),
        proptest::option::of("[0-9a-f]{64}"),
        proptest::option::of(text()),
        payload(),
    )
        .prop_map(|(function, signature, version, digest, staging, payload)| {
            let call = CallEnvelope::new(function, signature, payload)
                .with_build(BuildInfo::new(version, digest));
            match staging {
                Some(location) => call.with_staging(location),
                None => call,
            }
        })
}

/// A value with nesting, recursion, maps, options and enums, as arguments
/// of real functions have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf(i64),
    Text(String),
    Node(Vec<Tree>),
    Named(BTreeMap<String, Tree>),
    Maybe(Option<Box<Tree>>),
    Pair { left: Box<Tree>, right: Box<Tree> },
    Blob(Bytes),
    Unit,
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Tree::Leaf),
        text().prop_map(Tree::Text),
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(|b| Tree::Blob(Bytes::from(b))),
        Just(Tree::Unit),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Tree::Node),
            proptest::collection::btree_map(text(), inner.clone(), 0..4).prop_map(Tree::Named),
            proptest::option::of(inner.clone().prop_map(Box::new)).prop_map(Tree::Maybe),
            (inner.clone(), inner).prop_map(|(l, r)| Tree::Pair {
                left: Box::new(l),
                right: Box::new(r)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn call_envelopes_round_trip(call in call()) {
        let bytes = wire::encode_call(&call).unwrap();
        prop_assert_eq!(&bytes[..5], b"HYPC\x01");
        prop_assert_eq!(wire::decode_call(&bytes).unwrap(), call);
    }

    #[test]
    fn outcome_envelopes_round_trip(function in text(), execution in text(), outcome in outcome()) {
        let envelope = OutcomeEnvelope::new(function, execution, outcome);
        let bytes = wire::encode_outcome(&envelope).unwrap();
        prop_assert_eq!(wire::decode_outcome(&bytes).unwrap(), envelope);
    }

    #[test]
    fn every_truncated_envelope_is_an_error(call in call(), cut in any::<prop::sample::Index>()) {
        let bytes = wire::encode_call(&call).unwrap();
        let len = cut.index(bytes.len());
        let is_malformed = matches!(wire::decode_call(&bytes[..len]), Err(Error::MalformedEnvelope { .. }));
        prop_assert!(is_malformed, "{} of {} bytes decoded", len, bytes.len());
    }

    #[test]
    fn inline_references_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let reference = Reference::Inline(bytes.clone());
        let text = reference.to_string();
        prop_assert_eq!(text.len(), wire::inline_text_len(bytes.len()));
        prop_assert_eq!(Reference::parse(&text).unwrap(), reference);
    }

    #[test]
    fn object_references_round_trip(scheme in "[a-z][a-z0-9+.-]{0,8}", rest in "[a-zA-Z0-9/._-]{1,40}") {
        let uri = format!("{scheme}://{rest}");
        prop_assert_eq!(Reference::parse(&uri).unwrap(), Reference::Object(uri.clone()));
        prop_assert_eq!(Reference::Object(uri.clone()).to_string(), uri);
    }

    #[test]
    fn nested_values_round_trip(value in tree()) {
        let bytes = wire::encode_value("props::tree", "arguments", &value).unwrap();
        prop_assert_eq!(wire::decode_value::<Tree>("props::tree", "arguments", &bytes).unwrap(), value);
    }

    #[test]
    fn no_input_makes_a_decoder_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = wire::decode_call(&bytes);
        let _ = wire::decode_outcome(&bytes);
        let _ = wire::decode_value::<Tree>("props::tree", "arguments", &bytes);
        let _ = Reference::parse(&String::from_utf8_lossy(&bytes));
        let mut framed = b"HYPC\x01".to_vec();
        framed.extend_from_slice(&bytes);
        let _ = wire::decode_call(&framed);
    }

    #[test]
    fn validation_reports_each_bad_env_var_once(
        good in proptest::collection::btree_set("[A-Z_][A-Z0-9_]{0,12}", 0..5),
        bad in proptest::collection::btree_set("[A-Z]{0,4}=[A-Z]{0,4}", 0..5),
    ) {
        let mut env = RunEnvironment::local();
        for key in good.iter().chain(&bad) {
            env = env.with_env(key.clone(), "value");
        }
        match env.validate() {
            Ok(()) => prop_assert!(bad.is_empty()),
            Err(Error::InvalidEnvironment { problems, .. }) => {
                prop_assert_eq!(problems.len(), bad.len(), "{:?}", problems);
                for key in &bad {
                    prop_assert!(problems.iter().any(|p| p.contains(&format!("{key:?}"))), "{:?}", problems);
                }
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn validation_checks_mount_paths(
        paths in proptest::collection::vec(prop_oneof!["/[a-z]{1,3}", "[a-z]{1,3}"], 1..6),
    ) {
        let mut env = RunEnvironment::local();
        for (i, path) in paths.iter().enumerate() {
            env = env.with_mount(VolumeRequest::persistent(format!("vol-{i}"), "standard", "1Gi").mount_read_only(path));
        }
        let relative = paths.iter().filter(|p| !p.starts_with('/')).count();
        let mut seen = std::collections::BTreeSet::new();
        let repeated = paths.iter().filter(|p| !seen.insert(p.as_str())).count();
        match env.validate() {
            Ok(()) => prop_assert_eq!(relative + repeated, 0),
            Err(Error::InvalidEnvironment { problems, .. }) => {
                prop_assert_eq!(problems.len(), relative + repeated, "{:?}", problems);
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn validation_compares_requests_with_limits_exactly(request in 1u64..1_000_000, limit in 1u64..1_000_000, binary in any::<bool>()) {
        // The same amounts written two ways: whole Mi, or decimal bytes.
        let (r, l) = if binary {
            (format!("{request}Mi"), format!("{limit}Mi"))
        } else {
            (format!("{}", u128::from(request) * 1_048_576), format!("{limit}Mi"))
        };
        let env = RunEnvironment::local().with_request("memory", r).with_limit("memory", l);
        let result = env.validate();
        if request > limit {
            let says_so = matches!(&result, Err(Error::InvalidEnvironment { problems, .. }) if problems.len() == 1 && problems[0].contains("more than its limit"));
            prop_assert!(says_so, "{:?}", result);
        } else {
            prop_assert!(result.is_ok(), "{:?}", result);
        }
    }

    #[test]
    fn validation_reports_malformed_quantities(number in 0u32..10_000, suffix in "[a-zA-Z]{0,3}") {
        let amount = format!("{number}{suffix}");
        let known = ["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
        // Letters only, so no exponent (`e3`) is generated: a suffix is
        // valid exactly when it is one of Kubernetes' own.
        let env = RunEnvironment::local().with_limit("cpu", amount.clone());
        let valid = known.contains(&suffix.as_str());
        prop_assert_eq!(env.validate().is_ok(), valid, "{}", amount);
    }

    #[test]
    fn secrets_with_kubernetes_names_pass(name in "[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?") {
        let env = RunEnvironment::local().with_secret(Secret::new(name.clone(), "/etc/secret"));
        prop_assert!(env.validate().is_ok(), "{}", name);
        let shouted = RunEnvironment::local().with_secret(Secret::new(name.to_uppercase() + "_X", "/etc/secret"));
        prop_assert!(shouted.validate().is_err());
    }
}
