//! The worker's command line, after `--worker` (see [`super`]).

use std::ffi::OsString;
use std::time::Duration;

use crate::error::Error;
use crate::wire::BlobRef;

/// How long a worker waits, by default, without a call before it exits.
pub(crate) const DEFAULT_IDLE_FOR: Duration = Duration::from_secs(60);

/// The longest `--idle-for` accepted: one day.
const MAX_IDLE_FOR: Duration = Duration::from_secs(24 * 3600);

const USAGE: &str = "usage: hype-run --worker [--idle-for SECONDS] [--executable-uri URI --executable-sha256 HEX --executable-len BYTES]";

/// A worker's command line, after `--worker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// Exit after this long without a call, or without a request.
    pub idle_for: Duration,
    /// The shipped executable to fetch before the first call.
    pub executable: Option<BlobRef>,
}

/// Parses the arguments after `--worker`.
pub(crate) fn parse(args: &[OsString]) -> Result<Options, Error> {
    let bad = |message: String| Error::BadInvocation {
        message: format!("{message}; {USAGE}"),
    };
    let mut idle_for = DEFAULT_IDLE_FOR;
    let (mut uri, mut sha256, mut len) = (None, None, None);
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let flag = flag
            .to_str()
            .ok_or_else(|| bad("an argument is not UTF-8".to_owned()))?;
        let value = rest
            .next()
            .and_then(|v| v.to_str())
            .ok_or_else(|| bad(format!("{flag} needs a value")))?;
        match flag {
            "--idle-for" => {
                let seconds: u64 = value.parse().map_err(|_| {
                    bad(format!(
                        "--idle-for {value:?} is not a whole number of seconds"
                    ))
                })?;
                idle_for = Duration::from_secs(seconds);
                if idle_for.is_zero() || idle_for > MAX_IDLE_FOR {
                    return Err(bad(format!(
                        "--idle-for {seconds} is out of range (1 to {} seconds)",
                        MAX_IDLE_FOR.as_secs()
                    )));
                }
            }
            "--executable-uri" => uri = Some(value.to_owned()),
            "--executable-sha256" => {
                if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(format!(
                        "--executable-sha256 {value:?} is not 64 hex digits"
                    )));
                }
                sha256 = Some(value.to_ascii_lowercase());
            }
            "--executable-len" => {
                len = Some(value.parse::<u64>().map_err(|_| {
                    bad(format!(
                        "--executable-len {value:?} is not a number of bytes"
                    ))
                })?)
            }
            other => return Err(bad(format!("unknown flag {other:?}"))),
        }
    }
    let executable = match (uri, sha256, len) {
        (None, None, None) => None,
        (Some(uri), Some(sha256), Some(len)) => Some(BlobRef::new(uri, len, sha256)),
        _ => {
            return Err(bad(
                "--executable-uri, --executable-sha256 and --executable-len go together".to_owned(),
            ));
        }
    };
    Ok(Options {
        idle_for,
        executable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn options_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse(&args(&[])).unwrap(),
            Options {
                idle_for: DEFAULT_IDLE_FOR,
                executable: None
            }
        );
        let sha = "ab".repeat(32);
        let options = parse(&args(&[
            "--idle-for",
            "5",
            "--executable-uri",
            "gs://b/p/blobs/sha256/x",
            "--executable-sha256",
            &sha,
            "--executable-len",
            "12",
        ]))
        .unwrap();
        assert_eq!(options.idle_for, Duration::from_secs(5));
        assert_eq!(
            options.executable,
            Some(BlobRef::new("gs://b/p/blobs/sha256/x", 12, sha))
        );
        for (bad, says) in [
            (&["--idle-for", "0"][..], "out of range"),
            (&["--idle-for", "1m"][..], "whole number"),
            (&["--idle-for"][..], "needs a value"),
            (&["--executable-uri", "gs://b/x"][..], "go together"),
            (&["--executable-sha256", "xyz"][..], "64 hex"),
            (&["--frobnicate", "1"][..], "unknown flag"),
        ] {
            let err = parse(&args(bad)).unwrap_err().to_string();
            assert!(err.contains(says), "{bad:?}: {err}");
            assert!(err.contains("usage: hype-run --worker"), "{err}");
        }
    }
}
