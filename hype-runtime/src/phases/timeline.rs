//! A fan-out's timeline as a Chrome trace-event JSON file (Perfetto,
//! `chrome://tracing`, and `hype timeline`): one track per call (`tid` =
//! call index + 1), one `"ph":"X"` slice per phase of each attempt,
//! microseconds since the fan-out began by the caller's clock. Written by
//! hand: a few fixed shapes, with the strings escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::{Phases, micros};
use crate::error::Error;

/// The phases of a fan-out's calls, kept to be written as its timeline.
#[derive(Debug)]
pub(crate) struct Timeline {
    path: PathBuf,
    began: Instant,
    began_at: SystemTime,
    calls: BTreeMap<usize, Arc<Phases>>,
}

impl Timeline {
    /// A timeline to write to `path`, of a fan-out beginning at `began`.
    pub(crate) fn new(path: PathBuf, began: Instant) -> Timeline {
        Timeline {
            path,
            began,
            began_at: SystemTime::now(),
            calls: BTreeMap::new(),
        }
    }

    /// Call `index` ended with these phases.
    pub(crate) fn add(&mut self, index: usize, phases: Arc<Phases>) {
        self.calls.insert(index, phases);
    }

    /// Where it goes.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the file.
    pub(crate) fn write(&self) -> Result<(), Error> {
        std::fs::write(&self.path, self.render()).map_err(|err| Error::Config {
            message: format!(
                "cannot write the fan-out's timeline to {}: {err}",
                self.path.display()
            ),
        })
    }

    /// The trace-event JSON.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(256 + self.calls.len() * 512);
        let _ = write!(
            out,
            "{{\"displayTimeUnit\":\"ms\",\n \"otherData\":{{\"hype_timeline\":1,\"started_at\":{},\"calls\":{}}},\n \"traceEvents\":[\n  {{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,\"tid\":0,\"args\":{{\"name\":\"hype map\"}}}}",
            json_string(&rfc3339(self.began_at)),
            self.calls.len()
        );
        for (&index, phases) in &self.calls {
            let tid = index + 1;
            let Some(first) = phases.attempts().first() else {
                continue;
            };
            let name = format!("{} ({})", first.execution_id(), phases.function());
            let _ = write!(
                out,
                ",\n  {{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":{tid},\"args\":{{\"name\":{}}}}}",
                json_string(&name)
            );
            let _ = write!(
                out,
                ",\n  {{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":1,\"tid\":{tid},\"args\":{{\"sort_index\":{tid}}}}}"
            );
            for attempt in phases.attempts() {
                let offset = attempt.began().saturating_duration_since(self.began);
                let (outcome, error) = match attempt.error() {
                    None => ("ok", String::new()),
                    Some(kind) => (
                        "failed",
                        format!(",\"error\":{}", json_string(&format!("{kind:?}"))),
                    ),
                };
                for interval in attempt.intervals() {
                    let _ = write!(
                        out,
                        ",\n  {{\"ph\":\"X\",\"cat\":\"hype\",\"name\":{},\"pid\":1,\"tid\":{tid},\"ts\":{},\"dur\":{},\n   \"args\":{{\"function\":{},\"execution_id\":{},\"call\":{index},\"attempt\":{},\"outcome\":\"{outcome}\"{error}}}}}",
                        json_string(interval.phase.name()),
                        micros(offset + interval.start),
                        micros(interval.duration),
                        json_string(phases.function()),
                        json_string(attempt.execution_id()),
                        attempt.attempt(),
                    );
                }
            }
        }
        out.push_str("\n ]}\n");
        out
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A wall-clock time as RFC 3339 in UTC with milliseconds:
/// `2026-12-06T23:50:00.123Z`.
fn rfc3339(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::phases::Phase;
    use crate::phases::tests::attempt_of;
    use std::time::Duration;

    #[test]
    fn wall_times_are_rfc3339_in_utc() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_601_000_123);
        assert_eq!(rfc3339(at), "2026-12-06T23:50:00.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn a_retried_call_has_its_attempts_on_one_track() {
        let began = Instant::now();
        let mut timeline = Timeline::new(PathBuf::from("unused.json"), began);
        let mut phases = Phases::new("demo::add");
        phases.push(attempt_of(
            "hype-add-a",
            1,
            began,
            &[(Phase::Queued, 2), (Phase::ContainerStart, 3)],
            Some(ErrorKind::Lost),
        ));
        phases.push(attempt_of(
            "hype-add-b",
            2,
            began + Duration::from_millis(10),
            &[(Phase::Function, 4)],
            None,
        ));
        timeline.add(0, Arc::new(phases));
        let text = timeline.render();
        assert!(
            text.contains("\"tid\":1,\"args\":{\"name\":\"hype-add-a (demo::add)\"}"),
            "{text}"
        );
        assert!(
            text.contains(
                "\"name\":\"container start\",\"pid\":1,\"tid\":1,\"ts\":2000,\"dur\":3000"
            ),
            "{text}"
        );
        assert!(
            text.contains("\"attempt\":1,\"outcome\":\"failed\",\"error\":\"Lost\"}"),
            "{text}"
        );
        assert!(
            text.contains("\"name\":\"function\",\"pid\":1,\"tid\":1,\"ts\":10000,\"dur\":4000"),
            "{text}"
        );
        assert!(text.contains("\"attempt\":2,\"outcome\":\"ok\"}"), "{text}");
    }
}
