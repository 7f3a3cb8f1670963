//! The legend of `hype timeline`'s picture, under the x axis: a swatch
//! per phase present (`data-phase`), then the marks in use (`data-mark`):
//! `failed` (a red cross), `retried` (a faded slice outlined in red: an
//! earlier attempt), `whisker` (how an aggregated row reads). Entries wrap
//! into lines that fit the picture's width.

use std::fmt::Write as _;

use super::svg::{FAILED, Frame, WIDTH, colour, esc, group_size};
use super::trace::{Call, Trace};

/// One legend entry: its kind (a phase, or a mark), its label and width.
pub(super) struct Entry {
    /// `data-phase` for a phase; a mark's class otherwise.
    phase: Option<String>,
    mark: &'static str,
    text: String,
}

impl Entry {
    fn width(&self) -> f64 {
        30.0 + 7.0 * self.text.chars().count() as f64
    }
}

/// The legend's entries, wrapped into lines that fit the width.
pub(super) fn legend_lines(phases: &[String], trace: &Trace) -> Vec<Vec<Entry>> {
    let mut entries: Vec<Entry> = phases
        .iter()
        .map(|phase| Entry {
            phase: Some(phase.clone()),
            mark: "",
            text: phase.clone(),
        })
        .collect();
    if trace.calls.iter().any(Call::failed) {
        entries.push(Entry {
            phase: None,
            mark: "failed",
            text: "failed call".to_owned(),
        });
    }
    let group = group_size(trace.calls.len());
    if group == 1 && trace.calls.iter().any(|c| c.attempts() > 1) {
        entries.push(Entry {
            phase: None,
            mark: "retried",
            text: "earlier attempt (faded; red outline: it failed)".to_owned(),
        });
    }
    if group > 1 {
        entries.push(Entry {
            phase: None,
            mark: "whisker",
            text: format!(
                "each row: {group} calls; line: earliest start to latest end; bar: from the median start, each phase's mean time per call"
            ),
        });
    }
    let mut lines: Vec<Vec<Entry>> = vec![Vec::new()];
    let mut used = 0.0;
    let room = f64::from(WIDTH) - 32.0;
    for entry in entries {
        if used + entry.width() > room && !lines.last().is_some_and(Vec::is_empty) {
            lines.push(Vec::new());
            used = 0.0;
        }
        used += entry.width() + 16.0;
        if let Some(line) = lines.last_mut() {
            line.push(entry);
        }
    }
    lines
}

/// The legend, under the x axis.
pub(super) fn legend(svg: &mut String, frame: &Frame, lines: &[Vec<Entry>]) {
    let _ = writeln!(svg, r#"<g class="legend">"#);
    for (i, line) in lines.iter().enumerate() {
        let y = frame.plot_bottom() + 56.0 + 22.0 * i as f64;
        let mut x = 16.0;
        for entry in line {
            let swatch = match (&entry.phase, entry.mark) {
                (Some(phase), _) => format!(
                    r#"<rect x="{x:.1}" y="{:.1}" width="14" height="12" fill="{}"/>"#,
                    y - 10.0,
                    colour(phase)
                ),
                (None, "failed") => format!(
                    r#"<path d="M{:.1} {:.1}l10 10m-10 0l10 -10" stroke="{FAILED}" stroke-width="2"/>"#,
                    x + 2.0,
                    y - 9.0
                ),
                (None, "retried") => format!(
                    r##"<rect x="{x:.1}" y="{:.1}" width="14" height="12" fill="#2ca02c" fill-opacity="0.45" stroke="{FAILED}"/>"##,
                    y - 10.0
                ),
                _ => format!(
                    r##"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#777"/>"##,
                    y - 4.0,
                    x + 14.0,
                    y - 4.0
                ),
            };
            let data = match &entry.phase {
                Some(phase) => format!(r#" data-phase="{}""#, esc(phase)),
                None => format!(r#" data-mark="{}""#, entry.mark),
            };
            let _ = writeln!(
                svg,
                r#"<g class="legend-entry"{data}>{swatch}<text x="{:.1}" y="{y:.1}">{}</text></g>"#,
                x + 20.0,
                esc(&entry.text)
            );
            x += entry.width() + 16.0;
        }
    }
    let _ = writeln!(svg, "</g>");
}
