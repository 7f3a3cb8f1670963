//! Temporary directories hype owns (the embedded default's staging area,
//! the local runner's per-session directory, the Docker runner's, transient
//! local volumes): removed when their owner is dropped or closed, and, for
//! owners that live until the process exits (the default submitter is a
//! `static`, and statics are never dropped), when the process exits
//! normally.
//!
//! A process that is killed (SIGKILL, a crash) removes nothing, so each
//! temporary directory is named after its owner:
//! `hype-<kind>-<pid>.<start>.<boot>-XXXXXX` ([`Owner::tag`], then six
//! random characters). The first [`temp_dir`] of every process starts a
//! sweep, on a thread of its own so that no submitter waits for it, of the
//! system temp dir for directories of exactly that form whose owner is
//! [`Liveness::Dead`], and removes them. The sweep reads at most
//! [`SWEEP_ENTRIES`] entries and removes at most [`SWEEP_REMOVALS`]
//! directories (the next start goes on); it never follows a symbolic link,
//! and it leaves alone anything not owned by this user, anything whose
//! owner lives or cannot be told, and every name it does not recognise.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use crate::owner::{Liveness, Owner};

static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// How many entries of the temp dir one sweep reads at most.
const SWEEP_ENTRIES: usize = 10_000;
/// How many stale directories one sweep removes at most.
const SWEEP_REMOVALS: usize = 64;
/// The random characters `tempfile` puts after the prefix.
const RANDOM_LEN: usize = 6;

extern "C" fn remove_pending_at_exit() {
    if let Ok(mut pending) = PENDING.lock() {
        for path in pending.drain(..) {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Removes `path` when the process exits, unless [`remove_now`] did it first.
pub(crate) fn remove_at_exit(path: &Path) {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: `atexit` with a plain `extern "C"` function that never
        // unwinds (it only takes a lock and removes files, ignoring errors).
        unsafe {
            libc::atexit(remove_pending_at_exit);
        }
    });
    if let Ok(mut pending) = PENDING.lock() {
        pending.push(path.to_owned());
    }
}

/// Removes `path` now and forgets it (blocking: from async code, use
/// [`remove`] or [`in_background`]).
pub(crate) fn remove_now(path: &Path) -> std::io::Result<()> {
    let removed = match std::fs::remove_dir_all(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    };
    // Forgotten only once tried, so that removal at exit still covers a
    // removal that never ran (a blocking task cancelled at shutdown).
    if let Ok(mut pending) = PENDING.lock() {
        pending.retain(|p| p != path);
    }
    removed
}

/// Runs blocking filesystem work on tokio's blocking pool, off the async
/// worker threads, and waits for it.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| Err(std::io::Error::other(err)))
}

/// [`remove_now`] on tokio's blocking pool, waited for.
pub(crate) async fn remove(path: PathBuf) -> std::io::Result<()> {
    blocking(move || remove_now(&path)).await
}

/// Runs blocking filesystem work from a `Drop`, which cannot wait: on
/// tokio's blocking pool when dropped inside a runtime (not waited for),
/// else on this thread. What `work` removes stays registered for removal
/// at exit until it is done.
pub(crate) fn in_background(work: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(work);
        }
        Err(_) => work(),
    }
}

/// Makes a fresh directory `<prefix><owner tag>-XXXXXX` under the system
/// temp dir, registered for removal at exit. `prefix` is `hype-<kind>-`,
/// `<kind>` lowercase letters. The first call of the process sweeps the
/// stale directories of dead processes (see the module docs).
pub(crate) fn temp_dir(prefix: &str) -> std::io::Result<PathBuf> {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        let sweep = || {
            sweep_stale(&std::env::temp_dir());
        };
        if std::thread::Builder::new()
            .name("hype-sweep".to_owned())
            .spawn(sweep)
            .is_err()
        {
            sweep();
        }
    });
    let dir = tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", Owner::current().tag()))
        .rand_bytes(RANDOM_LEN)
        .tempdir()?
        .keep();
    remove_at_exit(&dir);
    Ok(dir)
}

/// The owner of a directory named `hype-<kind>-<tag>-XXXXXX`, if the name
/// is exactly of that form.
fn owner_of(name: &str) -> Option<Owner> {
    let rest = name.strip_prefix("hype-")?;
    let (kind, rest) = rest.split_once('-')?;
    if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let (tag, random) = rest.rsplit_once('-')?;
    if random.len() != RANDOM_LEN || !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let owner = Owner::parse_tag(tag)?;
    // Only the tag's own spelling (no leading zeros, no sign).
    (owner.tag() == tag).then_some(owner)
}

/// Removes the directories in `dir` (the system temp dir) that dead hype
/// processes left; gives how many it removed.
fn sweep_stale(dir: &Path) -> usize {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let uid = rustix::process::geteuid().as_raw();
    let mut removed = 0;
    for entry in entries.take(SWEEP_ENTRIES).flatten() {
        if removed == SWEEP_REMOVALS {
            break;
        }
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(owner_of) else {
            continue;
        };
        // `symlink_metadata`: a link is never followed, and is not a dir.
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != uid || owner.liveness() != Liveness::Dead {
            continue;
        }
        // `remove_dir_all` does not follow links inside either.
        if std::fs::remove_dir_all(entry.path()).is_ok() {
            tracing::debug!(dir = %entry.path().display(), %owner, "removed the temporary directory of a dead process");
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_removal_runs_here_without_a_runtime_and_on_the_pool_within_one() {
        let outside = tempfile::tempdir().unwrap().keep();
        in_background({
            let dir = outside.clone();
            move || {
                let _ = remove_now(&dir);
            }
        });
        assert!(!outside.exists(), "no runtime: removed before it returns");

        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let inside = tempfile::tempdir().unwrap().keep();
        let (done, removed) = std::sync::mpsc::channel();
        runtime.block_on(async {
            let dir = inside.clone();
            in_background(move || {
                let thread = std::thread::current().name().map(str::to_owned);
                let _ = remove_now(&dir);
                let _ = done.send(thread);
            });
        });
        let thread = removed
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the removal ran");
        assert_ne!(
            thread,
            std::thread::current().name().map(str::to_owned),
            "not on the thread that dropped"
        );
        assert!(!inside.exists());
    }

    /// A tag of a process that is dead: an exited child's PID, a start time
    /// no process of that PID had.
    fn dead_tag() -> String {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let me = Owner::current().tag();
        let boot = me.rsplit('.').next().unwrap().to_owned();
        format!("{pid}.1.{boot}")
    }

    #[test]
    fn names_are_recognised_exactly() {
        let me = Owner::current().tag();
        assert_eq!(
            owner_of(&format!("hype-local-{me}-aB3xY9")).as_ref(),
            Some(Owner::current())
        );
        for name in [
            format!("hype-local-{me}-aB3xY"),
            format!("hype-local-{me}-aB3xY9z"),
            format!("hype-Local-{me}-aB3xY9"),
            format!("hype--{me}-aB3xY9"),
            format!("hype-local-0{me}-aB3xY9"),
            format!("hype-local-{me}-aB.xY9"),
            format!("other-local-{me}-aB3xY9"),
            "hype-local-aB3xY9".to_owned(),
            "hype-cache".to_owned(),
        ] {
            assert_eq!(owner_of(&name), None, "{name}");
        }
    }

    #[test]
    fn the_sweep_removes_dead_owners_only() {
        let root = tempfile::tempdir().unwrap();
        let me = Owner::current().tag();
        let dead = dead_tag();
        let stale = root.path().join(format!("hype-local-{dead}-abc123"));
        std::fs::create_dir(&stale).unwrap();
        std::fs::write(stale.join("f"), b"x").unwrap();
        let live = root.path().join(format!("hype-staging-{me}-abc123"));
        std::fs::create_dir(&live).unwrap();
        let foreign = root.path().join(format!("mine-{dead}-abc123"));
        std::fs::create_dir(&foreign).unwrap();
        let untagged = root.path().join("hype-local-abc123");
        std::fs::create_dir(&untagged).unwrap();
        // A link named like a stale directory: neither followed nor removed.
        let target = root.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"x").unwrap();
        let link = root.path().join(format!("hype-docker-{dead}-zzz999"));
        std::os::unix::fs::symlink(&target, &link).unwrap();

        assert_eq!(sweep_stale(root.path()), 1);
        assert!(!stale.exists());
        assert!(live.is_dir() && foreign.is_dir() && untagged.is_dir());
        assert!(target.join("keep").is_file());
        assert!(link.symlink_metadata().is_ok());
    }

    #[test]
    fn temp_dirs_carry_the_owner_tag() {
        let dir = temp_dir("hype-local-").unwrap();
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(owner_of(&name).as_ref(), Some(Owner::current()), "{name}");
        remove_now(&dir).unwrap();
    }
}
