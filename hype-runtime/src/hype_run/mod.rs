//! `hype-run`: the entrypoint that executes one call inside a container or
//! child process.
//!
//! `hype-run <call>` where `<call>` is `inline:<base64>` or a staging URI of
//! a call envelope. It decodes the call, checks the function's ID and
//! signature against this binary's registry, fetches staged arguments, runs
//! the function (on a tokio runtime if it is `async`), catches a panic,
//! writes the outcome envelope to `HYPE_TERMINATION_MESSAGE_PATH` (default
//! `/dev/termination-log`) inline or as a staged outcome object, and exits:
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | the function returned (the outcome holds the value) |
//! | 101 | the function panicked (the outcome holds message and location) |
//! | 64–77 | the call could not be run (75–77: the shipped executable); see [`Failure::exit_code`] (a failure outcome is written when possible) |
//! | 72 | the outcome itself could not be written |
//!
//! Every failure also prints one line starting `hype-run:` on stderr.
//! `hype-run --worker [OPTIONS]` is a warm worker's main process: it runs
//! many calls, each as a fresh `hype-run <call>` child (`crate::worker`).
//! `hype-run --list` prints the registered functions, one a line: the ID,
//! a tab, the signature in hex and, for a function whose attribute sets
//! defaults, a tab and their text form (`cpu=2 timeout=10m`, see
//! [`crate::FunctionDefaults`]).
//! Before anything else it starts watching its parent
//! (`crate::process`: dying with the parent).

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config;
use crate::error::Error;
use crate::invoke::{self, Executed, runtime};
use crate::launch::{self, Launched, Plan};
use crate::registry::Registry;
use crate::staging::{self, Staging};
use crate::wire::{
    self, CallEnvelope, EXIT_OUTCOME_UNWRITABLE, EXIT_PANICKED, EXIT_RETURNED, Failure, Outcome,
    OutcomeEnvelope, Payload, Reference, TERMINATION_MESSAGE_LIMIT,
};

/// A line of hype-run's own on its stderr; a stderr that is closed or a
/// broken pipe is ignored (`eprintln!` would panic and lose the outcome).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod command_line;

pub use command_line::hype_run_arguments;
use command_line::{Command, list, parse_args};

/// If this process was started as `hype-run` (`argv[0]`'s basename `hype-run`,
/// or first argument `hype-run`), executes the call and exits with its code;
/// otherwise returns and the program goes on. `#[hype::main]` calls this
/// first; call it yourself at the top of `main` if you do not use the
/// attribute.
pub fn dispatch_if_hype_run() {
    DISPATCHES.store(true, std::sync::atomic::Ordering::Relaxed);
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(rest) = hype_run_arguments(&args) {
        let code = run(rest);
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        std::process::exit(code);
    }
}

static DISPATCHES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this program dispatches `hype-run` ([`dispatch_if_hype_run`]
/// has run): only then can its own executable run calls where it is
/// shipped. A test harness binary (`cargo test`) does not.
pub fn dispatches() -> bool {
    DISPATCHES.load(std::sync::atomic::Ordering::Relaxed)
}

/// The `main` of a generic launcher (`hype-cli`'s `hype-run`): runs
/// `hype-run` with the command line's arguments (after `hype-run`, if the
/// launcher was started under another name) and gives the exit code. A
/// launcher has no remote functions of its own: its calls name the
/// executable that has them.
pub fn launcher_main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    let rest = hype_run_arguments(&args).unwrap_or(args.get(1..).unwrap_or_default());
    let code = run(rest);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    code
}

/// Executes `hype-run` with the arguments after `hype-run` and returns the
/// exit code.
pub fn run(args: &[OsString]) -> i32 {
    crate::process::watch_parent();
    invoke::install_panic_hook();
    let mut ctx = Context {
        execution_id: config::execution_id(),
        termination_path: Some(config::termination_message_path()),
        function: String::new(),
        staging: None,
        message: None,
        forward_signals: true,
        began: std::time::Instant::now(),
        timings: wire::Timings::default(),
    };

    let call_text = match parse_args(args) {
        Ok(Command::List) => return list(),
        Ok(Command::Worker(rest)) => {
            return match crate::worker::main(&rest) {
                Ok(code) => code,
                Err(err) => ctx.fail(&err),
            };
        }
        Ok(Command::Run(text)) => text,
        Err(err) => return ctx.fail(&err),
    };
    match ctx.prepare_and_execute(&call_text) {
        Ok(Done::Here(outcome)) => ctx.finish(outcome),
        Ok(Done::Launched(launched)) => ctx.pass_on(launched),
        Err(err) => ctx.fail(&err),
    }
}

/// What running one call in this process gave: `hype-run`'s exit code and
/// its termination message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InProcessRun {
    /// The exit code `hype-run` would have exited with.
    pub exit_code: i32,
    /// The termination message (`inline:<base64>` or an outcome object URI),
    /// if one could be produced.
    pub termination_message: Option<String>,
}

/// Runs a call (`inline:<base64>` or a staging URI) in this process exactly
/// as `hype-run` would, but returns instead of writing files and exiting:
/// for executors that run calls in-process, such as the Kubernetes test
/// double's instant pods. Call it from a plain thread, not from async code
/// (async functions and staging requests run on their own runtime): from
/// inside a tokio runtime it fails with a bad-invocation outcome instead.
pub fn execute_in_process(call: &str, execution_id: &str) -> InProcessRun {
    invoke::install_panic_hook();
    let mut ctx = Context {
        execution_id: execution_id.to_owned(),
        termination_path: None,
        function: String::new(),
        staging: None,
        message: None,
        forward_signals: false,
        began: std::time::Instant::now(),
        timings: wire::Timings::default(),
    };
    let exit_code = if tokio::runtime::Handle::try_current().is_ok() {
        ctx.fail(&Error::BadInvocation {
            message: "execute_in_process was called from inside a tokio runtime; call it from a plain thread (std::thread::spawn or tokio::task::spawn_blocking)".to_owned(),
        })
    } else {
        match ctx.prepare_and_execute(call) {
            Ok(Done::Here(outcome)) => ctx.finish(outcome),
            Ok(Done::Launched(launched)) => ctx.pass_on(launched),
            Err(err) => ctx.fail(&err),
        }
    };
    InProcessRun {
        exit_code,
        termination_message: ctx.message,
    }
}

/// How a call was run: here, or by the executable it names.
enum Done {
    /// This binary ran it.
    Here(Outcome),
    /// The executable the call names ran it.
    Launched(Launched),
}

struct Context {
    /// Whether SIGTERM and SIGINT go on to a launched executable (a real
    /// `hype-run` process).
    forward_signals: bool,
    execution_id: String,
    /// Where the termination message goes; `None` keeps it in `message`.
    termination_path: Option<PathBuf>,
    function: String,
    staging: Option<Arc<dyn Staging>>,
    message: Option<String>,
    /// When this `hype-run` started: its timings are measured from here.
    began: std::time::Instant,
    /// What the outcome reports of this execution's steps.
    timings: wire::Timings,
}

impl Context {
    fn prepare_and_execute(&mut self, call_text: &str) -> Result<Done, Error> {
        let envelope = self.load_call(call_text)?;
        self.function.clone_from(&envelope.function);
        if let Some(location) = &envelope.staging {
            self.staging = Some(staging::open(location)?);
        }
        let location = envelope.staging.as_deref();
        if let Some(blob) = &envelope.executable {
            check_under(location, "executable", &blob.uri)?;
            let store = self.store_for(&blob.uri)?;
            if let Plan::Launch(path) = launch::plan(blob, &store, &self.execution_id)? {
                tracing::debug!(executable = %path.display(), execution_id = %self.execution_id, "launching");
                return launch::run(
                    &path,
                    call_text,
                    blob,
                    &self.execution_id,
                    self.forward_signals,
                    micros(self.began.elapsed()),
                )
                .map(Done::Launched);
            }
        }
        let registry = Registry::global()?;
        let Some(registration) = registry.get(&envelope.function) else {
            return Err(Error::UnknownFunction {
                function: envelope.function.clone(),
                execution_id: self.execution_id.clone(),
                known: closest(registry.ids(), &envelope.function, 20),
            });
        };
        if registration.signature() != envelope.signature {
            return Err(Error::SignatureMismatch {
                function: envelope.function.clone(),
                expected: envelope.signature,
                found: registration.signature(),
                execution_id: self.execution_id.clone(),
            });
        }
        let arguments = match envelope.payload {
            Payload::Inline(bytes) => bytes.into_vec(),
            Payload::Staged(blob) => {
                check_under(location, "staged arguments", &blob.uri)?;
                let store = self.store_for(&blob.uri)?;
                runtime()?.block_on(store.get_blob(&blob))?
            }
        };
        tracing::debug!(function = %envelope.function, execution_id = %self.execution_id, "executing");
        // A launcher that started this process says how long it took.
        self.timings.launch_us = config::var(config::HYPE_LAUNCH_MICROS)
            .ok()
            .flatten()
            .and_then(|text| text.parse().ok());
        self.timings.start_us = Some(micros(self.began.elapsed()));
        // The function runs in `hype.function`, a child of the caller's
        // trace context when it came along (`crate::trace`).
        let span = crate::trace::function_span(&envelope.function, &self.execution_id);
        let function_began = std::time::Instant::now();
        let executed = span.in_scope(|| registration.execute(&arguments));
        self.timings.function_us = Some(micros(function_began.elapsed()));
        drop(span);
        Ok(Done::Here(match executed {
            Executed::Returned(bytes) => Outcome::Returned(self.result_payload(bytes)?),
            Executed::Panicked { message, location } => Outcome::Panicked { message, location },
            Executed::Failed(failure) => Outcome::Failed(failure),
        }))
    }

    /// Passes on what a launched executable wrote and its exit code. When
    /// it wrote no outcome, none is written: the runner then reports how it
    /// ended, as for any execution that wrote none.
    fn pass_on(&mut self, launched: Launched) -> i32 {
        let Some(text) = launched.message else {
            return launched.exit_code;
        };
        match &self.termination_path {
            Some(path) => {
                if let Err(err) = std::fs::write(path, text) {
                    say!(
                        "hype-run: cannot write the outcome to {}: {err}",
                        path.display()
                    );
                    return EXIT_OUTCOME_UNWRITABLE;
                }
            }
            None => self.message = Some(text),
        }
        launched.exit_code
    }

    fn load_call(&self, call_text: &str) -> Result<CallEnvelope, Error> {
        let bytes = match Reference::parse(call_text)
            .map_err(|err| Error::malformed("call", err.to_string()))?
        {
            Reference::Inline(bytes) => bytes,
            Reference::Object(uri) => {
                let store = self.store_for(&uri)?;
                let bytes = runtime()?.block_on(store.get_object(&uri))?;
                if let Some(hex) = staging::digest_in_uri(&uri) {
                    let blob = wire::BlobRef::new(uri.clone(), bytes.len() as u64, hex);
                    staging::verify(&blob, &bytes)?;
                }
                bytes
            }
        };
        wire::decode_call(&bytes)
    }

    /// The store an object URI lives in: the call's staging location when
    /// the URI is under it, else the store its scheme names.
    fn store_for(&self, uri: &str) -> Result<Arc<dyn Staging>, Error> {
        if let Some(store) = &self.staging
            && uri.starts_with(store.location())
        {
            return Ok(store.clone());
        }
        match uri.rsplit_once("/blobs/sha256/") {
            Some((location, _)) => staging::open(location),
            None => staging::open(&parent_location(uri)),
        }
    }

    fn result_payload(&self, bytes: Vec<u8>) -> Result<Payload, Error> {
        let probe = OutcomeEnvelope::new(
            self.function.clone(),
            self.execution_id.clone(),
            Outcome::Returned(Payload::Inline(wire::Bytes::new())),
        )
        .with_timings(self.timings);
        let overhead = wire::encode_outcome(&probe)?.len() + 5;
        if wire::inline_text_len(overhead + bytes.len()) <= TERMINATION_MESSAGE_LIMIT {
            return Ok(Payload::Inline(wire::Bytes::from(bytes)));
        }
        let Some(store) = &self.staging else {
            return Err(Error::Staging {
                operation: "write",
                uri: String::new(),
                message: format!(
                    "the result ({} bytes) is too large for a termination message and the call names no staging location",
                    bytes.len()
                ),
                source: None,
            });
        };
        Ok(Payload::Staged(runtime()?.block_on(store.put_blob(bytes))?))
    }

    fn fail(&mut self, err: &Error) -> i32 {
        self.finish(Outcome::Failed(Failure::from_error(err)))
    }

    /// Writes the outcome and gives the exit code.
    fn finish(&mut self, outcome: Outcome) -> i32 {
        let code = match &outcome {
            Outcome::Returned(_) => EXIT_RETURNED,
            Outcome::Panicked { message, location } => {
                say!(
                    "hype-run: remote function {} panicked{}: {}",
                    self.function,
                    location
                        .as_deref()
                        .map(|l| format!(" at {l}"))
                        .unwrap_or_default(),
                    one_line(message)
                );
                EXIT_PANICKED
            }
            Outcome::Failed(failure) => {
                let err = failure
                    .clone()
                    .into_error(&self.function, &self.execution_id);
                say!("hype-run: {}", one_line(&err.to_string()));
                failure.exit_code()
            }
        };
        let mut envelope =
            OutcomeEnvelope::new(self.function.clone(), self.execution_id.clone(), outcome);
        if self.timings != wire::Timings::default() {
            envelope = envelope.with_timings(self.timings);
        }
        let written = self
            .outcome_text(&envelope)
            .and_then(|text| match &self.termination_path {
                Some(path) => std::fs::write(path, text)
                    .map_err(|err| Error::staging_io("write", path.display().to_string(), err)),
                None => {
                    self.message = Some(text);
                    Ok(())
                }
            });
        match written {
            Ok(()) => code,
            Err(err) => {
                let path = self
                    .termination_path
                    .as_deref()
                    .unwrap_or(std::path::Path::new("memory"));
                say!(
                    "hype-run: cannot write the outcome to {}: {}",
                    path.display(),
                    one_line(&err.to_string())
                );
                EXIT_OUTCOME_UNWRITABLE
            }
        }
    }

    /// The termination message for an outcome: inline when it fits, else
    /// the URI of a staged outcome object.
    fn outcome_text(&self, envelope: &OutcomeEnvelope) -> Result<String, Error> {
        let bytes = wire::encode_outcome(envelope)?;
        let text = if wire::inline_text_len(bytes.len()) <= TERMINATION_MESSAGE_LIMIT {
            Reference::Inline(bytes).to_string()
        } else if let Some(store) = &self.staging {
            runtime()?.block_on(store.put_outcome(&self.execution_id, bytes))?
        } else {
            // No store: keep the envelope inline by shortening what can be shortened.
            let mut envelope = envelope.clone();
            if let Outcome::Panicked { message, .. } = &mut envelope.outcome {
                message.truncate(wire::FAILURE_MESSAGE_LIMIT);
            }
            Reference::Inline(wire::encode_outcome(&envelope)?).to_string()
        };
        Ok(text)
    }
}

/// A duration in whole microseconds, saturating.
/// Up to `n` of `ids`, those sharing the longest prefix with `wanted`
/// first (its module's functions before others), then by name: what an
/// unknown function's error lists.
fn closest(ids: Vec<&str>, wanted: &str, n: usize) -> Vec<String> {
    let shared = |id: &str| {
        id.bytes()
            .zip(wanted.bytes())
            .take_while(|(a, b)| a == b)
            .count()
    };
    let mut ids = ids;
    ids.sort_by(|a, b| shared(b).cmp(&shared(a)).then(a.cmp(b)));
    ids.into_iter().take(n).map(str::to_owned).collect()
}

fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn parent_location(uri: &str) -> String {
    match uri.rsplit_once('/') {
        // `file:///tmp`: the parent is the root, `file:///`.
        Some((parent, _)) if parent.ends_with("://") => format!("{parent}/"),
        Some((parent, _)) => parent.to_owned(),
        None => String::new(),
    }
}

/// Refuses a staged reference outside the call's staging location, when
/// the call names one: a call's objects all live in its own store.
fn check_under(location: Option<&str>, what: &str, uri: &str) -> Result<(), Error> {
    let Some(location) = location else {
        return Ok(());
    };
    let root = format!("{}/", location.trim_end_matches('/'));
    if uri.starts_with(&root) {
        return Ok(());
    }
    Err(Error::malformed(
        "call",
        format!("its {what} {uri} lies outside the call's staging location {location}"),
    ))
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_functions_error_lists_its_modules_functions_first() {
        let ids = vec!["a::z", "m::add", "b::c", "m::mul", "m::sub::x"];
        assert_eq!(
            closest(ids.clone(), "m::subtract", 3),
            ["m::sub::x", "m::add", "m::mul"]
        );
        assert_eq!(closest(ids, "q", 2), ["a::z", "b::c"]);
    }
}
