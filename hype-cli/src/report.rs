//! What `hype gc` says: one line per object it removed (or, with
//! `--dry-run`, would remove), `<kind> <name> <why>`, printed as it goes;
//! failures on stderr; then one summary line.

use std::collections::BTreeMap;
use std::io::Write as _;

/// The lines and counts of one `hype gc` run.
#[derive(Debug, Default)]
pub struct Report {
    dry_run: bool,
    removed: BTreeMap<&'static str, usize>,
    failures: usize,
}

impl Report {
    /// A report; with `dry_run`, lines say what would be removed.
    pub fn new(dry_run: bool) -> Report {
        Report {
            dry_run,
            ..Report::default()
        }
    }

    /// Whether nothing is to be removed.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// One object removed (or that would be): `kind name why` on stdout.
    pub fn removed(&mut self, kind: &'static str, name: &str, why: &str) {
        *self.removed.entry(kind).or_default() += 1;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{kind} {name} {why}");
        let _ = out.flush();
    }

    /// Something that could not be looked at or removed, on stderr.
    pub fn failed(&mut self, message: &str) {
        self.failures += 1;
        let _ = writeln!(std::io::stderr().lock(), "hype gc: {message}");
    }

    /// How many failures there were.
    pub fn failures(&self) -> usize {
        self.failures
    }

    /// The summary line: `removed 3 objects (1 lease, 2 pods)`, `would
    /// remove …`, `nothing to remove`, and the failures if any.
    pub fn summary(&self) -> String {
        let total: usize = self.removed.values().sum();
        let mut line = if total == 0 {
            "nothing to remove".to_owned()
        } else {
            let parts: Vec<String> = self
                .removed
                .iter()
                .map(|(kind, n)| format!("{n} {}", plural(kind, *n)))
                .collect();
            format!(
                "{} {total} {} ({})",
                if self.dry_run {
                    "would remove"
                } else {
                    "removed"
                },
                plural("object", total),
                parts.join(", ")
            )
        };
        if self.dry_run {
            line.push_str("; dry run: nothing was removed");
        }
        if self.failures > 0 {
            line.push_str(&format!(
                "; {} {} (see above)",
                self.failures,
                plural("failure", self.failures)
            ));
        }
        line
    }
}

/// `kind`, with an `s` unless there is one.
fn plural(kind: &str, n: usize) -> String {
    if n == 1 {
        kind.to_owned()
    } else {
        format!("{kind}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_by_kind() {
        let mut report = Report::new(false);
        assert_eq!(report.summary(), "nothing to remove");
        report.removed("pod", "hype-a", "why");
        report.removed("lease", "hype-s", "why");
        report.removed("pod", "hype-b", "why");
        assert_eq!(report.summary(), "removed 3 objects (1 lease, 2 pods)");
        let mut dry = Report::new(true);
        dry.removed("container", "c", "why");
        dry.failed("x");
        assert_eq!(
            dry.summary(),
            "would remove 1 object (1 container); dry run: nothing was removed; 1 failure (see above)"
        );
    }
}
