//! `hype timeline`, run as a program, on trace files made here in the
//! agreed format (issue 20): `fixtures/timeline-retries.json` (6 calls:
//! retries, failures, every phase and one this version does not know, an
//! execution ID with XML's special characters) and generated fan-outs of
//! 200, 201 and 1,000 calls. The SVG is parsed as XML and its rows,
//! legend and failure marks counted; it is rendered to PNG with
//! `rsvg-convert` (Debian's librsvg2-bin), which must succeed and give a
//! PNG of the SVG's size. Without `rsvg-convert` that check skips with a
//! loud message, unless `CI` is set (as `.ci/run` runs), which makes it a
//! failure. Bad input is refused with exit code 2 and a message naming the
//! problem.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

const HYPE: &str = env!("CARGO_BIN_EXE_hype");

/// The fixture with retries and failures.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/timeline-retries.json")
}

/// What a run of `hype` gave: exit code, stdout, stderr.
fn hype(args: &[&Path]) -> (i32, String, String) {
    let mut command = Command::new(HYPE);
    command.arg("timeline");
    for arg in args {
        command.arg(arg);
    }
    let output = command.output().expect("run hype");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Draws `input` into `dir/out.svg`; returns the SVG's text.
fn draw(input: &Path, dir: &Path) -> String {
    let out = dir.join("out.svg");
    let (code, stdout, stderr) = hype(&[input, Path::new("-o"), &out]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("out.svg"), "{stdout}");
    std::fs::read_to_string(&out).expect("the SVG was written")
}

/// The elements whose class list has every one of `classes`.
fn with_classes<'a>(
    doc: &'a roxmltree::Document<'a>,
    classes: &[&str],
) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| {
            n.attribute("class").is_some_and(|c| {
                let have: Vec<&str> = c.split_whitespace().collect();
                classes.iter().all(|want| have.contains(want))
            })
        })
        .collect()
}

/// The legend's phases, by `data-phase`.
fn legend_phases(doc: &roxmltree::Document<'_>) -> BTreeSet<String> {
    with_classes(doc, &["legend-entry"])
        .iter()
        .filter_map(|n| n.attribute("data-phase").map(str::to_owned))
        .collect()
}

/// The PNG's width and height, from its IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() > 24, "a PNG of {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

/// Renders `svg` to PNG with `rsvg-convert` and checks the PNG has the
/// SVG's size; skips loudly without `rsvg-convert`, unless `CI` is set.
fn renders_to_png(svg: &str, dir: &Path, test: &str) {
    let doc = roxmltree::Document::parse(svg).unwrap();
    let root = doc.root_element();
    let size = |attr: &str| -> u32 { root.attribute(attr).unwrap().parse().unwrap() };
    let (width, height) = (size("width"), size("height"));
    let input = dir.join("render.svg");
    std::fs::write(&input, svg).unwrap();
    let png = dir.join("render.png");
    let run = Command::new("rsvg-convert")
        .arg("-o")
        .arg(&png)
        .arg(&input)
        .output();
    match run {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: rsvg-convert is not installed and CI is set: install Debian's librsvg2-bin (.ci/run does)"
            );
            eprintln!(
                "\n*** SKIPPED the PNG check of {test}: rsvg-convert is not installed (apt-get install librsvg2-bin); with CI set this fails ***\n"
            );
            return;
        }
        Err(err) => panic!("{test}: cannot run rsvg-convert: {err}"),
        Ok(output) => assert!(
            output.status.success(),
            "{test}: rsvg-convert failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(png_size(&bytes), (width, height), "{test}");
}

#[test]
fn retries_and_failures_are_drawn_one_row_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let svg = draw(&fixture(), dir.path());
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    let rows = with_classes(&doc, &["row", "call"]);
    assert_eq!(rows.len(), 6, "one row per call");
    assert!(with_classes(&doc, &["aggregate"]).is_empty());
    let calls: Vec<&str> = rows
        .iter()
        .map(|r| r.attribute("data-call").unwrap())
        .collect();
    assert_eq!(calls, ["0", "1", "2", "3", "4", "5"]);
    // Calls 2 (one attempt, panicked) and 3 (both attempts failed) failed;
    // call 1 failed once and came back: not failed.
    let failed: Vec<&str> = with_classes(&doc, &["row", "failed"])
        .iter()
        .map(|r| r.attribute("data-call").unwrap())
        .collect();
    assert_eq!(failed, ["2", "3"]);
    assert_eq!(with_classes(&doc, &["failed-mark"]).len(), 2);
    // Every slice of the file is drawn, in its call's row.
    let text = std::fs::read_to_string(fixture()).unwrap();
    let slices = with_classes(&doc, &["slice"]);
    assert_eq!(slices.len(), text.matches(r#""ph": "X""#).count());
    let retried = rows[1];
    let attempts: BTreeSet<&str> = retried
        .descendants()
        .filter_map(|n| n.attribute("data-attempt"))
        .collect();
    assert_eq!(attempts, BTreeSet::from(["1", "2"]));
    // The legend names the phases present, an unknown one included, and
    // the failure mark.
    let expected: BTreeSet<String> = [
        "queued",
        "scheduling",
        "image pull",
        "container start",
        "executable fetch",
        "function",
        "outcome read",
        "cleanup",
        "warm-up",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(legend_phases(&doc), expected);
    let marks: Vec<&str> = with_classes(&doc, &["legend-entry"])
        .iter()
        .filter_map(|n| n.attribute("data-mark"))
        .collect();
    assert_eq!(marks, ["failed", "retried"]);
    // The execution ID with <&> came through as text.
    assert!(
        doc.descendants()
            .any(|n| n.text().is_some_and(|t| t.contains("hype-add-f6 <&>"))),
        "{svg}"
    );
    // Time ticks with their unit.
    let ticks: Vec<&str> = with_classes(&doc, &["tick"])
        .iter()
        .filter_map(|n| n.text())
        .collect();
    assert!(
        ticks.len() >= 3 && ticks.iter().all(|t| t.ends_with(" s")),
        "{ticks:?}"
    );
    renders_to_png(
        &svg,
        dir.path(),
        "retries_and_failures_are_drawn_one_row_per_call",
    );
}

/// A fan-out of `calls` calls in the agreed format: every seventh call
/// retried after a `Lost` attempt, every 97th failed for good; durations
/// vary with the call (no randomness: the same file every run).
fn fan_out(calls: u64) -> serde_json::Value {
    let mut events =
        vec![json!({"ph":"M","name":"process_name","pid":1,"tid":0,"args":{"name":"hype map"}})];
    for call in 0..calls {
        let tid = call + 1;
        let id = format!("hype-work-{call:05x}");
        events.push(json!({"ph":"M","name":"thread_name","pid":1,"tid":tid,"args":{"name":format!("{id} (work)")}}));
        let attempts = if call % 7 == 3 { 2 } else { 1 };
        // 32 run at once: a call waits for the ones before it.
        let mut at = (call / 32) * 900_000;
        for attempt in 1..=attempts {
            let failed = attempt < attempts || call % 97 == 5;
            let mut args = json!({"function":"work","execution_id":id,"call":call,"attempt":attempt,
                                  "outcome": if failed { "failed" } else { "ok" }});
            if failed {
                args["error"] = json!("Lost");
            }
            for (phase, dur) in [
                ("queued", if attempt == 1 { at } else { 1_000 }),
                ("scheduling", 50_000 + (call * 7919) % 200_000),
                ("container start", 120_000 + (call * 104_729) % 300_000),
                ("function", 400_000 + (call * 15_485_863) % 500_000),
                ("outcome read", 10_000),
                ("cleanup", 30_000),
            ] {
                let start = if phase == "queued" && attempt == 1 {
                    0
                } else {
                    at
                };
                events.push(json!({"ph":"X","cat":"hype","name":phase,"pid":1,"tid":tid,
                                   "ts":start,"dur":dur,"args":args}));
                at = start + dur;
            }
        }
    }
    json!({"displayTimeUnit":"ms",
           "otherData":{"hype_timeline":1,"started_at":"2026-12-06T23:50:00.123Z","calls":calls},
           "traceEvents":events})
}

#[test]
fn a_thousand_calls_are_aggregated_into_groups_of_ten() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("fanout-1000.json");
    std::fs::write(&input, fan_out(1000).to_string()).unwrap();
    let svg = draw(&input, dir.path());
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    assert!(with_classes(&doc, &["call"]).is_empty());
    let rows = with_classes(&doc, &["row", "aggregate"]);
    assert_eq!(rows.len(), 100);
    let groups: Vec<String> = rows
        .iter()
        .map(|r| r.attribute("data-calls").unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..100)
        .map(|g| format!("{}-{}", g * 10, g * 10 + 9))
        .collect();
    assert_eq!(groups, expected);
    // Calls 5, 102, 199, … (every 97th from 5) failed: their groups, and
    // only those, are marked, with the count.
    let failed_calls: Vec<u64> = (0..1000).filter(|c| c % 97 == 5).collect();
    let mut expected_failed: BTreeSet<String> = BTreeSet::new();
    for call in &failed_calls {
        expected_failed.insert(format!("{}-{}", call / 10 * 10, call / 10 * 10 + 9));
    }
    let failed: BTreeSet<String> = with_classes(&doc, &["row", "aggregate", "failed"])
        .iter()
        .map(|r| r.attribute("data-calls").unwrap().to_owned())
        .collect();
    assert_eq!(failed, expected_failed);
    let counted: usize = rows
        .iter()
        .map(|r| {
            r.attribute("data-failed")
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(counted, failed_calls.len());
    assert_eq!(
        legend_phases(&doc),
        [
            "queued",
            "scheduling",
            "container start",
            "function",
            "outcome read",
            "cleanup"
        ]
        .map(str::to_owned)
        .into()
    );
    let title = with_classes(&doc, &["title"])[0].text().unwrap().to_owned();
    assert!(
        title.starts_with(&format!(
            "hype timeline: 1000 calls, {} failed, 143 retried",
            failed_calls.len()
        )),
        "{title}"
    );
    renders_to_png(
        &svg,
        dir.path(),
        "a_thousand_calls_are_aggregated_into_groups_of_ten",
    );
}

#[test]
fn rows_aggregate_only_past_two_hundred_calls() {
    let dir = tempfile::tempdir().unwrap();
    for (calls, call_rows, aggregate_rows) in [(200, 200, 0), (201, 0, 67)] {
        let input = dir.path().join(format!("fanout-{calls}.json"));
        std::fs::write(&input, fan_out(calls).to_string()).unwrap();
        let svg = draw(&input, dir.path());
        let doc = roxmltree::Document::parse(&svg).expect("the SVG is XML");
        assert_eq!(
            with_classes(&doc, &["row", "call"]).len(),
            call_rows,
            "{calls}"
        );
        assert_eq!(
            with_classes(&doc, &["row", "aggregate"]).len(),
            aggregate_rows,
            "{calls}"
        );
    }
}

#[test]
fn bad_input_is_refused_with_exit_code_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.svg");
    for (name, content, expected) in [
        ("empty.json", "", "the file is empty"),
        ("html.json", "<html></html>", "not JSON"),
        ("truncated.json", "{\"traceEvents\": [", "not JSON"),
        (
            "chrome.json",
            r#"{"traceEvents":[{"ph":"X","name":"x","tid":1,"ts":0,"dur":1}]}"#,
            "otherData.hype_timeline is missing",
        ),
        (
            "nocalls.json",
            r#"{"otherData":{"hype_timeline":1},"traceEvents":[]}"#,
            "the timeline has no calls",
        ),
        (
            "badslice.json",
            r#"{"otherData":{"hype_timeline":1},"traceEvents":[{"ph":"X","name":"function","tid":1,"ts":"soon","dur":1}]}"#,
            "traceEvents[0] (slice \"function\") has ts \"soon\"",
        ),
    ] {
        let input = dir.path().join(name);
        std::fs::write(&input, content).unwrap();
        let (code, _, stderr) = hype(&[&input, Path::new("-o"), &out]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains(name),
            "{name}: {stderr}"
        );
        assert!(!out.exists(), "{name}: no picture is written");
    }
    let missing = dir.path().join("missing.json");
    let (code, _, stderr) = hype(&[&missing]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot read") && stderr.contains("missing.json"),
        "{stderr}"
    );
    // Without -o: beside the input, as .svg.
    let input = dir.path().join("trace.json");
    std::fs::copy(fixture(), &input).unwrap();
    let (code, stdout, stderr) = hype(&[&input]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("trace.svg: 6 calls"), "{stdout}");
    assert!(dir.path().join("trace.svg").exists());
}
