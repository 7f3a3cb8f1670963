//! The seed corpora, written to `seeds/<target>/<name>` by the test
//! `tests/seeds.rs` (`HYPE_BLESS=1` rewrites them). They are the examples of
//! `docs/protocol.md` (the golden call envelope, outcomes of each kind,
//! inline and staged references, values), the `HYPE_CLUSTER` and quantity
//! forms of the runtime's docs, and the base pods of its tests. Names
//! starting with `bad-` are inputs the parser must reject; `run.sh` checks
//! both kinds before fuzzing.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use hype_runtime::Bytes;
use hype_runtime::wire::{
    self, BuildInfo, CallEnvelope, ExitStatus, Failure, Outcome, OutputStream, Payload,
    WorkerEvent, WorkerRequest,
};

use crate::{AddArgs, Float, Inner, Record, Tree, TreeArgs, example_blob, example_outcome};

/// One seed: its target, its file name, its bytes.
pub struct Seed {
    /// The fuzz target it seeds.
    pub target: &'static str,
    /// Its file name in `seeds/<target>/`.
    pub name: String,
    /// Its contents.
    pub bytes: Vec<u8>,
}

/// The golden call envelope bytes exactly as `docs/protocol.md` §2 lists
/// them.
pub fn golden_call_bytes() -> Vec<u8> {
    fn fixstr(out: &mut Vec<u8>, s: &str) {
        out.push(0xa0 | s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = b"HYPC\x01\x85".to_vec();
    fixstr(&mut out, "function");
    fixstr(&mut out, "demo::add");
    fixstr(&mut out, "signature");
    out.extend_from_slice(&[0xcf, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
    fixstr(&mut out, "build");
    out.push(0x82);
    fixstr(&mut out, "hype_version");
    fixstr(&mut out, "0.1.0");
    fixstr(&mut out, "binary_sha256");
    out.push(0xc0);
    fixstr(&mut out, "staging");
    fixstr(&mut out, "file:///tmp/s");
    fixstr(&mut out, "payload");
    out.push(0x81);
    fixstr(&mut out, "Inline");
    out.extend_from_slice(&[0xc4, 0x03, 0x92, 0x01, 0x02]);
    out
}

fn value<T: serde::Serialize>(v: &T) -> Vec<u8> {
    wire::encode_value("seed", "value", v).expect("seed value encodes")
}

fn inline(bytes: &[u8]) -> String {
    format!(
        "inline:{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A tree with every variant of [`Tree`] once, nested a few levels.
pub fn full_tree() -> Tree {
    let record = Record {
        id: 7,
        name: "word_count".into(),
        tags: vec!["a".into(), "b".into()],
        inner: Inner {
            ratio: Float(0.5),
            flags: [true, false, true],
            nested: vec![vec![Some(1), None], vec![]],
        },
        attributes: HashMap::from([("leaf".to_owned(), Some(Tree::Leaf))]),
        unit: (),
        tuple: (255, -2, Some(true)),
    };
    Tree::List(vec![
        Tree::Leaf,
        Tree::Int(-42),
        Tree::Uint(u64::MAX),
        Tree::Wide(i128::MIN),
        Tree::Float(Float(f64::NAN)),
        Tree::Char('é'),
        Tree::Text("hello world".into()),
        Tree::Blob(Bytes::from(vec![1, 2, 3])),
        Tree::Buf(vec![4, 5]),
        Tree::Octets(vec![6, 7]),
        Tree::Boxed(Box::new(Tree::Pair(
            Box::new(Tree::Maybe(None)),
            Box::new(Tree::Maybe(Some(Box::new(Tree::Int(1))))),
        ))),
        Tree::Map(BTreeMap::from([
            ("x".to_owned(), Tree::Int(1)),
            ("y".to_owned(), Tree::Outcome(Err("not a number".into()))),
        ])),
        Tree::Hashed(HashMap::from([(1, Tree::Leaf)])),
        Tree::Record(Box::new(record)),
        Tree::Node {
            label: "root".into(),
            children: vec![Tree::Outcome(Ok(Box::new(Tree::Leaf)))],
            parent: None,
        },
    ])
}

/// The encoding of `depth` trees, each the only child of the next, made
/// by variant `variant` (`List` wraps it in a one-element array, the others
/// hold it directly), around a `Leaf`. Written byte by byte: encoding a
/// deep value would recurse as deep.
pub fn nested_tree_bytes(depth: usize, variant: &str) -> Vec<u8> {
    let mut level = vec![0x81, 0xa0 | variant.len() as u8];
    level.extend_from_slice(variant.as_bytes());
    if variant == "List" {
        level.push(0x91);
    }
    let mut out = level.repeat(depth);
    out.extend_from_slice(b"\xa4Leaf");
    out
}

/// The encoding of `depth` [`crate::Branch`]es, each the only child of the next
/// (`[value, [child], {}]`), around one without children.
pub fn nested_branch_bytes(depth: usize) -> Vec<u8> {
    let mut out = [0x93, 0x01, 0x91].repeat(depth);
    out.extend_from_slice(&[0x93, 0x00, 0x90, 0x80]);
    out.extend(std::iter::repeat_n(0x80, depth));
    out
}

/// Every seed.
pub fn all() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.push(Seed {
            target,
            name: name.to_owned(),
            bytes,
        })
    };

    // Call envelopes (docs/protocol.md §2).
    let golden = golden_call_bytes();
    let call = |c: &CallEnvelope| wire::encode_call(c).expect("seed call encodes");
    add("call_envelope", "golden-demo-add", golden.clone());
    let staged_call = CallEnvelope::new(
        "demo::word_count",
        0xfeed_face_cafe_beef,
        Payload::Staged(example_blob(&[0x92, 0x01, 0x02])),
    )
    .with_staging("gs://bucket/prefix")
    .with_build(BuildInfo::new("0.1.0", Some(wire::sha256_hex(b"binary"))));
    add("call_envelope", "staged-payload", call(&staged_call));
    add(
        "call_envelope",
        "version-2-executable",
        call(
            &staged_call
                .clone()
                .with_executable(example_blob(b"\x7fELF")),
        ),
    );
    add(
        "call_envelope",
        "no-staging",
        call(
            &CallEnvelope::new("f", 1, Payload::Inline(Bytes::new()))
                .with_build(BuildInfo::new("0.1.0", None)),
        ),
    );
    // The same call with its structs as arrays, which readers accept too.
    let mut array_form = b"HYPC\x01\x95\xa9demo::add\xcf\x01\x23\x45\x67\x89\xab\xcd\xef\x92\xa50.1.0\xc0\xc0\x81\xa6Inline\xc4\x03\x92\x01\x02".to_vec();
    add("call_envelope", "structs-as-arrays", array_form.clone());
    array_form.truncate(array_form.len() - 1);
    add("call_envelope", "bad-truncated-array-form", array_form);
    add(
        "call_envelope",
        "bad-truncated",
        golden[..golden.len() - 1].to_vec(),
    );
    let mut trailing = golden.clone();
    trailing.push(0x00);
    add("call_envelope", "bad-trailing-byte", trailing);
    let mut v3 = golden.clone();
    v3[4] = 3;
    add("call_envelope", "bad-version-3", v3);
    add("call_envelope", "bad-short", b"HYPC".to_vec());

    // Outcome envelopes (docs/protocol.md §2).
    let outcome = |o: Outcome| wire::encode_outcome(&example_outcome(o)).expect("seed encodes");
    let returned = |bytes: Vec<u8>| Outcome::Returned(Payload::Inline(Bytes::from(bytes)));
    add(
        "outcome_envelope",
        "returned-3",
        outcome(returned(value(&3i64))),
    );
    add(
        "outcome_envelope",
        "returned-result-err",
        outcome(returned(value(&Err::<i64, String>("not a number".into())))),
    );
    add(
        "outcome_envelope",
        "returned-staged",
        outcome(Outcome::Returned(Payload::Staged(example_blob(b"\x03")))),
    );
    add(
        "outcome_envelope",
        "panicked",
        outcome(Outcome::Panicked {
            message: "cannot divide 7 by zero".into(),
            location: Some("examples/hello.rs:42:9".into()),
        }),
    );
    add(
        "outcome_envelope",
        "panicked-no-location",
        outcome(Outcome::Panicked {
            message: "boom".into(),
            location: None,
        }),
    );
    let failures = [
        (
            "bad-invocation",
            Failure::BadInvocation {
                message: "usage: hype-run <call>".into(),
            },
        ),
        (
            "malformed-call",
            Failure::MalformedCall {
                message: "invalid or truncated".into(),
            },
        ),
        (
            "unknown-function",
            Failure::UnknownFunction {
                known: vec!["demo::add".into(), "demo::word_count".into()],
            },
        ),
        (
            "signature-mismatch",
            Failure::SignatureMismatch {
                expected: 0x0123_4567_89ab_cdef,
                found: 2,
            },
        ),
        (
            "staged-object-missing",
            Failure::StagedObjectMissing {
                uri: example_blob(b"x").uri,
            },
        ),
        (
            "digest-mismatch",
            Failure::DigestMismatch {
                uri: example_blob(b"x").uri,
                expected: wire::sha256_hex(b"x"),
                actual: wire::sha256_hex(b"y"),
                expected_len: 1,
                actual_len: 1,
            },
        ),
        (
            "staging",
            Failure::Staging {
                message: "write failed".into(),
                transient: false,
            },
        ),
        (
            "staging-transient",
            Failure::Staging {
                message: "HTTP 503".into(),
                transient: true,
            },
        ),
        (
            "decode-arguments",
            Failure::DecodeArguments {
                message: "invalid type".into(),
            },
        ),
        (
            "encode-result",
            Failure::EncodeResult {
                message: "unsupported".into(),
            },
        ),
        (
            "duplicate-function",
            Failure::DuplicateFunction {
                ids: vec!["demo::add".into()],
            },
        ),
        (
            "executable-missing",
            Failure::ExecutableMissing {
                uri: example_blob(b"\x7fELF").uri,
            },
        ),
        (
            "executable-corrupt",
            Failure::ExecutableCorrupt {
                uri: example_blob(b"\x7fELF").uri,
                message: "length 3, not 4".into(),
            },
        ),
        (
            "executable-cannot-start",
            Failure::ExecutableCannotStart {
                image: "debian:11".into(),
                message: "version `GLIBC_2.39' not found".into(),
            },
        ),
    ];
    for (name, failure) in failures {
        add(
            "outcome_envelope",
            &format!("failed-{name}"),
            outcome(Outcome::Failed(failure)),
        );
    }
    add("outcome_envelope", "bad-call-envelope", golden.clone());
    add("outcome_envelope", "bad-empty", vec![]);

    // References (docs/protocol.md §3, §4).
    let hex = wire::sha256_hex(&[0x92, 0x01, 0x02]);
    let outcome_bytes = outcome(returned(value(&3i64)));
    for (name, text) in [
        ("inline-call", inline(&golden)),
        ("inline-outcome", inline(&outcome_bytes)),
        ("inline-newline", "inline:AQID\n".to_owned()),
        ("inline-empty", "inline:".to_owned()),
        ("file-blob", format!("file:///tmp/s/blobs/sha256/{hex}")),
        (
            "file-outcome",
            "file:///tmp/s/outcomes/hype-add-1".to_owned(),
        ),
        ("gs-blob", format!("gs://bucket/prefix/blobs/sha256/{hex}")),
        (
            "gs-outcome",
            "gs://bucket/prefix/outcomes/hype-add-1\r\n".to_owned(),
        ),
        ("bad-base64", "inline:!!".to_owned()),
        ("bad-padding", "inline:AQI".to_owned()),
        ("bad-no-scheme", "hello".to_owned()),
        ("bad-empty-scheme", "://x".to_owned()),
    ] {
        add("reference", name, text.into_bytes());
    }

    // Values (docs/protocol.md §1).
    add("value", "add-args-1-2", vec![0x92, 0x01, 0x02]);
    assert_eq!(value(&AddArgs { a: 1, b: 2 }), [0x92, 0x01, 0x02]);
    add("value", "unit", value(&()));
    add("value", "result-ok", value(&Ok::<i64, String>(3)));
    add(
        "value",
        "result-err",
        value(&Err::<i64, String>("no".into())),
    );
    add("value", "bytes", value(&Bytes::from(vec![1, 2, 3])));
    add("value", "full-tree", value(&full_tree()));
    add(
        "value",
        "tree-args",
        value(&TreeArgs {
            tree: full_tree(),
            data: Bytes::from(vec![0; 16]),
            note: Some("n".into()),
        }),
    );
    add("value", "branch-3", nested_branch_bytes(3));
    add("value", "list-500-deep", nested_tree_bytes(500, "List"));
    add("value", "boxed-500-deep", nested_tree_bytes(500, "Boxed"));
    add("value", "maybe-500-deep", nested_tree_bytes(500, "Maybe"));
    // Past rmp-serde's nesting limit of 1024 arrays and maps: an error.
    add("value", "bad-branch-2000-deep", nested_branch_bytes(2000));
    // Found by this target: enum variants nested past the limit overflowed
    // the stack before hype counted them too (wire::MAX_NESTING).
    add(
        "value",
        "bad-maybe-10000-deep",
        nested_tree_bytes(10_000, "Maybe"),
    );
    let mut trailing = vec![0x92, 0x01, 0x02];
    trailing.push(0xc0);
    add("value", "bad-trailing-byte", trailing);

    // HYPE_CLUSTER (hype_runtime::config).
    for (name, text) in [
        ("local", "local"),
        ("empty", ""),
        ("docker", "docker"),
        ("kube", "kube"),
        ("kube-context", "kube:prod"),
        ("gke", "gke:p/l/c"),
        ("gke-zone", "gke:my-project/europe-west1-b/batch"),
        ("whitespace", " kube:prod \n"),
        ("bad-unknown", "k8s"),
        ("bad-kube-empty-context", "kube:"),
        ("bad-gke-two-parts", "gke:p/l"),
        ("bad-gke-empty-part", "gke:p//c"),
        ("bad-gke-four-parts", "gke:a/b/c/d"),
    ] {
        add("cluster_spec", name, text.as_bytes().to_vec());
    }

    // Staging locations and URIs (docs/protocol.md §4). The verdict is
    // LocalStaging::from_uri's, given for `file://` inputs only.
    for (name, text) in [
        ("file-dir", "file:///tmp/s".to_owned()),
        ("file-dir-slash", "file:///tmp/s/".to_owned()),
        // Found by this target: the root store's blob URIs lost `file://`.
        ("file-root", "file:///".to_owned()),
        ("file-blob", format!("file:///tmp/s/blobs/sha256/{hex}")),
        (
            "file-outcome",
            "file:///tmp/s/outcomes/hype-add-1".to_owned(),
        ),
        ("gs-location", "gs://bucket/prefix".to_owned()),
        ("gs-blob", format!("gs://bucket/prefix/blobs/sha256/{hex}")),
        ("bad-file-relative", "file://relative/dir".to_owned()),
        ("bad-file-empty", "file://".to_owned()),
    ] {
        add("staging_uri", name, text.into_bytes());
    }

    // Quantities (hype_runtime::__tools::fuzzing::quantity); a second line is
    // compared with the first.
    for (name, text) in [
        ("cpu-750m", "750m"),
        ("memory-512Mi", "512Mi"),
        ("exponent-1e3", "1e3"),
        ("exa", "1E"),
        ("fraction", "1.5Gi"),
        ("point-five", ".5"),
        ("nano", "0.5n"),
        ("negative", "-1"),
        ("signed-exponent", "129e+6"),
        ("whitespace", " 2Gi\t"),
        ("max-i64-cpus", "9223372036.854775807"),
        ("max-magnitude", "170141183460469231731687303715884105727"),
        ("tiny", "1e-9223372036854775807"),
        ("tinier", "0.5e-9223372036854775807"),
        ("request-limit", "750m\n1"),
        ("binary-decimal", "1Gi\n1G"),
        ("equal", "1000m\n1"),
        ("bad-suffix", "1Gb"),
        ("bad-word", "lots"),
        ("bad-points", "1.2.3Gi"),
        ("bad-space", "12 Mi"),
        ("bad-exponent", "1e"),
        ("bad-empty", ""),
        ("bad-too-large", "1e400"),
        (
            "bad-too-precise",
            "0.1234567890123456789012345678901234567891",
        ),
    ] {
        add("quantity", name, text.as_bytes().to_vec());
    }

    // Base pods (RunEnvironment::from_yaml; the runtime's pod tests).
    for (name, text) in [
        ("minimal", "spec:\n  containers:\n    - name: hype-run\n"),
        (
            "with-env",
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: hype-run\n      args: [\"replaced\"]\n      env:\n        - name: FROM_BASE\n          value: base\n",
        ),
        (
            "merged",
            r#"apiVersion: v1
kind: Pod
metadata:
  labels:
    team: data
spec:
  nodeSelector:
    pool: highmem
  tolerations:
    - key: dedicated
      operator: Equal
      value: batch
      effect: NoSchedule
  containers:
    - name: hype-run
      args: ["ignored"]
      env:
        - name: RUST_LOG
          value: debug
        - name: KEEP
          value: "1"
      ports:
        - containerPort: 8080
      resources:
        requests:
          cpu: "2"
          memory: 1Gi
        limits:
          memory: 2Gi
      securityContext:
        runAsUser: 1000
    - name: sidecar
      image: busybox
  volumes:
    - name: scratch
      emptyDir:
        sizeLimit: 1Gi
"#,
        ),
        (
            "bad-other-container",
            "spec:\n  containers:\n    - name: main\n      image: x\n",
        ),
        (
            "bad-image",
            "spec:\n  containers:\n    - name: hype-run\n      image: x\n",
        ),
        ("bad-no-spec", "apiVersion: v1\nkind: Pod\n"),
        ("bad-not-a-pod", "- 1\n- 2\n"),
    ] {
        add("base_pod", name, text.as_bytes().to_vec());
    }

    // Warm-worker frames (docs/protocol.md §8): a head byte (even:
    // requests, odd: events; the piece size), then the stream.
    let frames = |head: u8, messages: &[&dyn erased::Frame]| {
        let mut out = vec![head];
        for m in messages {
            out.extend(m.frame());
        }
        out
    };
    let blob = example_blob(b"HYPC");
    let call_bytes = golden_call_bytes();
    add(
        "worker_frames",
        "requests",
        frames(
            0,
            &[
                &WorkerRequest::Attach,
                &WorkerRequest::call(
                    1,
                    "hype-add-x1",
                    wire::Reference::Inline(call_bytes.clone()).to_string(),
                ),
                &WorkerRequest::call(2, "hype-add-x2", blob.uri.clone()),
                &WorkerRequest::Cancel { id: 1 },
                &WorkerRequest::Ack { id: 2 },
                &WorkerRequest::Ping,
                &WorkerRequest::Shutdown,
            ],
        ),
    );
    add(
        "worker_frames",
        "events-in-3-byte-pieces",
        frames(
            5,
            &[
                &WorkerEvent::Ready {
                    protocol: wire::WORKER_PROTOCOL_VERSION,
                    executable_sha256: wire::sha256_hex(b"binary"),
                },
                &WorkerEvent::Started {
                    id: 1,
                    execution_id: "hype-add-x1".into(),
                },
                &WorkerEvent::Output {
                    id: 1,
                    stream: OutputStream::Stderr,
                    line: Bytes::from(b"a line".to_vec()),
                },
                &WorkerEvent::Outcome {
                    id: 1,
                    message: wire::Reference::Inline(
                        wire::encode_outcome(&example_outcome(Outcome::Returned(Payload::Inline(
                            Bytes::from(vec![0x03]),
                        ))))
                        .expect("seed outcome encodes"),
                    )
                    .to_string(),
                },
                &WorkerEvent::Outcome {
                    id: 2,
                    message: blob.uri.clone(),
                },
                &WorkerEvent::Ended {
                    id: 1,
                    status: ExitStatus::Code(0),
                    out_of_memory: false,
                },
                &WorkerEvent::Ended {
                    id: 2,
                    status: ExitStatus::Signal(9),
                    out_of_memory: true,
                },
                &WorkerEvent::Error {
                    id: None,
                    message: "no executable".into(),
                },
            ],
        ),
    );
    let shutdown = frames(0, &[&WorkerRequest::Shutdown]);
    add(
        "worker_frames",
        "bad-truncated",
        shutdown[..shutdown.len() - 1].to_vec(),
    );
    add(
        "worker_frames",
        "bad-too-long",
        b"\x00\x00\x10\x00\x01\xc0".to_vec(),
    );
    add(
        "worker_frames",
        "bad-empty-frame",
        b"\x00\x00\x00\x00\x00".to_vec(),
    );
    add("worker_frames", "bad-request-as-event", {
        let mut bytes = shutdown.clone();
        bytes[0] = 1;
        bytes
    });
    add(
        "worker_frames",
        "bad-garbage",
        b"\x02\x00\x00\x00\x02\xc1\xc1".to_vec(),
    );

    seeds
}

/// Messages of either direction as frames, for the seeds.
mod erased {
    use hype_runtime::wire::{self, WorkerEvent, WorkerRequest};

    pub trait Frame {
        fn frame(&self) -> Vec<u8>;
    }

    impl Frame for WorkerRequest {
        fn frame(&self) -> Vec<u8> {
            wire::encode_frame(self).expect("seed request encodes")
        }
    }

    impl Frame for WorkerEvent {
        fn frame(&self) -> Vec<u8> {
            wire::encode_frame(self).expect("seed event encodes")
        }
    }
}
