//! Reading a hype trace file (the timeline a map writes): Chrome
//! trace-event JSON with `otherData.hype_timeline = 1`, one track (`tid` =
//! call index + 1) per call, named `"<execution_id> (<function>)"` by a
//! `thread_name` metadata event, and one `"ph": "X"` slice per phase
//! interval of each attempt (`ts`/`dur` in microseconds since the map
//! started; `args.attempt`, `args.outcome` `"ok"`/`"failed"`,
//! `args.error` on a failed attempt's slices).
//!
//! What is read is checked: anything else is an error naming the problem
//! (not JSON, not a hype timeline, a slice without a time, no calls).
//! Events this reader does not know (other `ph` values, other metadata)
//! are skipped, as trace viewers do.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The version of the format this reader knows (`otherData.hype_timeline`).
pub const VERSION: u64 = 1;

/// The phases of an attempt, in their order of time, as the trace file
/// names its slices.
pub const PHASES: [&str; 8] = [
    "queued",
    "scheduling",
    "image pull",
    "container start",
    "executable fetch",
    "function",
    "outcome read",
    "cleanup",
];

/// A trace file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// When the map started (`otherData.started_at`), as written.
    pub started_at: Option<String>,
    /// The calls in submission order: `calls[i]` is the track `tid = i + 1`.
    /// A call with no slice (nothing known of it yet) is still there.
    pub calls: Vec<Call>,
}

/// One call's track.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Its `thread_name`, `"<execution_id> (<function>)"`, or `call N`
    /// when the file names it not.
    pub name: String,
    /// Its slices, in order of `ts`.
    pub slices: Vec<Slice>,
}

/// One phase interval of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// The phase (one of [`PHASES`], or a name a newer writer added).
    pub name: String,
    /// Microseconds since the map started.
    pub start: u64,
    /// Microseconds.
    pub duration: u64,
    /// The attempt, from 1.
    pub attempt: u32,
    /// Whether its attempt failed.
    pub failed: bool,
    /// The attempt's `ErrorKind` name, when it failed and the file says.
    pub error: Option<String>,
}

impl Slice {
    /// Where it ends, in microseconds since the map started.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.duration)
    }
}

impl Call {
    /// Its highest attempt (0 with no slice).
    pub fn attempts(&self) -> u32 {
        self.slices.iter().map(|s| s.attempt).max().unwrap_or(0)
    }

    /// Whether the call failed: the slices of its highest attempt say so.
    pub fn failed(&self) -> bool {
        let last = self.attempts();
        self.slices.iter().any(|s| s.attempt == last && s.failed)
    }

    /// The error of its highest attempt, if it failed and the file names it.
    pub fn error(&self) -> Option<&str> {
        let last = self.attempts();
        self.slices
            .iter()
            .filter(|s| s.attempt == last && s.failed)
            .find_map(|s| s.error.as_deref())
    }

    /// Its first start and last end, if it has slices.
    pub fn span(&self) -> Option<(u64, u64)> {
        let start = self.slices.iter().map(|s| s.start).min()?;
        let end = self.slices.iter().map(Slice::end).max()?;
        Some((start, end))
    }

    /// How long it spent in `phase`, over all its attempts.
    pub fn time_in(&self, phase: &str) -> u64 {
        self.slices
            .iter()
            .filter(|s| s.name == phase)
            .map(|s| s.duration)
            .sum()
    }
}

impl Trace {
    /// The latest end of any slice, in microseconds (0 without slices).
    pub fn end(&self) -> u64 {
        self.calls
            .iter()
            .filter_map(|c| c.span().map(|(_, end)| end))
            .max()
            .unwrap_or(0)
    }

    /// The phases that occur, [`PHASES`] first in their order, then any
    /// others by name.
    pub fn phases(&self) -> Vec<String> {
        let mut found: Vec<String> = PHASES
            .iter()
            .filter(|p| {
                self.calls
                    .iter()
                    .any(|c| c.slices.iter().any(|s| s.name == **p))
            })
            .map(|p| (*p).to_owned())
            .collect();
        let mut others: Vec<String> = self
            .calls
            .iter()
            .flat_map(|c| c.slices.iter().map(|s| s.name.clone()))
            .filter(|name| !PHASES.contains(&name.as_str()))
            .collect();
        others.sort();
        others.dedup();
        found.extend(others);
        found
    }
}

/// Reads a trace file's text. The error names the problem: empty, not
/// JSON (with its line and column), not a hype timeline, or which event
/// is malformed and how.
pub fn parse(text: &str) -> Result<Trace, String> {
    if text.trim().is_empty() {
        return Err("the file is empty: expected a hype timeline (Chrome trace-event JSON written by a map)".to_owned());
    }
    let value: Value = serde_json::from_str(text).map_err(|err| format!("not JSON: {err}"))?;
    let Value::Object(top) = value else {
        return Err(format!(
            "not a hype timeline: the JSON is {}, not an object with traceEvents",
            kind(&value)
        ));
    };
    let other = top.get("otherData").and_then(Value::as_object);
    match other.and_then(|o| o.get("hype_timeline")) {
        None => {
            return Err("not a hype timeline: otherData.hype_timeline is missing (a trace-event file hype did not write?)".to_owned());
        }
        Some(version) if version.as_u64() != Some(VERSION) => {
            return Err(format!(
                "unsupported hype timeline version {version} (otherData.hype_timeline): this hype reads version {VERSION}"
            ));
        }
        Some(_) => {}
    }
    let events = match top.get("traceEvents") {
        Some(Value::Array(events)) => events,
        Some(other) => {
            return Err(format!(
                "not a hype timeline: traceEvents is {}, not an array",
                kind(other)
            ));
        }
        None => return Err("not a hype timeline: it has no traceEvents array".to_owned()),
    };
    let declared = match other.and_then(|o| o.get("calls")) {
        None => 0,
        Some(calls) => calls
            .as_u64()
            .ok_or_else(|| format!("otherData.calls is {calls}, not a whole number of calls"))?,
    };
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    let mut slices: BTreeMap<u64, Vec<Slice>> = BTreeMap::new();
    for (i, event) in events.iter().enumerate() {
        let Value::Object(event) = event else {
            return Err(format!(
                "traceEvents[{i}] is {}, not an object",
                kind(event)
            ));
        };
        match event.get("ph").and_then(Value::as_str) {
            Some("M") if event.get("name").and_then(Value::as_str) == Some("thread_name") => {
                let tid = tid(event, i)?;
                if let Some(name) = event
                    .get("args")
                    .and_then(|a| a.get("name"))
                    .and_then(Value::as_str)
                {
                    names.insert(tid, name.to_owned());
                }
            }
            Some("X") => {
                let tid = tid(event, i)?;
                slices.entry(tid).or_default().push(slice(event, i)?);
            }
            _ => {}
        }
    }
    let tracks = names
        .keys()
        .chain(slices.keys())
        .copied()
        .max()
        .unwrap_or(0);
    let count = tracks.max(declared);
    if count == 0 {
        return Err(
            "the timeline has no calls: no track and no slice in traceEvents, and otherData.calls is 0 or missing"
                .to_owned(),
        );
    }
    // A bound on the rows to allocate: the format's writer has a track per
    // call, so a tid far beyond the events is a malformed file.
    const MAX_CALLS: u64 = 10_000_000;
    if count > MAX_CALLS {
        return Err(format!(
            "the timeline claims {count} calls (the highest tid or otherData.calls): more than {MAX_CALLS}, so not a file hype wrote"
        ));
    }
    let calls = (1..=count)
        .map(|tid| {
            let mut slices = slices.remove(&tid).unwrap_or_default();
            slices.sort_by_key(|s| (s.start, s.attempt));
            Call {
                name: names
                    .remove(&tid)
                    .unwrap_or_else(|| format!("call {}", tid - 1)),
                slices,
            }
        })
        .collect();
    Ok(Trace {
        started_at: other
            .and_then(|o| o.get("started_at"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        calls,
    })
}

/// A JSON value's kind, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An event's `tid`, a track of a call: 1 or more.
fn tid(event: &Map<String, Value>, i: usize) -> Result<u64, String> {
    match event.get("tid").and_then(Value::as_u64) {
        Some(tid) if tid >= 1 => Ok(tid),
        _ => Err(format!(
            "traceEvents[{i}] has tid {}: a call's track is a whole number from 1 (call index + 1)",
            event
                .get("tid")
                .map_or("missing".to_owned(), Value::to_string)
        )),
    }
}

/// A `"ph": "X"` event as a slice.
fn slice(event: &Map<String, Value>, i: usize) -> Result<Slice, String> {
    let name = event
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("traceEvents[{i}] (a slice) has no name: it names its phase"))?;
    let micros = |field: &str| -> Result<u64, String> {
        let value = event.get(field);
        match value.and_then(Value::as_f64) {
            Some(us) if us >= 0.0 && us.is_finite() => Ok(us.round() as u64),
            _ => Err(format!(
                "traceEvents[{i}] (slice {name:?}) has {field} {}: expected microseconds, a number of 0 or more",
                value.map_or("missing".to_owned(), Value::to_string)
            )),
        }
    };
    let start = micros("ts")?;
    let duration = micros("dur")?;
    let args = event.get("args").and_then(Value::as_object);
    let arg = |key: &str| args.and_then(|a| a.get(key));
    let attempt = match arg("attempt") {
        None => 1,
        Some(value) => value
            .as_u64()
            .filter(|a| *a >= 1)
            .and_then(|a| u32::try_from(a).ok())
            .ok_or_else(|| {
                format!("traceEvents[{i}] (slice {name:?}) has attempt {value}: expected 1, 2, …")
            })?,
    };
    let failed = match arg("outcome").map(|o| (o, o.as_str())) {
        None | Some((_, Some("ok"))) => false,
        Some((_, Some("failed"))) => true,
        Some((other, _)) => {
            return Err(format!(
                "traceEvents[{i}] (slice {name:?}) has outcome {other}: expected \"ok\" or \"failed\""
            ));
        }
    };
    Ok(Slice {
        name: name.to_owned(),
        start,
        duration,
        attempt,
        failed,
        error: arg("error").and_then(Value::as_str).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"displayTimeUnit":"ms",
 "otherData":{"hype_timeline":1,"started_at":"2026-12-06T23:50:00.123Z","calls":3},
 "traceEvents":[
  {"ph":"M","name":"process_name","pid":1,"tid":0,"args":{"name":"hype map"}},
  {"ph":"M","name":"thread_name","pid":1,"tid":1,"args":{"name":"hype-add-x1a2b (add)"}},
  {"ph":"M","name":"thread_sort_index","pid":1,"tid":1,"args":{"sort_index":1}},
  {"ph":"X","cat":"hype","name":"function","pid":1,"tid":1,"ts":1200,"dur":500,
   "args":{"function":"add","execution_id":"hype-add-x1a2b","call":0,"attempt":1,"outcome":"ok"}},
  {"ph":"X","cat":"hype","name":"queued","pid":1,"tid":1,"ts":0,"dur":1200,
   "args":{"function":"add","execution_id":"hype-add-x1a2b","call":0,"attempt":1,"outcome":"ok"}},
  {"ph":"X","cat":"hype","name":"function","pid":1,"tid":2,"ts":10,"dur":90,
   "args":{"attempt":1,"outcome":"failed","error":"Lost"}},
  {"ph":"X","cat":"hype","name":"function","pid":1,"tid":2,"ts":200,"dur":90,
   "args":{"attempt":2,"outcome":"ok"}}
 ]}"#;

    #[test]
    fn the_agreed_example_is_read() {
        let trace = parse(EXAMPLE).unwrap();
        assert_eq!(trace.calls.len(), 3, "otherData.calls counts");
        assert_eq!(
            trace.started_at.as_deref(),
            Some("2026-12-06T23:50:00.123Z")
        );
        let first = &trace.calls[0];
        assert_eq!(first.name, "hype-add-x1a2b (add)");
        let names: Vec<&str> = first.slices.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["queued", "function"], "sorted by ts");
        assert!(!first.failed());
        assert_eq!(first.span(), Some((0, 1700)));
        // Retried after a Lost attempt, then ok: not failed.
        let second = &trace.calls[1];
        assert_eq!((second.attempts(), second.failed()), (2, false));
        assert_eq!(second.time_in("function"), 180);
        assert_eq!(trace.calls[2].name, "call 2");
        assert!(trace.calls[2].slices.is_empty());
        assert_eq!(trace.end(), 1700);
        assert_eq!(trace.phases(), ["queued", "function"]);
    }

    #[test]
    fn a_call_whose_last_attempt_failed_is_failed() {
        let text = EXAMPLE.replace(
            r#""attempt":2,"outcome":"ok""#,
            r#""attempt":2,"outcome":"failed","error":"Timeout""#,
        );
        let call = &parse(&text).unwrap().calls[1];
        assert!(call.failed());
        assert_eq!(call.error(), Some("Timeout"));
    }

    #[test]
    fn bad_input_is_named() {
        for (text, expected) in [
            ("", "the file is empty"),
            ("  \n", "the file is empty"),
            ("{\"traceEvents\": [", "not JSON"),
            ("<svg/>", "not JSON"),
            ("[1, 2]", "an array, not an object"),
            (
                r#"{"traceEvents": []}"#,
                "otherData.hype_timeline is missing",
            ),
            (
                r#"{"otherData":{"hype_timeline":2},"traceEvents":[]}"#,
                "unsupported hype timeline version 2",
            ),
            (
                r#"{"otherData":{"hype_timeline":1}}"#,
                "no traceEvents array",
            ),
            (
                r#"{"otherData":{"hype_timeline":1},"traceEvents":{}}"#,
                "traceEvents is an object, not an array",
            ),
            (
                r#"{"otherData":{"hype_timeline":1},"traceEvents":[]}"#,
                "the timeline has no calls",
            ),
            (
                r#"{"otherData":{"hype_timeline":1},"traceEvents":[{"ph":"X","name":"function","tid":1,"dur":5}]}"#,
                "traceEvents[0] (slice \"function\") has ts missing",
            ),
            (
                r#"{"otherData":{"hype_timeline":1},"traceEvents":[{"ph":"X","name":"function","tid":1,"ts":0,"dur":-5}]}"#,
                "has dur -5",
            ),
            (
                r#"{"otherData":{"hype_timeline":1},"traceEvents":[{"ph":"X","name":"function","tid":0,"ts":0,"dur":5}]}"#,
                "traceEvents[0] has tid 0",
            ),
            (
                r#"{"otherData":{"hype_timeline":1},"traceEvents":[{"ph":"X","name":"f","tid":1,"ts":0,"dur":5,"args":{"outcome":"maybe"}}]}"#,
                "expected \"ok\" or \"failed\"",
            ),
            (
                r#"{"otherData":{"hype_timeline":1},"traceEvents":[{"ph":"X","name":"f","tid":99999999999,"ts":0,"dur":5}]}"#,
                "more than 10000000",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
