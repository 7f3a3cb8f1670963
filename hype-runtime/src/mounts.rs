//! Where a call's secrets and volumes are, seen from inside the call.
//!
//! In a container, a secret or volume is mounted at the path the
//! environment names (`/etc/gcloud`). A child process of the local runner
//! cannot mount, so the runner maps each mount path to a local directory
//! and passes the mapping in `HYPE_MOUNTS`; [`mount_path`] translates a
//! container path through it. Code that reads its secrets and volumes
//! through [`mount_path`] runs unchanged in both places.
//!
//! `HYPE_MOUNTS` holds one mount per line: `container path`, TAB, `local
//! directory`, TAB, `ro` or `rw`.

use std::path::{Path, PathBuf};

use crate::config::HYPE_MOUNTS;

/// One mapped mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MappedMount {
    /// The path the environment names.
    pub(crate) container_path: PathBuf,
    /// The local directory standing in for it.
    pub(crate) local_path: PathBuf,
    /// Whether the mount is read-only (not enforced for child processes).
    pub(crate) read_only: bool,
}

/// Where `path` (a path inside a mount of the call's environment) is in
/// this process: translated through `HYPE_MOUNTS` when running under the
/// local runner, unchanged elsewhere.
///
/// ```
/// // Outside the local runner (or in a container), paths are unchanged.
/// assert_eq!(hype_runtime::mount_path("/etc/gcloud/key.json"), std::path::PathBuf::from("/etc/gcloud/key.json"));
/// ```
pub fn mount_path(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    let mounts = std::env::var(HYPE_MOUNTS)
        .map(|v| parse(&v))
        .unwrap_or_default();
    translate(&mounts, path)
}

fn translate(mounts: &[MappedMount], path: &Path) -> PathBuf {
    mounts
        .iter()
        .filter_map(|m| {
            path.strip_prefix(&m.container_path)
                .ok()
                .map(|rest| (m, rest))
        })
        .max_by_key(|(m, _)| m.container_path.components().count())
        .map(|(m, rest)| {
            if rest.as_os_str().is_empty() {
                m.local_path.clone()
            } else {
                m.local_path.join(rest)
            }
        })
        .unwrap_or_else(|| path.to_owned())
}

/// Encodes mounts for `HYPE_MOUNTS`. Paths holding a TAB or newline cannot
/// be encoded and are reported.
pub(crate) fn encode(mounts: &[MappedMount]) -> Result<String, String> {
    let mut out = String::new();
    for m in mounts {
        let (c, l) = (m.container_path.to_str(), m.local_path.to_str());
        match (c, l) {
            (Some(c), Some(l)) if !c.contains(['\t', '\n']) && !l.contains(['\t', '\n']) => {
                out.push_str(c);
                out.push('\t');
                out.push_str(l);
                out.push('\t');
                out.push_str(if m.read_only { "ro" } else { "rw" });
                out.push('\n');
            }
            _ => {
                return Err(format!(
                    "mount {} -> {} cannot be passed to a child process: paths must be UTF-8 without TAB or newline",
                    m.container_path.display(),
                    m.local_path.display()
                ));
            }
        }
    }
    Ok(out)
}

/// Parses `HYPE_MOUNTS`; malformed lines are skipped.
pub(crate) fn parse(text: &str) -> Vec<MappedMount> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split('\t');
            let (c, l, mode) = (parts.next()?, parts.next()?, parts.next()?);
            Some(MappedMount {
                container_path: c.into(),
                local_path: l.into(),
                read_only: mode == "ro",
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_round_trips() {
        let mounts = vec![
            MappedMount {
                container_path: "/data".into(),
                local_path: "/tmp/v1".into(),
                read_only: false,
            },
            MappedMount {
                container_path: "/data/ro".into(),
                local_path: "/tmp/v2".into(),
                read_only: true,
            },
        ];
        let parsed = parse(&encode(&mounts).unwrap());
        assert_eq!(parsed, mounts);
        assert_eq!(
            translate(&parsed, Path::new("/data/x")),
            PathBuf::from("/tmp/v1/x")
        );
        assert_eq!(
            translate(&parsed, Path::new("/data/ro/y")),
            PathBuf::from("/tmp/v2/y")
        );
        assert_eq!(
            translate(&parsed, Path::new("/data")),
            PathBuf::from("/tmp/v1")
        );
        assert_eq!(
            translate(&parsed, Path::new("/database")),
            PathBuf::from("/database")
        );
        assert_eq!(translate(&parsed, Path::new("/etc")), PathBuf::from("/etc"));
    }

    #[test]
    fn unencodable_paths_are_reported() {
        let bad = MappedMount {
            container_path: "/a\tb".into(),
            local_path: "/x".into(),
            read_only: true,
        };
        assert!(encode(&[bad]).unwrap_err().contains("TAB"));
    }
}
