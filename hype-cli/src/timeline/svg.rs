//! `hype timeline`'s picture: a [`Trace`] as an SVG Gantt chart. Calls on
//! the y axis in submission order, time on the x axis (ticks with their
//! unit), one rectangle per phase slice coloured by its phase (a fixed
//! colour per phase name, [`FALLBACK`] for names this version does not
//! know), a legend of the phases present, failed calls marked with a red
//! cross and red label.
//!
//! Up to [`MAX_CALL_ROWS`] calls, each call is a row (`<g class="row
//! call">`): its slices where they were; a retried call's earlier attempts
//! are faded, a failed attempt's slices outlined in red. With more calls,
//! rows aggregate [`group_size`] consecutive calls each (`<g class="row
//! aggregate">`, at most [`AGGREGATE_ROWS`] rows): a grey whisker from the
//! group's earliest start to its latest end, and a bar from the group's
//! median start whose segments are each phase's mean time per call of the
//! group, stacked in phase order (so the bar is as long as the group's
//! mean time spent in phases); a red cross when any of its calls failed,
//! with the count in `data-failed`. Failed rows also have the class
//! `failed`. Every row has a `<title>` (a tooltip) saying what it shows.
//! The legend under the x axis is [`super::legend`]'s.

use std::fmt::Write as _;

use super::axis;
use super::legend::{legend, legend_lines};
use super::trace::{Call, Trace};

/// The most calls drawn one per row; more are aggregated.
pub const MAX_CALL_ROWS: usize = 200;
/// The most rows when calls are aggregated.
pub const AGGREGATE_ROWS: usize = 100;
/// The picture's width, in pixels.
pub const WIDTH: u32 = 1200;
/// The colour of a phase this version does not know.
pub const FALLBACK: &str = "#bcbd22";
/// The colour of failure marks.
pub(super) const FAILED: &str = "#d62728";

const LEFT: f64 = 250.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 64.0;
const FONT: &str = "font-family=\"DejaVu Sans, Arial, sans-serif\"";

/// The colour of a phase.
pub fn colour(phase: &str) -> &'static str {
    match phase {
        "queued" => "#a0a0a0",
        "scheduling" => "#f2b134",
        "image pull" => "#9467bd",
        "container start" => "#1f77b4",
        "executable fetch" => "#17becf",
        "function" => "#2ca02c",
        "outcome read" => "#e377c2",
        "cleanup" => "#8c564b",
        _ => FALLBACK,
    }
}

/// How many consecutive calls one row shows: 1 up to [`MAX_CALL_ROWS`]
/// calls, else enough for at most [`AGGREGATE_ROWS`] rows.
pub fn group_size(calls: usize) -> usize {
    if calls <= MAX_CALL_ROWS {
        1
    } else {
        calls.div_ceil(AGGREGATE_ROWS)
    }
}

/// Escapes text for XML content and attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}

/// The geometry shared by the parts of the picture.
pub(super) struct Frame {
    rows: usize,
    row_height: f64,
    /// Pixels per microsecond.
    scale: f64,
    /// Draw a label on every n-th row.
    label_every: usize,
}

impl Frame {
    fn x(&self, micros: u64) -> f64 {
        LEFT + micros as f64 * self.scale
    }

    fn y(&self, row: usize) -> f64 {
        TOP + row as f64 * self.row_height
    }

    pub(super) fn plot_bottom(&self) -> f64 {
        self.y(self.rows)
    }
}

/// The picture of `trace`, an SVG document.
pub fn render(trace: &Trace) -> String {
    let calls = trace.calls.len();
    let group = group_size(calls);
    let rows = calls.div_ceil(group).max(1);
    let row_height = (720.0 / rows as f64).clamp(5.0, 20.0).floor();
    let end = trace.end().max(1);
    let (_, ticks) = axis::ticks(end, 8);
    let axis_end = *ticks.last().unwrap_or(&end);
    let frame = Frame {
        rows,
        row_height,
        scale: (f64::from(WIDTH) - LEFT - RIGHT) / axis_end as f64,
        label_every: (14.0 / row_height).ceil().max(1.0) as usize,
    };
    let phases = trace.phases();
    let legend_lines = legend_lines(&phases, trace);
    let height = (frame.plot_bottom() + 52.0 + 22.0 * legend_lines.len() as f64 + 12.0).ceil();

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" {FONT} font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect class="background" x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    title(&mut svg, trace);
    grid_and_axis(&mut svg, &frame, &ticks, end, group);
    let _ = writeln!(svg, r#"<g class="rows">"#);
    for (row, chunk) in trace.calls.chunks(group).enumerate() {
        let first = row * group;
        if group == 1 {
            call_row(&mut svg, &frame, row, &chunk[0], first);
        } else {
            aggregate_row(&mut svg, &frame, row, chunk, first, &phases);
        }
    }
    let _ = writeln!(svg, "</g>");
    legend(&mut svg, &frame, &legend_lines);
    svg.push_str("</svg>\n");
    svg
}

/// The title: calls, failures, retries, wall time, start.
fn title(svg: &mut String, trace: &Trace) {
    let failed = trace.calls.iter().filter(|c| c.failed()).count();
    let retried = trace.calls.iter().filter(|c| c.attempts() > 1).count();
    let _ = writeln!(
        svg,
        r#"<text class="title" x="16" y="24" font-size="16" font-weight="bold">hype timeline: {} calls, {failed} failed, {retried} retried, {}</text>"#,
        trace.calls.len(),
        esc(&axis::duration(trace.end())),
    );
    if let Some(started) = &trace.started_at {
        let _ = writeln!(
            svg,
            r##"<text class="subtitle" x="16" y="44" fill="#555">started {}</text>"##,
            esc(started)
        );
    }
}

/// Vertical grid lines, the x axis with its ticks and title, the y axis
/// title.
fn grid_and_axis(svg: &mut String, frame: &Frame, ticks: &[u64], end: u64, group: usize) {
    let unit = axis::unit(end);
    let bottom = frame.plot_bottom();
    let _ = writeln!(svg, r#"<g class="axis x">"#);
    for tick in ticks {
        let x = frame.x(*tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom:.1}" stroke="#e4e4e4"/><line x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 5.0,
            bottom + 18.0,
            esc(&axis::label(*tick, unit)),
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{bottom:.1}" x2="{:.1}" y2="{bottom:.1}" stroke="#333"/>"##,
        f64::from(WIDTH) - RIGHT
    );
    let _ = writeln!(
        svg,
        r#"<text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle">time since the map started ({})</text>"#,
        LEFT + (f64::from(WIDTH) - LEFT - RIGHT) / 2.0,
        bottom + 36.0,
        unit.name
    );
    let _ = writeln!(svg, "</g>");
    let what = if group == 1 {
        "calls, in submission order".to_owned()
    } else {
        format!("calls in groups of {group}, in submission order")
    };
    // Too long for a short plot: the rotated title would leave it.
    let what = if what.chars().count() as f64 * 7.0 > bottom - TOP {
        "calls".to_owned()
    } else {
        what
    };
    let middle = (TOP + bottom) / 2.0;
    let _ = writeln!(
        svg,
        r#"<text class="axis-title y" x="14" y="{middle:.1}" text-anchor="middle" transform="rotate(-90 14 {middle:.1})">{what}</text>"#
    );
}

/// A red cross left of row `row`'s plot area.
fn cross(svg: &mut String, frame: &Frame, row: usize) {
    let size = (frame.row_height - 2.0).clamp(3.0, 8.0) / 2.0;
    let cx = LEFT - 8.0;
    let cy = frame.y(row) + frame.row_height / 2.0;
    let _ = writeln!(
        svg,
        r#"<path class="failed-mark" d="M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}" stroke="{FAILED}" stroke-width="2"/>"#,
        cx - size,
        cy - size,
        cx + size,
        cy + size,
        cx - size,
        cy + size,
        cx + size,
        cy - size,
    );
}

/// The label left of a row, if it is one that gets a label.
fn row_label(svg: &mut String, frame: &Frame, row: usize, text: &str, failed: bool) {
    if !row.is_multiple_of(frame.label_every) {
        return;
    }
    let fill = if failed { FAILED } else { "#222" };
    let y = frame.y(row) + frame.row_height / 2.0 + 4.0;
    let _ = writeln!(
        svg,
        r#"<text class="label" x="{:.1}" y="{y:.1}" text-anchor="end" fill="{fill}" font-size="{}">{}</text>"#,
        LEFT - 18.0,
        (frame.row_height.max(11.0) - 1.0).min(12.0),
        esc(&cut(text, 36)),
    );
}

/// One call's row: its slices where they were.
fn call_row(svg: &mut String, frame: &Frame, row: usize, call: &Call, index: usize) {
    let failed = call.failed();
    let class = if failed {
        "row call failed"
    } else {
        "row call"
    };
    let last = call.attempts();
    let _ = write!(
        svg,
        r#"<g class="{class}" data-call="{index}" data-attempts="{last}"><title>#{index} {}"#,
        esc(&call.name)
    );
    if failed {
        let _ = write!(
            svg,
            ": failed ({})",
            esc(call.error().unwrap_or("error not recorded"))
        );
    }
    if last > 1 {
        let _ = write!(svg, ", {last} attempts");
    }
    svg.push_str("</title>\n");
    let y = frame.y(row) + 1.0;
    let h = (frame.row_height - 2.0).max(1.0);
    for slice in &call.slices {
        let x = frame.x(slice.start);
        let w = (slice.duration as f64 * frame.scale).max(0.5);
        let faded = if slice.attempt < last {
            r#" fill-opacity="0.45""#
        } else {
            ""
        };
        let outline = if slice.failed {
            format!(r#" stroke="{FAILED}" stroke-width="1""#)
        } else {
            String::new()
        };
        let _ = writeln!(
            svg,
            r#"<rect class="slice" data-phase="{}" data-attempt="{}" x="{x:.2}" y="{y:.1}" width="{w:.2}" height="{h:.1}" fill="{}"{faded}{outline}><title>{}, attempt {}: {} ({} from {})</title></rect>"#,
            esc(&slice.name),
            slice.attempt,
            colour(&slice.name),
            esc(&call.name),
            slice.attempt,
            esc(&slice.name),
            esc(&axis::duration(slice.duration)),
            esc(&axis::duration(slice.start)),
        );
    }
    if failed {
        cross(svg, frame, row);
    }
    row_label(svg, frame, row, &format!("#{index} {}", call.name), failed);
    svg.push_str("</g>\n");
}

/// The median of `values` (the lower one of an even count; 0 for none).
fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

/// One row for the consecutive calls `calls`, from call `first`.
fn aggregate_row(
    svg: &mut String,
    frame: &Frame,
    row: usize,
    calls: &[Call],
    first: usize,
    phases: &[String],
) {
    let last = first + calls.len() - 1;
    let failed = calls.iter().filter(|c| c.failed()).count();
    let retried = calls.iter().filter(|c| c.attempts() > 1).count();
    let class = if failed > 0 {
        "row aggregate failed"
    } else {
        "row aggregate"
    };
    let spans: Vec<(u64, u64)> = calls.iter().filter_map(Call::span).collect();
    let _ = write!(
        svg,
        r#"<g class="{class}" data-calls="{first}-{last}" data-failed="{failed}"><title>calls #{first}–#{last}: {failed} failed, {retried} retried"#
    );
    if let (Some(earliest), Some(latest)) = (
        spans.iter().map(|s| s.0).min(),
        spans.iter().map(|s| s.1).max(),
    ) {
        let _ = write!(
            svg,
            "; from {} to {}; mean per call:",
            esc(&axis::duration(earliest)),
            esc(&axis::duration(latest))
        );
        let cy = frame.y(row) + frame.row_height / 2.0;
        let whisker = format!(
            r##"<line class="whisker" x1="{:.2}" y1="{cy:.1}" x2="{:.2}" y2="{cy:.1}" stroke="#777" stroke-width="1"/>"##,
            frame.x(earliest),
            frame.x(latest)
        );
        let mut x = frame.x(median(spans.iter().map(|s| s.0).collect()));
        let y = frame.y(row) + 1.0;
        let h = (frame.row_height - 2.0).max(1.0);
        let mut bars = String::new();
        for phase in phases {
            let total: u64 = calls.iter().map(|c| c.time_in(phase)).sum();
            let mean = total / calls.len() as u64;
            if mean == 0 {
                continue;
            }
            let _ = write!(svg, " {} {}", esc(phase), esc(&axis::duration(mean)));
            let w = mean as f64 * frame.scale;
            let _ = writeln!(
                bars,
                r#"<rect class="slice" data-phase="{}" x="{x:.2}" y="{y:.1}" width="{:.2}" height="{h:.1}" fill="{}"/>"#,
                esc(phase),
                w.max(0.5),
                colour(phase),
            );
            x += w;
        }
        svg.push_str("</title>\n");
        svg.push_str(&whisker);
        svg.push('\n');
        svg.push_str(&bars);
    } else {
        svg.push_str("</title>\n");
    }
    if failed > 0 {
        cross(svg, frame, row);
    }
    let label = if failed > 0 {
        format!("#{first}–{last} ({failed} failed)")
    } else {
        format!("#{first}–{last}")
    };
    row_label(svg, frame, row, &label, failed > 0);
    svg.push_str("</g>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_phases_have_their_own_colours_and_others_the_fallback() {
        let colours: Vec<&str> = super::super::trace::PHASES
            .iter()
            .map(|p| colour(p))
            .collect();
        let mut distinct = colours.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), colours.len());
        assert!(!colours.contains(&FALLBACK));
        assert_eq!(colour("warm-up"), FALLBACK);
    }

    #[test]
    fn rows_aggregate_past_the_limit() {
        assert_eq!(group_size(1), 1);
        assert_eq!(group_size(MAX_CALL_ROWS), 1);
        assert_eq!(group_size(MAX_CALL_ROWS + 1), 3);
        assert_eq!(group_size(1000), 10);
        assert_eq!(median(vec![5, 1, 3]), 3);
        assert_eq!(median(vec![]), 0);
    }

    #[test]
    fn text_is_escaped_and_cut() {
        assert_eq!(esc("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;?");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
