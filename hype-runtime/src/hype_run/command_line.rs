//! `hype-run`'s command line: how a process knows it was started as
//! `hype-run`, the arguments it takes, and `--list`.

use std::ffi::OsString;
use std::io::Write as _;

use crate::error::Error;
use crate::registry::Registry;
use crate::wire::{Failure, HYPE_RUN};

/// The arguments after `hype-run`, if the command line invokes it.
pub fn hype_run_arguments(args: &[OsString]) -> Option<&[OsString]> {
    let first = args.first()?;
    let basename = std::path::Path::new(first).file_name()?;
    if basename == HYPE_RUN {
        return Some(&args[1..]);
    }
    if args.get(1).is_some_and(|a| a == HYPE_RUN) {
        return Some(&args[2..]);
    }
    None
}

pub(super) enum Command {
    List,
    Run(String),
    /// `--worker` and the arguments after it.
    Worker(Vec<OsString>),
}

pub(super) fn parse_args(args: &[OsString]) -> Result<Command, Error> {
    let usage = "usage: hype-run inline:<base64> | hype-run <staging URI> | hype-run --list | hype-run --worker [OPTIONS]";
    match args {
        [one] if one == "--list" => Ok(Command::List),
        [first, rest @ ..] if first == "--worker" => Ok(Command::Worker(rest.to_vec())),
        [one] => one
            .to_str()
            .map(|s| Command::Run(s.to_owned()))
            .ok_or_else(|| Error::BadInvocation {
                message: format!("the call argument is not UTF-8; {usage}"),
            }),
        _ => Err(Error::BadInvocation {
            message: format!("expected exactly one argument, got {}; {usage}", args.len()),
        }),
    }
}

pub(super) fn list() -> i32 {
    match Registry::global() {
        Ok(registry) => {
            let mut out = std::io::stdout().lock();
            for id in registry.ids() {
                if let Some(reg) = registry.get(id) {
                    let defaults = reg.defaults();
                    if defaults.is_empty() {
                        let _ = writeln!(out, "{id}\t{:016x}", reg.signature());
                    } else {
                        let _ = writeln!(out, "{id}\t{:016x}\t{defaults}", reg.signature());
                    }
                }
            }
            0
        }
        Err(err) => {
            say!("hype-run: {err}");
            Failure::from_error(&err).exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn recognises_both_invocations() {
        let a = os(&["/usr/local/bin/hype-run", "inline:AA=="]);
        assert_eq!(hype_run_arguments(&a).unwrap(), &a[1..]);
        let b = os(&["./my-binary", "hype-run", "inline:AA=="]);
        assert_eq!(hype_run_arguments(&b).unwrap(), &b[2..]);
        assert!(hype_run_arguments(&os(&["./my-binary", "--flag"])).is_none());
        assert!(hype_run_arguments(&os(&["./hype-runner"])).is_none());
        assert!(hype_run_arguments(&[]).is_none());
    }

    #[test]
    fn argv_errors_are_bad_invocations() {
        assert!(matches!(parse_args(&[]), Err(Error::BadInvocation { .. })));
        assert!(matches!(
            parse_args(&os(&["a", "b"])),
            Err(Error::BadInvocation { .. })
        ));
        assert!(matches!(parse_args(&os(&["--list"])), Ok(Command::List)));
    }
}
