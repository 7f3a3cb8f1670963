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
    /// Pending, Running, Succeeded, Failed, Terminating (pods); created,
    /// running, exited… (containers).
    pub phase: String,
    /// How long ago it was created, if known.
    pub age: Option<Duration>,
    /// Where it runs: the node, or the Docker engine's host.
    pub node: String,
}

/// The header and the rows, columns padded to their widest cell; oldest
/// first. Just the header when there are none.
pub fn render(rows: &[Row]) -> String {
    let mut rows: Vec<&Row> = rows.iter().collect();
    rows.sort_by(|a, b| b.age.cmp(&a.age).then(a.execution.cmp(&b.execution)));
    let mut cells: Vec<[String; 6]> = vec![[
        "EXECUTION".to_owned(),
        "FUNCTION".to_owned(),
        "SESSION".to_owned(),
        "PHASE".to_owned(),
        "AGE".to_owned(),
        "NODE".to_owned(),
    ]];
    for row in rows {
        cells.push([
            row.execution.clone(),
            row.function.clone(),
            row.session.clone(),
            row.phase.clone(),
            row.age
                .map(crate::duration::format)
                .unwrap_or_else(|| "-".to_owned()),
            row.node.clone(),
        ]);
    }
    let mut widths = [0usize; 6];
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
            phase: "Running".to_owned(),
            age: Some(Duration::from_secs(age)),
            node: "node-1".to_owned(),
        };
        let text = render(&[row("hype-add-b", 5), row("hype-add-aaaa", 120)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("EXECUTION       FUNCTION"), "{text}");
        assert!(lines[1].starts_with("hype-add-aaaa   add"), "{text}");
        assert!(lines[1].contains(" 2m "), "{text}");
        assert!(lines[2].contains(" 5s "), "{text}");
        assert_eq!(render(&[]).lines().count(), 1);
    }
}
