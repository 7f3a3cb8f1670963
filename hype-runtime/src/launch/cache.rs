//! The launcher's cache of fetched executables (`HYPE_CACHE_DIR`, by
//! default `$TMPDIR/hype-cache`), and what makes an entry in it trusted.
//!
//! A launched executable runs without hashing itself (`HYPE_LAUNCHED`):
//! it relies on the launcher having verified it. So the cache holds only
//! what this user verified:
//!
//! - The directory is created 0700, and one that is not this user's own,
//!   or that its group or others may write, is refused (on a shared
//!   machine `/tmp/hype-cache` may have been made by someone else).
//! - An entry `<sha256>` is trusted only next to its verification record
//!   `<sha256>.verified`, written (temporary file, then rename) after its
//!   SHA-256 was checked: the digest and the file's (dev, inode, size,
//!   mtime, ctime) at that moment. A file replaced or changed since, even
//!   with the same length, no longer matches its record; it is hashed
//!   again, and fetched again when wrong.
//!
//! The record is checked just before the entry is started, in a directory
//! only this user can write: another user cannot swap the file in
//! between. (This user could, but could run anything as itself anyway.)

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use crate::config;
use crate::error::Error;
use crate::executable;
use crate::wire::BlobRef;

/// The suffix of an entry's verification record.
const RECORD: &str = ".verified";

/// The longest record read back (a real one is about 200 bytes).
const RECORD_LIMIT: u64 = 1024;

/// An opened cache directory: this user's own, writable by no one else.
pub(crate) struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// Creates `dir` (0700) if it does not exist, and checks that it is a
    /// directory (not a symbolic link) owned by this process's user that
    /// neither its group nor others can write.
    pub(crate) fn open(dir: PathBuf) -> Result<Cache, Error> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|err| cache_error(&dir, "cannot create the executable cache", err))?;
        let meta = std::fs::symlink_metadata(&dir)
            .map_err(|err| cache_error(&dir, "cannot read the executable cache", err))?;
        let me = rustix::process::geteuid().as_raw();
        let problem = if meta.file_type().is_symlink() {
            Some("is a symbolic link".to_owned())
        } else if !meta.is_dir() {
            Some("is not a directory".to_owned())
        } else if meta.uid() != me {
            Some(format!(
                "is owned by uid {}, not by this process's uid {me}",
                meta.uid()
            ))
        } else if meta.mode() & 0o022 != 0 {
            Some(format!(
                "can be written by its group or by others (mode {:o})",
                meta.mode() & 0o7777
            ))
        } else {
            None
        };
        match problem {
            None => Ok(Cache { dir }),
            Some(problem) => Err(Error::Staging {
                operation: "use",
                uri: dir.display().to_string(),
                message: format!(
                    "the executable cache {} {problem}: a launcher runs what it finds there, so it must be private to this user. Remove it, make it yours and private (chmod 700), or point {} at a directory only this user can write",
                    dir.display(),
                    config::HYPE_CACHE_DIR
                ),
                source: None,
            }),
        }
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry for `sha256` (lowercase hex) goes.
    pub(crate) fn entry(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    fn record_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}{RECORD}"))
    }

    /// The entry for `blob`, if it can be trusted: its record matches it,
    /// or (no record, or a stale one) it hashes to the blob's digest now,
    /// and then a new record is written. `None` means: fetch it again.
    pub(crate) fn lookup(&self, blob: &BlobRef) -> Option<PathBuf> {
        let sha256 = blob.sha256.to_ascii_lowercase();
        let path = self.entry(&sha256);
        let file = open_entry(&path).ok()?;
        let before = file.metadata().ok()?;
        if !self.may_run(&before) || before.len() != blob.len {
            return None;
        }
        if self.read_record(&sha256).as_deref() == Some(record_text(&sha256, &before).as_str()) {
            return Some(path);
        }
        let digest = executable::hash_reader(&file).ok()?;
        let after = file.metadata().ok()?;
        if digest.sha256 != sha256
            || digest.len != blob.len
            || record_text(&sha256, &after) != record_text(&sha256, &before)
        {
            tracing::debug!(entry = %path.display(), "a cached executable does not match its digest: fetching it again");
            return None;
        }
        self.write_record(&sha256, &after);
        Some(path)
    }

    /// Records that `file`, just renamed into place as the entry for
    /// `sha256`, was verified.
    pub(crate) fn verified(&self, sha256: &str, file: &File) {
        match file.metadata() {
            Ok(meta) => self.write_record(sha256, &meta),
            Err(err) => {
                tracing::debug!(error = %err, "cannot read a fetched executable's metadata")
            }
        }
    }

    /// An entry runs only if it is a regular file of this user's that no
    /// one else may change.
    fn may_run(&self, meta: &std::fs::Metadata) -> bool {
        meta.is_file()
            && meta.uid() == rustix::process::geteuid().as_raw()
            && meta.mode() & 0o022 == 0
    }

    fn read_record(&self, sha256: &str) -> Option<String> {
        let file = open_entry(&self.record_path(sha256)).ok()?;
        let mut text = String::new();
        file.take(RECORD_LIMIT).read_to_string(&mut text).ok()?;
        Some(text)
    }

    /// Writes the record atomically (a temporary file renamed over the
    /// old one). A failure only costs a hash next time.
    fn write_record(&self, sha256: &str, meta: &std::fs::Metadata) {
        let written = tempfile::Builder::new()
            .prefix(".record-")
            .tempfile_in(&self.dir)
            .and_then(|mut tmp| {
                tmp.write_all(record_text(sha256, meta).as_bytes())?;
                tmp.persist(self.record_path(sha256))
                    .map_err(|err| err.error)?;
                Ok(())
            });
        if let Err(err) = written {
            tracing::debug!(error = %err, cache = %self.dir.display(), "cannot write a verification record");
        }
    }
}

/// Opens a cache file for reading, refusing a symbolic link.
pub(crate) fn open_entry(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// What a verification record says: the digest, and the file it was
/// checked on as the kernel identifies it.
fn record_text(sha256: &str, meta: &std::fs::Metadata) -> String {
    format!(
        "hype verified sha256={sha256} dev={} ino={} size={} mtime={}.{:09} ctime={}.{:09}\n",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

/// A failure to use the cache directory itself.
pub(crate) fn cache_error(dir: &Path, what: &str, err: std::io::Error) -> Error {
    Error::Staging {
        operation: "write",
        uri: dir.display().to_string(),
        message: format!(
            "{what} ({}): {err}; point {} at a writable directory",
            dir.display(),
            config::HYPE_CACHE_DIR
        ),
        source: Some(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn blob_of(path: &Path) -> BlobRef {
        let digest = executable::hash_file(path).unwrap();
        BlobRef::new("file:///unused", digest.len, digest.sha256)
    }

    #[test]
    fn a_new_directory_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("a/b")).unwrap();
        let mode = std::fs::metadata(cache.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_symbolic_link_or_a_group_writable_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o770)).unwrap();
        let err = Cache::open(open.clone()).err().unwrap().to_string();
        assert!(err.contains(&open.display().to_string()), "{err}");
        assert!(err.contains("mode 770"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        let err = Cache::open(link).err().unwrap().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }

    #[test]
    fn an_entry_is_trusted_by_its_record_and_rehashed_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("cache")).unwrap();
        let source = dir.path().join("exe");
        std::fs::write(&source, b"the executable").unwrap();
        let blob = blob_of(&source);
        let entry = cache.entry(&blob.sha256);
        assert_eq!(cache.lookup(&blob), None, "nothing cached yet");

        // Right bytes, no record: hashed, then recorded.
        std::fs::copy(&source, &entry).unwrap();
        assert_eq!(cache.lookup(&blob), Some(entry.clone()));
        let record = cache.read_record(&blob.sha256).unwrap();
        assert!(record.contains(&blob.sha256), "{record}");

        // Replaced by other bytes of the same length: the record no longer
        // matches (another inode), and the hash is wrong.
        let other = dir.path().join("other");
        std::fs::write(&other, b"THE EXECUTABLE").unwrap();
        std::fs::rename(&other, &entry).unwrap();
        assert_eq!(cache.lookup(&blob), None);

        // Changed in place, same length: mtime and ctime move.
        std::fs::copy(&source, &entry).unwrap();
        assert_eq!(cache.lookup(&blob), Some(entry.clone()));
        // Past the file system's timestamp granularity (a clock tick).
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&entry, b"the Executable").unwrap();
        assert_eq!(cache.lookup(&blob), None);

        // A symbolic link to the right bytes is not an entry.
        std::fs::remove_file(&entry).unwrap();
        std::os::unix::fs::symlink(&source, &entry).unwrap();
        assert_eq!(cache.lookup(&blob), None);
    }
}
