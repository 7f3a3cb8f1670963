//! Temporary directories hype owns (the embedded default's staging area,
//! the local runner's per-session directory, transient local volumes):
//! removed when their owner is dropped or closed, and, for owners that live
//! until the process exits (the default submitter is a `static`, and statics
//! are never dropped), when the process exits normally.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

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

/// Removes `path` now and forgets it.
pub(crate) fn remove_now(path: &Path) -> std::io::Result<()> {
    if let Ok(mut pending) = PENDING.lock() {
        pending.retain(|p| p != path);
    }
    match std::fs::remove_dir_all(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Makes a fresh directory under the system temp dir, registered for
/// removal at exit.
pub(crate) fn temp_dir(prefix: &str) -> std::io::Result<PathBuf> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?.keep();
    remove_at_exit(&dir);
    Ok(dir)
}
