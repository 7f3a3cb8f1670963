//! The local runner's directories: secrets and volumes mapped to
//! directories, transient volumes marked as this process's while in use
//! and removed when the runner closes, and the sweep of those a killed
//! submitter left.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::cleanup;
use crate::environment::{RunEnvironment, VolumeLifetime};
use crate::error::Error;
use crate::mounts::MappedMount;
use crate::owner::{Liveness, Owner};

/// The runner's directories, shared with the blocking tasks that create
/// and remove what lies in them (never on an async worker thread).
#[derive(Debug)]
pub(super) struct Dirs {
    secrets_dir: PathBuf,
    volumes_dir: PathBuf,
    pub(super) work_dir: PathBuf,
    transient: Mutex<BTreeSet<PathBuf>>,
}

impl Dirs {
    /// The directories, with no transient volume in use yet.
    pub(super) fn new(secrets_dir: PathBuf, volumes_dir: PathBuf, work_dir: PathBuf) -> Dirs {
        Dirs {
            secrets_dir,
            volumes_dir,
            work_dir,
            transient: Mutex::new(BTreeSet::new()),
        }
    }

    /// Maps the environment's secrets and volumes to directories, creating
    /// volume directories; reports every missing secret at once.
    pub(super) fn map_mounts(&self, env: &RunEnvironment) -> Result<Vec<MappedMount>, Error> {
        let mut problems = Vec::new();
        let mut mapped = Vec::new();
        for secret in env.secrets() {
            let dir = self.secrets_dir.join(secret.name());
            if dir.is_dir() {
                mapped.push(MappedMount {
                    container_path: secret.mount_path().to_owned(),
                    local_path: dir,
                    read_only: true,
                });
            } else {
                problems.push(format!(
                    "secret {} has no local directory {}: create it with one file per key, or point HYPE_LOCAL_SECRETS (or LocalCluster::secrets_dir) at a directory with one folder per secret",
                    secret.name(),
                    dir.display()
                ));
            }
        }
        for mount in env.mounts() {
            let dir = self.volumes_dir.join(mount.volume().name());
            if let Err(err) = std::fs::create_dir_all(&dir) {
                problems.push(format!(
                    "volume {}: cannot create {}: {err}",
                    mount.volume().name(),
                    dir.display()
                ));
                continue;
            }
            if mount.volume().lifetime() == VolumeLifetime::Transient
                && !mount.volume().is_kept_on_exit()
            {
                let mut transient = self.transient.lock().unwrap_or_else(|e| e.into_inner());
                if transient.insert(dir.clone()) {
                    cleanup::remove_at_exit(&dir);
                    let marker = transient_marker(&self.volumes_dir, mount.volume().name());
                    let marked = std::fs::create_dir_all(transient_markers(&self.volumes_dir))
                        .and_then(|()| std::fs::write(&marker, b""));
                    if let Err(err) = marked {
                        tracing::debug!(marker = %marker.display(), %err, "cannot mark a transient volume as this process's");
                    }
                }
            }
            mapped.push(MappedMount {
                container_path: mount.mount_path().to_owned(),
                local_path: dir,
                read_only: mount.is_read_only(),
            });
        }
        if problems.is_empty() {
            Ok(mapped)
        } else {
            Err(Error::InvalidEnvironment { problems })
        }
    }

    /// Removes this process's marker of the transient volume `dir`.
    fn unmark(&self, dir: &std::path::Path) {
        if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
            let _ = std::fs::remove_file(transient_marker(&self.volumes_dir, name));
        }
    }

    /// Removes the transient volumes (and their markers) and the work
    /// directory; says what could not be removed. Blocking.
    pub(super) fn remove(&self) -> Vec<String> {
        let transient =
            std::mem::take(&mut *self.transient.lock().unwrap_or_else(|e| e.into_inner()));
        let mut failures = Vec::new();
        for dir in transient {
            if let Err(err) = cleanup::remove_now(&dir) {
                failures.push(format!("{}: {err}", dir.display()));
            }
            self.unmark(&dir);
        }
        if let Err(err) = cleanup::remove_now(&self.work_dir) {
            failures.push(format!("{}: {err}", self.work_dir.display()));
        }
        failures
    }
}

/// Where the markers of transient volumes in use are.
fn transient_markers(volumes_dir: &std::path::Path) -> PathBuf {
    volumes_dir.join(".hype-transient")
}

/// This process's marker of the transient volume `name`.
fn transient_marker(volumes_dir: &std::path::Path, name: &str) -> PathBuf {
    transient_markers(volumes_dir).join(format!("{name}+{}", Owner::current().tag()))
}

/// How many markers one sweep of transient volumes reads at most.
const MARKERS_SWEPT: usize = 1_000;

/// Removes the markers of dead owners in `volumes_dir`, and each transient
/// volume left without a marker by that (a killed submitter's). A volume
/// name is a DNS subdomain (no `+`, no `/`), so a marker's name splits
/// unambiguously; links are never followed; bounded.
pub(super) fn sweep_transient_volumes(volumes_dir: &std::path::Path) {
    let markers = transient_markers(volumes_dir);
    let Ok(entries) = std::fs::read_dir(&markers) else {
        return;
    };
    let mut dead = BTreeSet::new();
    let mut marked = BTreeSet::new();
    for entry in entries.take(MARKERS_SWEPT).flatten() {
        let file = entry.file_name();
        let Some((name, tag)) = file.to_str().and_then(|f| f.rsplit_once('+')) else {
            continue;
        };
        if name.is_empty() || name.starts_with('.') || name.contains('/') {
            continue;
        }
        match Owner::parse_tag(tag).map(|owner| owner.liveness()) {
            Some(Liveness::Dead) => {
                if std::fs::remove_file(entry.path()).is_ok() {
                    dead.insert(name.to_owned());
                }
            }
            _ => {
                marked.insert(name.to_owned());
            }
        }
    }
    for name in dead.difference(&marked) {
        let dir = volumes_dir.join(name);
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir())
            && std::fs::remove_dir_all(&dir).is_ok()
        {
            tracing::debug!(volume = %dir.display(), "removed the transient volume of a dead process");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_volumes_of_dead_owners_are_swept() {
        let volumes = tempfile::tempdir().unwrap();
        let markers = transient_markers(volumes.path());
        std::fs::create_dir_all(&markers).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let me = Owner::current().tag();
        let boot = me.rsplit('.').next().unwrap();
        let dead = format!("{dead_pid}.1.{boot}");
        for (volume, owners) in [
            ("gone", vec![dead.as_str()]),
            ("shared", vec![dead.as_str(), me.as_str()]),
            ("unmarked", vec![]),
        ] {
            std::fs::create_dir(volumes.path().join(volume)).unwrap();
            std::fs::write(volumes.path().join(volume).join("f"), b"x").unwrap();
            for owner in owners {
                std::fs::write(markers.join(format!("{volume}+{owner}")), b"").unwrap();
            }
        }
        std::fs::write(markers.join("odd-name"), b"").unwrap();

        sweep_transient_volumes(volumes.path());
        assert!(!volumes.path().join("gone").exists());
        assert!(
            volumes.path().join("shared/f").exists(),
            "a live owner keeps it"
        );
        assert!(volumes.path().join("unmarked/f").exists());
        let mut left: Vec<String> = std::fs::read_dir(&markers)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["odd-name".to_owned(), format!("shared+{me}")]);
    }
}
