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
//! | 64–74 | the call could not be run; see [`Failure::exit_code`] (a failure outcome is written when possible) |
//! | 72 | the outcome itself could not be written |
//!
//! Every failure also prints one line starting `hype-run:` on stderr.
//! `hype-run --list` prints the registered functions and their signatures.
//!
//! ## Dying with the parent (Linux)
//!
//! A process that starts `hype-run` on this machine (the local runner, a
//! launcher starting a shipped executable) arms it with
//! `die_with_this_process` so that nothing it started outlives it, even
//! when it is killed with SIGKILL and runs no code of its own:
//!
//! 1. Before the fork it records its PID in `HYPE_PARENT_PID`. In the
//!    forked child, before exec, `prctl(PR_SET_PDEATHSIG, SIGRTMIN+4)` asks
//!    the kernel for that signal when the parent dies, and `getppid()` is
//!    compared with the recorded PID: a parent that died before the `prctl`
//!    (the signal would never come) makes the child `_exit` at once. The
//!    signal is a real-time one that nothing else sends, so its arrival
//!    alone means "the parent is dying"; its default action ends the
//!    process, which covers the moment before `hype-run` has a handler.
//! 2. `hype-run` starts, before it runs anything, by installing a handler
//!    for the signal `PR_GET_PDEATHSIG` reports (only when one is set, so a
//!    `HYPE_PARENT_PID` inherited by an unrelated descendant is ignored),
//!    then checks `getppid()` again. The handler kills the child's whole
//!    process group with SIGKILL: the function's own children (a `sleep`
//!    it started) die with it. It does so only when the group is the
//!    call's own: the child leads it (the local runner puts each child in
//!    a process group of its own) or its parent does (a launcher the local
//!    runner started); in a group someone else leads (a shell's job, a
//!    test harness that started a launcher) it kills only itself. SIGTERM
//!    and SIGINT keep their meaning.
//! 3. The kernel sends the signal when the *thread* that forked exits, not
//!    only the process: when a multi-threaded parent dies, its threads end
//!    one by one, the children are first handed to a surviving thread (so
//!    `getppid()` does not change yet) and the signal comes then. The
//!    handler therefore does not look at `getppid()`, and no forking thread
//!    may end before its process does: the local runner forks on one
//!    thread that lives as long as the process; the launcher forks on the
//!    thread that then waits for the child, so that thread outlives it.
//!
//! A process that leaves the group (`setsid`, its own `setpgid`) escapes;
//! a function that installs its own handler for that signal replaces this
//! one. Elsewhere than Linux only the process group remains: the runner
//! kills it on timeout, cancellation and close, but not when it is killed
//! itself.

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
pub use crate::wire::HYPE_RUN;
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

/// If this process was started as `hype-run` (argv[0] basename `hype-run`,
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

/// Executes `hype-run` with the arguments after `hype-run` and returns the
/// exit code.
pub fn run(args: &[OsString]) -> i32 {
    watch_parent();
    invoke::install_panic_hook();
    let mut ctx = Context {
        execution_id: config::execution_id(),
        termination_path: Some(config::termination_message_path()),
        function: String::new(),
        staging: None,
        message: None,
        forward_signals: true,
    };

    let call_text = match parse_args(args) {
        Ok(Command::List) => return list(),
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

enum Command {
    List,
    Run(String),
}

fn parse_args(args: &[OsString]) -> Result<Command, Error> {
    let usage = "usage: hype-run inline:<base64> | hype-run <staging URI> | hype-run --list";
    match args {
        [one] if one == "--list" => Ok(Command::List),
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

fn list() -> i32 {
    match Registry::global() {
        Ok(registry) => {
            let mut out = std::io::stdout().lock();
            for id in registry.ids() {
                if let Some(reg) = registry.get(id) {
                    let _ = writeln!(out, "{id}\t{:016x}", reg.signature());
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
                )
                .map(Done::Launched);
            }
        }
        let registry = Registry::global()?;
        let Some(registration) = registry.get(&envelope.function) else {
            return Err(Error::UnknownFunction {
                function: envelope.function.clone(),
                execution_id: self.execution_id.clone(),
                known: registry
                    .ids()
                    .into_iter()
                    .take(20)
                    .map(str::to_owned)
                    .collect(),
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
        Ok(Done::Here(match registration.execute(&arguments) {
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
        );
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
        let envelope =
            OutcomeEnvelope::new(self.function.clone(), self.execution_id.clone(), outcome);
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

pub(crate) use crate::config::HYPE_PARENT_PID;

/// The parent-death signal `die_with_this_process` asks for: a real-time
/// signal nothing else sends (see the module docs).
#[cfg(target_os = "linux")]
fn parent_death_signal() -> libc::c_int {
    libc::SIGRTMIN() + 4
}

/// Arms `command` to die with this process (Linux; elsewhere nothing):
/// `HYPE_PARENT_PID`, the parent-death signal, and the check that this
/// process still lived when it was set. The thread that spawns `command`
/// must live as long as this process. See the module docs.
pub(crate) fn die_with_this_process(command: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt as _;
        let parent = std::process::id();
        let signal = parent_death_signal();
        command.env(HYPE_PARENT_PID, parent.to_string());
        // SAFETY: the hook runs in the forked child before exec; `arm`
        // only makes async-signal-safe system calls and allocates nothing.
        unsafe {
            command.pre_exec(move || arm(parent, signal));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// [`die_with_this_process`], with the exec done by the hook itself,
/// `execve(program, argv, environment)`, instead of by std's `execvp`,
/// which runs a file the kernel refuses (ENOEXEC) with `/bin/sh` instead of
/// failing: a launcher must report that refusal. `argv` is the whole
/// argument vector, `argv[0]` first; the environment is this process's
/// with the command's own settings (it must not `env_clear`). Elsewhere
/// than Linux, nothing (std's spawn reports ENOEXEC there).
pub(crate) fn die_with_this_process_exec(
    command: &mut std::process::Command,
    program: &std::path::Path,
    argv: &[&std::ffi::OsStr],
) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt as _;
        let parent = std::process::id();
        let signal = parent_death_signal();
        command.env(HYPE_PARENT_PID, parent.to_string());
        let mut env: std::collections::BTreeMap<OsString, OsString> = std::env::vars_os().collect();
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => env.insert(key.to_owned(), value.to_owned()),
                None => env.remove(key),
            };
        }
        let exec = Exec::new(program, argv, &env)?;
        // SAFETY: the hook runs in the forked child before exec; `arm` and
        // execve(2) are async-signal-safe, and every pointer was made
        // before the fork (nothing is allocated after it).
        unsafe {
            command.pre_exec(move || {
                // The whole value, not its fields (which are not Send).
                let exec = &exec;
                arm(parent, signal)?;
                libc::execve(
                    exec.program.as_ptr(),
                    exec.argv.as_ptr(),
                    exec.envp.as_ptr(),
                );
                Err(std::io::Error::last_os_error())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (command, program, argv);
    Ok(())
}

/// `execve`'s arguments, made before the fork.
#[cfg(target_os = "linux")]
struct Exec {
    program: std::ffi::CString,
    /// What `argv` and `envp` point into.
    _strings: Vec<std::ffi::CString>,
    /// NULL-terminated.
    argv: Vec<*const libc::c_char>,
    /// NULL-terminated.
    envp: Vec<*const libc::c_char>,
}

// SAFETY: the pointers point into the `CString`s this value owns, whose
// buffers never move or change; they are only read (in the forked child).
#[cfg(target_os = "linux")]
unsafe impl Send for Exec {}
// SAFETY: as above.
#[cfg(target_os = "linux")]
unsafe impl Sync for Exec {}

#[cfg(target_os = "linux")]
impl Exec {
    fn new(
        program: &std::path::Path,
        argv: &[&std::ffi::OsStr],
        env: &std::collections::BTreeMap<OsString, OsString>,
    ) -> std::io::Result<Exec> {
        use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
        let c_string = |bytes: Vec<u8>| {
            std::ffi::CString::new(bytes).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "an argument or environment variable holds a NUL byte",
                )
            })
        };
        let program = c_string(program.as_os_str().as_bytes().to_vec())?;
        let args = argv
            .iter()
            .map(|arg| c_string(arg.as_bytes().to_vec()))
            .collect::<std::io::Result<Vec<_>>>()?;
        let vars = env
            .iter()
            .map(|(key, value)| {
                let mut pair = key.clone().into_vec();
                pair.push(b'=');
                pair.extend_from_slice(value.as_bytes());
                c_string(pair)
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let pointers = |strings: &[std::ffi::CString]| {
            strings
                .iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        let argv = pointers(&args);
        let envp = pointers(&vars);
        let mut strings = args;
        strings.extend(vars);
        Ok(Exec {
            program,
            _strings: strings,
            argv,
            envp,
        })
    }
}

/// In a forked child before exec: sets the parent-death signal, and ends
/// the child if `parent` died before (no signal would come then).
///
/// # Safety
///
/// Only for a `pre_exec` hook: it makes async-signal-safe system calls
/// (prctl, getppid, _exit) and allocates nothing.
#[cfg(target_os = "linux")]
unsafe fn arm(parent: u32, signal: libc::c_int) -> std::io::Result<()> {
    // SAFETY: plain system calls; see the function's contract.
    unsafe {
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            signal as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if libc::getppid() as u32 != parent {
            libc::_exit(128 + signal);
        }
    }
    Ok(())
}

/// Whether the parent-death signal kills this process's whole group (the
/// group is the call's own) or this process only.
#[cfg(target_os = "linux")]
static KILL_GROUP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Kills what dies with the parent: this process's whole process group
/// when it is the call's own, else this process only. Async-signal-safe.
#[cfg(target_os = "linux")]
fn die() {
    // SAFETY: kill(2) of this process's own group (PID 0), or of itself.
    unsafe {
        if KILL_GROUP.load(std::sync::atomic::Ordering::SeqCst) {
            libc::kill(0, libc::SIGKILL);
        }
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

/// The parent-death signal: the parent is dying, so is this group.
#[cfg(target_os = "linux")]
extern "C" fn on_parent_death(_signal: libc::c_int) {
    die();
}

/// When this `hype-run` was armed to die with its parent (Linux): installs
/// the handler of the parent-death signal and checks that the parent still
/// lives, before anything else runs. See the module docs.
fn watch_parent() {
    #[cfg(target_os = "linux")]
    {
        let Some(parent) = std::env::var(HYPE_PARENT_PID)
            .ok()
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            return;
        };
        let mut signal: libc::c_int = 0;
        // SAFETY: PR_GET_PDEATHSIG writes one int through the pointer.
        let rc = unsafe { libc::prctl(libc::PR_GET_PDEATHSIG, &mut signal as *mut libc::c_int) };
        if rc != 0 || signal == 0 {
            // Inherited from an ancestor, not set by our own parent.
            return;
        }
        // The group is the call's own when this process leads it (the
        // local runner's child) or the parent does (a launcher the local
        // runner started); a group someone else leads (a shell's job, a
        // test harness's) is not killed.
        // SAFETY: getpgrp and getpid cannot fail.
        let (group, me) = unsafe { (libc::getpgrp(), libc::getpid()) };
        let own_group = group == me || u32::try_from(group).is_ok_and(|g| g == parent);
        KILL_GROUP.store(own_group, std::sync::atomic::Ordering::SeqCst);
        // SAFETY: installs a handler that only calls kill(2).
        unsafe {
            libc::signal(signal, on_parent_death as *const () as libc::sighandler_t);
        }
        // SAFETY: getppid cannot fail.
        if unsafe { libc::getppid() } as u32 != parent {
            die();
        }
    }
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
