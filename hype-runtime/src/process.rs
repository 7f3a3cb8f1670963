//! Processes hype starts die with it: the child processes of the local
//! runner and the executables a launcher starts (Linux). Used by both, and
//! by `hype-run` when it starts.
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

#[cfg(target_os = "linux")]
use std::ffi::OsString;

#[cfg(target_os = "linux")]
use rustix::process::{Pid, Signal};

pub(crate) use crate::config::HYPE_PARENT_PID;

/// The parent-death signal `die_with_this_process` asks for: a real-time
/// signal nothing else sends (see the module docs).
#[cfg(target_os = "linux")]
fn parent_death_signal() -> Signal {
    // SAFETY: SIGRTMIN + 4 is a real-time signal the C library leaves to
    // programs (its own are below SIGRTMIN), and below SIGRTMAX.
    unsafe { Signal::from_raw_unchecked(libc::SIGRTMIN() + 4) }
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
                // SAFETY: every pointer points into `exec`'s own strings,
                // NUL-terminated, and both vectors end with NULL.
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
    argv: Vec<*const std::ffi::c_char>,
    /// NULL-terminated.
    envp: Vec<*const std::ffi::c_char>,
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
/// the child if `parent` died before (no signal would come then). Only
/// async-signal-safe system calls (prctl, getppid, _exit), no allocation:
/// it runs in a `pre_exec` hook.
#[cfg(target_os = "linux")]
fn arm(parent: u32, signal: Signal) -> std::io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(signal))?;
    if Pid::as_raw(rustix::process::getppid()) as u32 != parent {
        // SAFETY: _exit(2) ends the process at once, running nothing of
        // this one's (no exit handlers, no destructors): what a forked child
        // that must not go on may do.
        unsafe { libc::_exit(128 + signal.as_raw()) }
    }
    Ok(())
}

/// Whether the parent-death signal kills this process's whole group (the
/// group is the call's own) or this process only.
#[cfg(target_os = "linux")]
static KILL_GROUP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Kills what dies with the parent: this process's whole process group
/// when it is the call's own, else this process only. Async-signal-safe:
/// an atomic load and kill(2).
#[cfg(target_os = "linux")]
fn die() {
    if KILL_GROUP.load(std::sync::atomic::Ordering::SeqCst) {
        let _ = rustix::process::kill_current_process_group(Signal::KILL);
    }
    let _ = rustix::process::kill_process(rustix::process::getpid(), Signal::KILL);
}

/// When this `hype-run` was armed to die with its parent (Linux): installs
/// the handler of the parent-death signal and checks that the parent still
/// lives, before anything else runs. See the module docs.
pub(crate) fn watch_parent() {
    #[cfg(target_os = "linux")]
    {
        let Some(parent) = std::env::var(HYPE_PARENT_PID)
            .ok()
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            return;
        };
        let Ok(Some(signal)) = rustix::process::parent_process_death_signal() else {
            // None: inherited from an ancestor, not set by our own parent.
            return;
        };
        // The group is the call's own when this process leads it (the
        // local runner's child) or the parent does (a launcher the local
        // runner started); a group someone else leads (a shell's job, a
        // test harness's) is not killed.
        let (group, me) = (rustix::process::getpgrp(), rustix::process::getpid());
        let own_group = group == me || group.as_raw_pid() as u32 == parent;
        KILL_GROUP.store(own_group, std::sync::atomic::Ordering::SeqCst);
        // A signal no handler can take (a SIGKILL someone else asked for)
        // kills by itself.
        if !signal_hook_registry::FORBIDDEN.contains(&signal.as_raw()) {
            // SAFETY: the action, `die`, is async-signal-safe (an atomic
            // load and kill(2)).
            let _ = unsafe { signal_hook_registry::register(signal.as_raw(), die) };
        }
        if Pid::as_raw(rustix::process::getppid()) as u32 != parent {
            die();
        }
    }
}
