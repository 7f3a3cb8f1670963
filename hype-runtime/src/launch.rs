//! The launcher half of `hype-run`: a call that names an executable other
//! than this one is run by that executable. `hype-run` fetches it from
//! staging into a cache directory, verifies it, starts it on the same call
//! (passing SIGTERM and SIGINT on), and hands back what it wrote. A generic
//! env image then holds only a launcher, and the program's own binary
//! travels with its calls.
//!
//! The executable dies with the launcher (Linux): it is armed with the
//! parent-death signal like every `hype-run` the local runner starts, and
//! then kills its process group (which it shares with the launcher). A
//! launcher the local runner started is armed itself, so when the
//! submitter dies the whole group goes. See [`crate::process`], "Dying with
//! the parent".
//!
//! The executable runs with `HYPE_LAUNCHED=<its digest>`: a launched
//! `hype-run` whose call names that digest runs the call itself without
//! hashing its own file, and one that is asked to launch again refuses (the
//! loop guard). Skipping the hash is sound because the launcher starts
//! only what it verified: a fresh fetch is hashed on the way in, and a
//! cached copy is used only when its verification record matches it, in a
//! directory only this user can write (see [`cache`]).

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustix::io::Errno;

use crate::config;
use crate::error::Error;
use crate::executable;
use crate::invoke::runtime;
use crate::retry::{self, Doubling};
use crate::staging::Staging;
use crate::wire::{BlobRef, HYPE_RUN};

mod cache;
mod forward;

use cache::Cache;

/// What to do with a call that names `executable`.
pub(crate) enum Plan {
    /// This binary is that executable: run the call here.
    RunHere,
    /// Run it with this other executable, fetched to this path.
    Launch(PathBuf),
}

/// How a launched executable ended.
pub(crate) struct Launched {
    /// The termination message it wrote, if it wrote one.
    pub message: Option<String>,
    /// The exit code to end with (128 + n for a death by signal n).
    pub exit_code: i32,
}

/// Whether this binary is the executable `blob` names, and if not, the
/// cached copy of it (fetched from `store` when not cached yet).
pub(crate) fn plan(
    blob: &BlobRef,
    store: &Arc<dyn Staging>,
    execution_id: &str,
) -> Result<Plan, Error> {
    if let Some(launched) = config::var(config::HYPE_LAUNCHED)? {
        if launched.eq_ignore_ascii_case(&blob.sha256) {
            return Ok(Plan::RunHere);
        }
        return Err(Error::BadInvocation {
            message: format!(
                "this hype-run was launched as executable {launched}, but its call names {}: refusing to launch again",
                blob.sha256
            ),
        });
    }
    if is_this_binary(blob) {
        return Ok(Plan::RunHere);
    }
    fetch(blob, store, execution_id).map(Plan::Launch)
}

/// Whether this process's own executable is the blob: compared by length
/// first, so a launcher hashes itself only when the lengths agree.
fn is_this_binary(blob: &BlobRef) -> bool {
    let Ok(own) = std::env::current_exe() else {
        return false;
    };
    if std::fs::metadata(&own).map(|m| m.len()).ok() != Some(blob.len) {
        return false;
    }
    executable::hash_file(&own).is_ok_and(|d| d.sha256.eq_ignore_ascii_case(&blob.sha256))
}

/// The cached copy of `blob` in `HYPE_CACHE_DIR` (see [`cache`]): reused
/// when trusted, else fetched to a temporary file in the same directory,
/// verified by length and SHA-256, made executable (0755), renamed into
/// place (so no reader sees half an executable) and recorded as verified.
pub(crate) fn fetch(
    blob: &BlobRef,
    store: &Arc<dyn Staging>,
    execution_id: &str,
) -> Result<PathBuf, Error> {
    if blob.sha256.len() != 64 || !blob.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::malformed(
            "call",
            format!(
                "the executable's digest {:?} is not 64 hex digits",
                blob.sha256
            ),
        ));
    }
    let cache = Cache::open(config::cache_dir())?;
    if let Some(trusted) = cache.lookup(blob) {
        return Ok(trusted);
    }
    let sha256 = blob.sha256.to_ascii_lowercase();
    let cached = cache.entry(&sha256);
    let cache_error =
        |err| cache::cache_error(cache.dir(), "cannot write the executable cache", err);
    let tmp = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempfile_in(cache.dir())
        .map_err(cache_error)?;
    let fetched = runtime()?.block_on(store.get_blob_to_file(blob, tmp.path()));
    match fetched {
        Ok(()) => {}
        Err(Error::StagedObjectMissing { uri }) => {
            return Err(Error::ExecutableMissing {
                execution_id: execution_id.to_owned(),
                uri,
            });
        }
        Err(err @ Error::DigestMismatch { .. }) => {
            return Err(Error::ExecutableCorrupt {
                execution_id: execution_id.to_owned(),
                uri: blob.uri.clone(),
                message: err.to_string(),
            });
        }
        Err(err) => return Err(err),
    }
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(cache_error)?;
    // Closed before it is renamed into place: a file open for writing
    // cannot be executed (ETXTBSY), and another launcher sharing the cache
    // may start it the moment it appears. Opened for reading first, so
    // the record names the file that was verified, whatever is at the
    // path by the time it is written.
    let verified = cache::open_entry(tmp.path()).map_err(cache_error)?;
    tmp.into_temp_path()
        .persist(&cached)
        .map_err(|err| cache_error(err.error))?;
    cache.verified(&sha256, &verified);
    Ok(cached)
}

/// How long the launcher waits for the end of a finished executable's
/// stderr.
const STDERR_DRAIN: Duration = Duration::from_secs(2);

/// How many bytes of the launched executable's stderr are kept to explain
/// a failure to start.
const STDERR_KEPT: usize = 4096;

/// The longest piece of a line without end the launcher holds back
/// before passing it on.
const LINE_BOUND: usize = 64 * 1024;

/// Runs `executable` as `hype-run <call>` with `HYPE_LAUNCHED` set, its
/// termination message redirected to a private file, its stdout and stdin
/// inherited and its stderr passed through line by line (the start kept). A failure to
/// start (the kernel's ENOEXEC, a missing ELF interpreter, the dynamic
/// loader's refusal) is [`Error::ExecutableCannotStart`] with the loader's
/// own message; any other end is the child's own exit code and message.
/// `launch_us` (how long the launcher took to get here, fetching the
/// executable) goes to it as `HYPE_LAUNCH_MICROS`, for its outcome's
/// timings. `forward` installs signal forwarding (a real `hype-run` process; not
/// for calls run inside another program).
pub(crate) fn run(
    executable: &Path,
    call: &str,
    blob: &BlobRef,
    execution_id: &str,
    forward: bool,
    launch_us: u64,
) -> Result<Launched, Error> {
    let cannot_start = |message: String| Error::ExecutableCannotStart {
        execution_id: execution_id.to_owned(),
        image: config::image(),
        message,
    };
    let message_file = tempfile::Builder::new()
        .prefix(".outcome-")
        .tempfile()
        .map_err(|err| Error::staging_io("write", "a temporary termination message", err))?;
    let mut command = Command::new(executable);
    command
        .arg0(HYPE_RUN)
        .arg(call)
        .env(config::HYPE_LAUNCHED, blob.sha256.to_ascii_lowercase())
        .env(config::HYPE_LAUNCH_MICROS, launch_us.to_string())
        .env(config::HYPE_EXECUTION_ID, execution_id)
        .env(config::HYPE_TERMINATION_MESSAGE_PATH, message_file.path())
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    // This thread waits for the child below, so it outlives it: the
    // parent-death signal (sent when the forking thread ends) comes only
    // when this process dies.
    crate::process::die_with_this_process_exec(
        &mut command,
        executable,
        &[HYPE_RUN.as_ref(), call.as_ref()],
    )
    .map_err(|err| cannot_start(format!("cannot start {}: {err}", executable.display())))?;
    if forward {
        forward::install();
    }
    let mut child = match spawn(&mut command) {
        Ok(child) => child,
        Err(err) => {
            let message = match err.raw_os_error().map(Errno::from_raw_os_error) {
                Some(Errno::NOEXEC) => format!("exec format error (ENOEXEC): {err}"),
                Some(Errno::NOENT) if executable.exists() => format!(
                    "its ELF interpreter (the dynamic loader it was linked against) is not in this image ({err}); build it static (musl) or for this image's C library"
                ),
                _ => format!("cannot start {}: {err}", executable.display()),
            };
            return Err(cannot_start(message));
        }
    };
    let pid = child.id() as i32;
    if forward {
        forward::started(pid);
    }
    let (kept_tx, kept) = std::sync::mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let _ = kept_tx.send(pass_through(stderr, &mut std::io::stderr()));
        });
    }
    if forward {
        // Waited for without reaping it first, so that no signal goes to
        // its pid once the kernel may reuse it.
        wait_unreaped(pid);
        forward::ended();
    }
    let status = child.wait();
    // A process the executable started may hold its stderr open: wait for
    // the end of the pipe a little, not for ever.
    let stderr_start = kept.recv_timeout(STDERR_DRAIN).unwrap_or_default();
    let status = status.map_err(|err| cannot_start(format!("cannot wait for it: {err}")))?;
    let message = std::fs::read_to_string(message_file.path())
        .ok()
        .filter(|m| !m.trim().is_empty());
    let exit_code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    if message.is_none()
        && exit_code == 127
        && let Some(reason) = loader_failure(&stderr_start)
    {
        return Err(cannot_start(reason));
    }
    Ok(Launched { message, exit_code })
}

/// Waits until the child `pid` has ended, leaving it to be reaped.
fn wait_unreaped(pid: i32) {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    let options = rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOWAIT;
    while let Err(rustix::io::Errno::INTR) =
        rustix::process::waitid(rustix::process::WaitId::Pid(pid), options)
    {}
}

/// Starts the command, trying again a few times while the file is busy
/// (ETXTBSY: a process that forked while another thread had it open for
/// writing still holds it, for the moment before its exec): 20 more
/// tries, 25 ms apart.
fn spawn(command: &mut Command) -> std::io::Result<std::process::Child> {
    const BUSY: Doubling = Doubling::new(Duration::from_millis(25), Duration::from_millis(25));
    retry::blocking(
        BUSY,
        21,
        || command.spawn(),
        |err| err.raw_os_error() == Some(Errno::TXTBSY.raw_os_error()),
    )
}

/// Copies `from` to `to` as it arrives and gives back its first
/// [`STDERR_KEPT`] bytes.
fn pass_through(mut from: impl std::io::Read, to: &mut impl std::io::Write) -> Vec<u8> {
    let mut kept = Vec::new();
    // What came after the last line end, held back until its line ends
    // (or grows to the bound): the executable's stdout shares the log, and
    // must not land inside one of these lines.
    let mut line = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                for piece in buf[..n].split_inclusive(|&b| b == b'\n') {
                    line.extend_from_slice(piece);
                    if piece.ends_with(b"\n") || line.len() >= LINE_BOUND {
                        for whole in line.chunks(LINE_BOUND) {
                            let _ = to.write_all(whole);
                        }
                        line.clear();
                    }
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if !line.is_empty() {
        let _ = to.write_all(&line);
    }
    let _ = to.flush();
    kept
}

/// The dynamic loader's complaint in what an executable printed before it
/// exited with 127, if that is what it is.
pub(crate) fn loader_failure(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().find(|line| {
        line.contains("error while loading shared libraries")
            || (line.contains("version `GLIBC") && line.contains("not found"))
            || line.contains("not found (required by")
            || line.contains("cannot execute binary file")
            || line.contains("Exec format error")
    })?;
    Some(line.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_messages_are_recognised() {
        let glibc = b"/cache/abc: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.39' not found (required by /cache/abc)\n";
        assert!(loader_failure(glibc).unwrap().contains("GLIBC_2.39"));
        let lib = b"/cache/abc: error while loading shared libraries: libssl.so.3: cannot open shared object file: No such file or directory\n";
        assert!(loader_failure(lib).unwrap().contains("libssl.so.3"));
        assert_eq!(
            loader_failure(b"thread 'main' panicked at src/main.rs\n"),
            None
        );
        assert_eq!(loader_failure(b""), None);
    }

    /// A writer that records each write it gets.
    struct Writes(Vec<Vec<u8>>);

    impl std::io::Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A reader that gives its pieces one read each, as a pipe does when
    /// `eprintln!` writes a line in several pieces.
    struct Pieces(std::collections::VecDeque<&'static [u8]>);

    impl std::io::Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some(piece) = self.0.pop_front() else {
                return Ok(0);
            };
            let n = piece.len().min(buf.len());
            buf[..n].copy_from_slice(&piece[..n]);
            if n < piece.len() {
                self.0.push_front(&piece[n..]);
            }
            Ok(n)
        }
    }

    /// Each line reaches the log in one write, however the executable
    /// wrote it: the executable's stdout shares the log, so a line passed
    /// on in pieces would have stdout lines inside it.
    #[test]
    fn pass_through_writes_each_line_whole() {
        let from = Pieces(
            [
                &b"tag"[..],
                b" err ",
                b"20",
                b"\nnext\nand a ",
                b"tail",
                b" without end",
            ]
            .into(),
        );
        let mut to = Writes(Vec::new());
        pass_through(from, &mut to);
        assert_eq!(
            to.0,
            [&b"tag err 20\n"[..], b"next\n", b"and a tail without end"]
        );
        // A line longer than the bound goes on in pieces of the bound.
        let long: &'static [u8] = Box::leak(vec![b'y'; LINE_BOUND + 10].into_boxed_slice());
        let mut to = Writes(Vec::new());
        pass_through(Pieces([long, &b"\n"[..]].into()), &mut to);
        assert_eq!(to.0.concat(), [long, b"\n"].concat());
        assert!(
            to.0.iter().all(|w| w.len() <= LINE_BOUND),
            "{:?}",
            to.0.len()
        );
    }

    #[test]
    fn pass_through_copies_everything_and_keeps_the_start() {
        let input = vec![b'x'; 3 * STDERR_KEPT];
        let mut out = Vec::new();
        let kept = pass_through(&input[..], &mut out);
        assert_eq!(out, input);
        assert_eq!(kept.len(), STDERR_KEPT);
    }
}
