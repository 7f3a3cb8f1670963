//! Phases of calls (issue 20): a fan-out's timeline file and summary, and
//! `Submitter::last_phases`, on the local runner and the Kubernetes
//! runner against the test double (pods as processes).
//!
//! The fan-out runs `process::killed_once` calls: those whose marker
//! exists return at once, the others are killed once (lost) and run
//! again, so the timeline must show their two attempts on one track.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::backend::{Backend, Setup};
use futures::StreamExt as _;
use hype_tests::process;
use serde_json::Value;

/// The slice names of the timeline format, in their order of time.
const PHASES: [&str; 8] = [
    "queued",
    "scheduling",
    "image pull",
    "container start",
    "executable fetch",
    "function",
    "outcome read",
    "cleanup",
];

/// A bound on the fan-out, so a hang fails the test instead of CI.
const BOUND: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_timeline_has_a_track_per_call_and_retries_on_it() {
    timeline_of_a_fan_out_with_retries(
        Backend::Local,
        &["queued", "container start", "function", "outcome read"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_timeline_has_a_track_per_call_and_retries_on_it() {
    timeline_of_a_fan_out_with_retries(
        Backend::KubeProcesses,
        &[
            "queued",
            "scheduling",
            "function",
            "outcome read",
            "cleanup",
        ],
    )
    .await;
}

/// One slice of the timeline.
#[derive(Debug)]
struct Slice {
    name: String,
    ts: u64,
    dur: u64,
    attempt: u64,
    outcome: String,
    error: Option<String>,
    execution_id: String,
}

async fn timeline_of_a_fan_out_with_retries(backend: Backend, expected: &[&str]) {
    let Some(s) = Setup::new(backend, "timeline").await else {
        return;
    };
    // On this machine, so the executions (processes) see it.
    let dir = tempfile::tempdir().unwrap();
    let markers = dir.path();
    const N: usize = 4;
    // Calls 0 and 1 find their marker and return; 2 and 3 are killed once.
    let calls: Vec<_> = (0..N)
        .map(|i| {
            let marker = markers.join(format!("marker-{i}"));
            if i < 2 {
                std::fs::write(&marker, "").unwrap();
            }
            process::killed_once(marker.display().to_string(), libc::SIGKILL)
        })
        .collect();
    let env = s
        .env
        .clone()
        .with_retries(2)
        .with_retry_backoff(Duration::from_millis(20));
    let path = markers.join("timeline.json");
    let mut map = s
        .submitter
        .map(calls, &env)
        .concurrency(2)
        .progress(false)
        .timeline(&path);
    assert!(map.summary().is_none(), "no summary before the end");
    let results: Vec<_> = tokio::time::timeout(BOUND, (&mut map).collect::<Vec<_>>())
        .await
        .expect("the fan-out ends within its bound");
    for (index, result) in &results {
        assert_eq!(result.as_ref().ok(), Some(&7), "call {index}: {result:?}");
    }

    let summary = map.summary().expect("a summary once it ended");
    assert_eq!((summary.done(), summary.failed()), (4, 0));
    assert_eq!(summary.retried(), 2);
    assert_eq!(summary.slowest().len(), 3);
    let block = summary.to_string();
    assert!(
        block.contains("4 calls: 4 done, 0 failed, 2 retried"),
        "{block}"
    );

    let text = std::fs::read_to_string(&path).expect("the timeline is written");
    let json: Value = serde_json::from_str(&text).expect("the timeline is JSON");
    assert_eq!(json["displayTimeUnit"], "ms");
    assert_eq!(json["otherData"]["hype_timeline"], 1);
    assert_eq!(json["otherData"]["calls"], N);
    assert!(
        json["otherData"]["started_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 24),
        "{}",
        json["otherData"]
    );
    let events = json["traceEvents"].as_array().expect("traceEvents");
    let mut names = BTreeMap::new();
    let mut tracks: BTreeMap<u64, Vec<Slice>> = BTreeMap::new();
    for event in events {
        let tid = event["tid"].as_u64().expect("tid");
        assert_eq!(event["pid"], 1);
        match (event["ph"].as_str(), event["name"].as_str()) {
            (Some("M"), Some("thread_name")) => {
                names.insert(tid, event["args"]["name"].as_str().unwrap().to_owned());
            }
            (Some("M"), Some("thread_sort_index")) => {
                assert_eq!(event["args"]["sort_index"].as_u64(), Some(tid));
            }
            (Some("M"), Some("process_name")) => assert_eq!(tid, 0),
            (Some("X"), Some(name)) => {
                let args = &event["args"];
                assert_eq!(args["call"].as_u64(), Some(tid - 1));
                assert_eq!(args["function"], "hype_tests::process::killed_once");
                tracks.entry(tid).or_default().push(Slice {
                    name: name.to_owned(),
                    ts: event["ts"].as_u64().expect("integer ts"),
                    dur: event["dur"].as_u64().expect("integer dur"),
                    attempt: args["attempt"].as_u64().expect("attempt"),
                    outcome: args["outcome"].as_str().unwrap().to_owned(),
                    error: args["error"].as_str().map(str::to_owned),
                    execution_id: args["execution_id"].as_str().unwrap().to_owned(),
                });
            }
            other => panic!("unexpected event {other:?}: {event}"),
        }
    }
    assert_eq!(names.len(), N, "one named track per call: {names:?}");
    assert_eq!(
        tracks.keys().copied().collect::<Vec<_>>(),
        (1..=N as u64).collect::<Vec<_>>()
    );
    for (tid, slices) in &tracks {
        // In time order, never overlapping, each attempt's slices in the
        // format's order; a later attempt after the earlier one.
        let mut end = 0;
        let mut last = (0, 0);
        for slice in slices {
            let rank = PHASES
                .iter()
                .position(|p| *p == slice.name)
                .unwrap_or_else(|| panic!("unknown slice {}", slice.name));
            assert!(slice.ts >= end, "track {tid} overlaps: {slices:#?}");
            assert!(
                (slice.attempt, rank) > last,
                "track {tid} out of order: {slices:#?}"
            );
            end = slice.ts + slice.dur;
            last = (slice.attempt, rank);
        }
        let first = &slices[0];
        assert_eq!(
            names[tid],
            format!("{} (hype_tests::process::killed_once)", first.execution_id)
        );
        let attempts = slices.iter().map(|s| s.attempt).max().unwrap();
        let retried = *tid > 2;
        assert_eq!(attempts, if retried { 2 } else { 1 }, "track {tid}");
        for slice in slices {
            let failed = retried && slice.attempt == 1;
            assert_eq!(slice.outcome, if failed { "failed" } else { "ok" });
            assert_eq!(slice.error.as_deref(), failed.then_some("Lost"));
        }
        // The attempt that returned shows what its backend knows.
        let ok: Vec<&str> = slices
            .iter()
            .filter(|s| s.attempt == attempts)
            .map(|s| s.name.as_str())
            .collect();
        for name in expected {
            assert!(ok.contains(name), "track {tid} lacks {name}: {ok:?}");
        }
        // The submitter keeps the call's phases, found by either attempt.
        let phases = s
            .submitter
            .last_phases(&first.execution_id)
            .expect("the call's phases");
        assert_eq!(phases.attempts().len() as u64, attempts);
        assert!(phases.attempts()[0].duration(hype::Phase::Queued).is_some());
    }
    s.finish().await;
}

/// Each call is a `hype.call` span with its function, execution ID and
/// attempt, holding one debug event per phase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_a_span_with_one_event_per_phase() {
    spans::install();
    let Some(s) = Setup::new(Backend::Local, "span").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    std::fs::write(&marker, "").unwrap();
    let value = s
        .submitter
        .run(
            process::killed_once(marker.display().to_string(), libc::SIGKILL),
            &s.env,
        )
        .await
        .expect("the call returns");
    assert_eq!(value, 7);
    // Other tests of this binary run calls too: this one is the span
    // whose execution this submitter ran.
    let calls = spans::calls();
    let (fields, phases) = calls
        .iter()
        .find(|(fields, _)| {
            fields
                .get("execution_id")
                .is_some_and(|id| s.submitter.last_phases(id).is_some())
        })
        .unwrap_or_else(|| panic!("no hype.call span of the call: {calls:?}"));
    assert_eq!(fields["function"], "hype_tests::process::killed_once");
    let execution_id = &fields["execution_id"];
    assert!(execution_id.starts_with("hype-killed-once-"), "{fields:?}");
    assert_eq!(fields["attempt"], "1");
    for phase in ["queued", "container start", "function", "outcome read"] {
        assert!(
            phases.iter().any(|p| p == phase),
            "no {phase} event: {phases:?}"
        );
    }
    let recorded = s.submitter.last_phases(execution_id).expect("its phases");
    let names: Vec<&str> = recorded.attempts()[0]
        .intervals()
        .iter()
        .map(|i| i.phase.name())
        .collect();
    assert_eq!(&names, phases, "the events are the recorded phases");
    s.finish().await;
}

/// The `hype.call` spans of this test binary and the phase events in them.
mod spans {
    use std::collections::BTreeMap;
    use std::sync::{Mutex, Once};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
    use tracing_subscriber::registry::LookupSpan;

    type Fields = BTreeMap<String, String>;

    /// Per `hype.call` span, in order of creation: its fields and its
    /// phase events. (Span IDs are reused once a span closes: each span
    /// carries its index here in its extensions instead.)
    static CALLS: Mutex<Vec<(Fields, Vec<String>)>> = Mutex::new(Vec::new());

    /// A span's index in `CALLS`.
    struct Index(usize);

    struct Collect<'a>(&'a mut Fields);

    impl Visit for Collect<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }

        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }

    struct Capture;

    impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            if attrs.metadata().name() != "hype.call" {
                return;
            }
            let mut fields = Fields::new();
            attrs.record(&mut Collect(&mut fields));
            let mut calls = CALLS.lock().unwrap_or_else(|e| e.into_inner());
            calls.push((fields, Vec::new()));
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(Index(calls.len() - 1));
            }
        }

        fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
            let Some(index) = ctx
                .span(id)
                .and_then(|s| s.extensions().get::<Index>().map(|i| i.0))
            else {
                return;
            };
            let mut calls = CALLS.lock().unwrap_or_else(|e| e.into_inner());
            values.record(&mut Collect(&mut calls[index].0));
        }

        fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
            if *event.metadata().level() != tracing::Level::DEBUG {
                return;
            }
            let mut fields = Fields::new();
            event.record(&mut Collect(&mut fields));
            let (Some(phase), Some(span)) = (fields.remove("phase"), ctx.event_span(event)) else {
                return;
            };
            let Some(index) = span.extensions().get::<Index>().map(|i| i.0) else {
                return;
            };
            let mut calls = CALLS.lock().unwrap_or_else(|e| e.into_inner());
            calls[index].1.push(phase);
        }
    }

    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(Capture);
            tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        });
    }

    /// Every `hype.call` span seen: its fields and its phase events.
    pub fn calls() -> Vec<(Fields, Vec<String>)> {
        CALLS.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
