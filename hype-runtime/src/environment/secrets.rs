//! [`Secret`]: a Kubernetes secret a call mounts read-only.

use std::path::{Path, PathBuf};

/// A Kubernetes secret mounted read-only at a path in the container.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Secret {
    name: String,
    mount_path: PathBuf,
}

impl Secret {
    /// The secret `name`, mounted at `mount_path`.
    pub fn new(name: impl Into<String>, mount_path: impl Into<PathBuf>) -> Self {
        Secret {
            name: name.into(),
            mount_path: mount_path.into(),
        }
    }

    /// The secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where its keys appear as files.
    pub fn mount_path(&self) -> &Path {
        &self.mount_path
    }
}
