//! What a staging store holds, with ages, and removing one object: for
//! `hype gc --staging`, which removes what is older than it is told.
//!
//! Listed: content-addressed blobs (`<location>/blobs/sha256/<hex>`, a
//! name of 64 hex digits) and outcome objects
//! (`<location>/outcomes/<execution-id>`). Nothing else under the
//! location is touched: in a `file://` store not the temporary files of
//! writes under way (`.tmp…`), nor directories, links or other files.

use std::path::Path;
use std::time::SystemTime;

use super::local::path_of;
use crate::error::Error;

/// The kind of a staged object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StagedKind {
    /// A content-addressed blob.
    Blob,
    /// An execution's outcome object.
    Outcome,
}

impl std::fmt::Display for StagedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StagedKind::Blob => "blob",
            StagedKind::Outcome => "outcome",
        })
    }
}

/// One object a store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedObject {
    /// Blob or outcome.
    pub kind: StagedKind,
    /// Its URI.
    pub uri: String,
    /// Its size in bytes.
    pub len: u64,
    /// When it was last written (a file's modification time, an object's
    /// update time).
    pub modified: SystemTime,
}

/// Every blob and outcome object of the store at `location` (`file:///dir`
/// or `gs://bucket/prefix`). A store with nothing staged yet (no such
/// directories) lists nothing.
pub async fn list(location: &str) -> Result<Vec<StagedObject>, Error> {
    if location.starts_with("file://") {
        let root = path_of(location)?;
        return tokio::task::spawn_blocking(move || list_dir(&root))
            .await
            .map_err(|err| Error::Staging {
                operation: "list",
                uri: location.to_owned(),
                message: format!("the listing ended abnormally: {err}"),
                source: None,
            })?;
    }
    #[cfg(feature = "gcs")]
    if location.starts_with("gs://") {
        let store = super::GcsStaging::new(location)?;
        let mut found = Vec::new();
        for (kind, rest) in [
            (StagedKind::Blob, "blobs/sha256/"),
            (StagedKind::Outcome, "outcomes/"),
        ] {
            for object in store.list_objects(rest).await? {
                if kind == StagedKind::Blob && super::digest_in_uri(&object.uri).is_none() {
                    continue;
                }
                found.push(StagedObject {
                    kind,
                    uri: object.uri,
                    len: object.len,
                    modified: object.updated,
                });
            }
        }
        return Ok(found);
    }
    // The same refusal as opening the store, naming what is missing.
    super::open(location)?;
    Err(Error::Config {
        message: format!("staging location {location:?} cannot be listed"),
    })
}

/// Removes one object [`list`] gave; one that is gone already is not an
/// error.
pub async fn remove(location: &str, uri: &str) -> Result<(), Error> {
    super::open(location)?.delete_object(uri).await
}

/// The blobs and outcome objects under a `file://` store's root.
fn list_dir(root: &Path) -> Result<Vec<StagedObject>, Error> {
    let mut found = Vec::new();
    for (kind, sub) in [
        (StagedKind::Blob, "blobs/sha256"),
        (StagedKind::Outcome, "outcomes"),
    ] {
        let dir = root.join(sub);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(Error::staging_io("list", dir.display().to_string(), err)),
        };
        for entry in entries {
            let entry =
                entry.map_err(|err| Error::staging_io("list", dir.display().to_string(), err))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let wanted = match kind {
                StagedKind::Blob => name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
                StagedKind::Outcome => !name.starts_with('.'),
            };
            if !wanted {
                continue;
            }
            let path = entry.path();
            // Not followed: a link is not a staged object.
            let metadata = match std::fs::symlink_metadata(&path) {
                Ok(metadata) => metadata,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => {
                    return Err(Error::staging_io("list", path.display().to_string(), err));
                }
            };
            if !metadata.is_file() {
                continue;
            }
            let modified = metadata
                .modified()
                .map_err(|err| Error::staging_io("list", path.display().to_string(), err))?;
            found.push(StagedObject {
                kind,
                uri: format!("file://{}", path.display()),
                len: metadata.len(),
                modified,
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_lists_its_blobs_and_outcomes_only() {
        let dir = tempfile::tempdir().unwrap();
        let location = format!("file://{}", dir.path().display());
        assert!(list(&location).await.unwrap().is_empty(), "nothing staged");
        let blobs = dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::create_dir_all(dir.path().join("outcomes")).unwrap();
        let hex = "ab".repeat(32);
        std::fs::write(blobs.join(&hex), b"blob").unwrap();
        std::fs::write(blobs.join(".tmpXYZ"), b"half").unwrap();
        std::fs::write(blobs.join("not-a-digest"), b"x").unwrap();
        std::fs::write(dir.path().join("outcomes/hype-f-1"), b"out").unwrap();
        std::fs::write(dir.path().join("other"), b"x").unwrap();
        let mut found = list(&location).await.unwrap();
        found.sort_by(|a, b| a.uri.cmp(&b.uri));
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(found[0].kind, StagedKind::Blob);
        assert_eq!(found[0].uri, format!("{location}/blobs/sha256/{hex}"));
        assert_eq!(found[0].len, 4);
        assert_eq!(found[1].kind, StagedKind::Outcome);
        remove(&location, &found[0].uri).await.unwrap();
        remove(&location, &found[0].uri).await.unwrap();
        assert!(!blobs.join(&hex).exists());
        let err = list("s3://bucket").await.unwrap_err().to_string();
        assert!(err.contains("not supported"), "{err}");
    }
}
