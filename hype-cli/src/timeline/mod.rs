//! `hype timeline PATH.json -o PICTURE.svg`: the picture of a fan-out's
//! trace file (the timeline a map writes). [`trace`] reads the file,
//! [`svg`] draws it (with [`axis`] for the time axis and [`legend`] for
//! the legend); this module runs the
//! command: read, check, draw, write.

pub mod axis;
pub mod legend;
pub mod svg;
pub mod trace;

use std::path::{Path, PathBuf};

/// Why the command failed, with its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The input cannot be read or is no hype timeline: the command line
    /// names the wrong file (exit code 2).
    Input(String),
    /// The picture cannot be written (exit code 1).
    Output(String),
}

impl Failure {
    /// The exit code: 2 for bad input (as a wrong command line), 1 for a
    /// picture that cannot be written.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Input(_) => crate::cli::USAGE,
            Failure::Output(_) => 1,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Input(message) | Failure::Output(message) => f.write_str(message),
        }
    }
}

/// Where the picture goes without `-o`: the input's path with `.svg` in
/// place of its extension.
pub fn default_output(input: &Path) -> PathBuf {
    input.with_extension("svg")
}

/// Reads the trace file `input`, draws it, writes the SVG to `output`;
/// returns the number of calls drawn.
pub fn run(input: &Path, output: &Path) -> Result<usize, Failure> {
    let text = std::fs::read(input)
        .map_err(|err| Failure::Input(format!("cannot read {}: {err}", input.display())))?;
    let text = String::from_utf8(text).map_err(|err| {
        Failure::Input(format!(
            "{} is not a hype timeline: not UTF-8 text ({err})",
            input.display()
        ))
    })?;
    let trace =
        trace::parse(&text).map_err(|err| Failure::Input(format!("{}: {err}", input.display())))?;
    let picture = svg::render(&trace);
    std::fs::write(output, picture)
        .map_err(|err| Failure::Output(format!("cannot write {}: {err}", output.display())))?;
    Ok(trace.calls.len())
}
