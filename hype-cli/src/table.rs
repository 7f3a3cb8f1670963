//! `hype ps`'s table: one row per execution, in columns.

use std::time::Duration;

/// One execution, as `hype ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The execution ID (the pod's or container's name).
    pub execution: String,
    /// The function (its last path segment).
    pub function: String,
    /// The submitter session.
    pub session: String,
    /// Where it is: `scheduling`, `waiting-for-node`, `image-pull`,
    /// `container-start`, `running`, `ended`, `terminating` (see
    /// [`crate::kube::phase`]; containers: `container-start`, `running`,
    /// `ended`, `paused`, `terminating`).
    pub phase: String,
    /// How long it has been in its phase, if known.
    pub in_phase: Option<Duration>,
    /// How long ago it was created, if known.
    pub age: Option<Duration>,
    /// Where it runs: the node, or the Docker engine's host.
    pub node: String,
    /// Why it waits, or how it ended: the scheduler's message, the
    /// autoscaler's word, the image pull error, the exit code (empty when
    /// there is nothing to say).
    pub detail: String,
}

/// The columns, in order.
pub const HEADER: [&str; 8] = [
    "EXECUTION",
    "FUNCTION",
    "SESSION",
    "PHASE",
    "IN-PHASE",
    "AGE",
    "NODE",
    "DETAIL",
];

/// The header and the rows, columns padded to their widest cell; oldest
/// first. Just the header when there are none.
pub fn render(rows: &[Row]) -> String {
    let mut rows: Vec<&Row> = rows.iter().collect();
    rows.sort_by(|a, b| b.age.cmp(&a.age).then(a.execution.cmp(&b.execution)));
    let duration = |d: Option<Duration>| {
        d.map(crate::duration::format)
            .unwrap_or_else(|| "-".to_owned())
    };
    let mut cells: Vec<[String; 8]> = vec![HEADER.map(str::to_owned)];
    for row in rows {
        cells.push([
            row.execution.clone(),
            row.function.clone(),
            row.session.clone(),
            row.phase.clone(),
            duration(row.in_phase),
            duration(row.age),
            row.node.clone(),
            row.detail.replace(['\n', '\r'], " "),
        ]);
    }
    let mut widths = [0usize; 8];
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &cells {
        let mut text = String::new();
        for (i, (cell, width)) in line.iter().zip(widths).enumerate() {
            if i + 1 == line.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}   "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_oldest_first() {
        let row = |execution: &str, age: u64| Row {
            execution: execution.to_owned(),
            function: "add".to_owned(),
            session: "s1".to_owned(),
            phase: "running".to_owned(),
            in_phase: Some(Duration::from_secs(age / 2)),
            age: Some(Duration::from_secs(age)),
            node: "node-1".to_owned(),
            detail: String::new(),
        };
        let text = render(&[row("hype-add-b", 5), row("hype-add-aaaa", 120)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("EXECUTION       FUNCTION"), "{text}");
        assert!(lines[1].starts_with("hype-add-aaaa   add"), "{text}");
        let cells = |line: &str| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(cells(lines[0]), HEADER);
        assert_eq!(
            cells(lines[1])[3..7],
            ["running", "1m", "2m", "node-1"],
            "{text}"
        );
        assert_eq!(
            cells(lines[2])[3..7],
            ["running", "2s", "5s", "node-1"],
            "{text}"
        );
        assert_eq!(render(&[]).lines().count(), 1);
    }
}
