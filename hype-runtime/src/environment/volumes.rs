//! Volumes a call mounts: [`VolumeRequest`] (transient or persistent,
//! [`VolumeLifetime`]) and [`VolumeMount`] (where, read-only or not).

use std::path::{Path, PathBuf};

/// How long a requested volume lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VolumeLifetime {
    /// Created for this submitter and deleted when it closes, unless
    /// [`VolumeRequest::keep_on_exit`].
    Transient,
    /// Created if missing, reused if present, never deleted by hype.
    Persistent,
}

/// A volume (a persistent volume claim on Kubernetes, a directory locally).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VolumeRequest {
    name: String,
    storage_class: String,
    size: String,
    lifetime: VolumeLifetime,
    keep_on_exit: bool,
}

impl VolumeRequest {
    /// A transient volume, named `hype-request-<random8>`, deleted when the
    /// submitter closes.
    pub fn new(storage_class: impl Into<String>, size: impl Into<String>) -> Self {
        VolumeRequest {
            name: format!("hype-request-{}", crate::ids::random_suffix(8)),
            storage_class: storage_class.into(),
            size: size.into(),
            lifetime: VolumeLifetime::Transient,
            keep_on_exit: false,
        }
    }

    /// A named volume: created if missing, reused when it exists, and kept.
    pub fn persistent(
        name: impl Into<String>,
        storage_class: impl Into<String>,
        size: impl Into<String>,
    ) -> Self {
        VolumeRequest {
            name: name.into(),
            storage_class: storage_class.into(),
            size: size.into(),
            lifetime: VolumeLifetime::Persistent,
            keep_on_exit: true,
        }
    }

    /// Whether to keep this volume when the submitter closes (persistent
    /// volumes are always kept).
    pub fn keep_on_exit(mut self, keep: bool) -> Self {
        self.keep_on_exit = keep || self.lifetime == VolumeLifetime::Persistent;
        self
    }

    /// The volume's name (the claim's, the Docker volume's, the local
    /// directory's): `hype-request-<random8>` for transient requests.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The storage class (`storageClassName`).
    pub fn storage_class(&self) -> &str {
        &self.storage_class
    }

    /// The requested size (`"10Gi"`).
    pub fn size(&self) -> &str {
        &self.size
    }

    /// Transient or persistent.
    pub fn lifetime(&self) -> VolumeLifetime {
        self.lifetime
    }

    /// Whether the volume stays when the submitter closes.
    pub fn is_kept_on_exit(&self) -> bool {
        self.keep_on_exit
    }

    /// Mounts the volume read-write at `path`.
    pub fn mount_read_write(&self, path: impl Into<PathBuf>) -> VolumeMount {
        VolumeMount {
            volume: self.clone(),
            mount_path: path.into(),
            read_only: false,
        }
    }

    /// Mounts the volume read-only at `path`.
    pub fn mount_read_only(&self, path: impl Into<PathBuf>) -> VolumeMount {
        VolumeMount {
            volume: self.clone(),
            mount_path: path.into(),
            read_only: true,
        }
    }
}

/// A volume mounted at a path, read-write or read-only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VolumeMount {
    volume: VolumeRequest,
    mount_path: PathBuf,
    read_only: bool,
}

impl VolumeMount {
    /// The volume.
    pub fn volume(&self) -> &VolumeRequest {
        &self.volume
    }

    /// Where it appears.
    pub fn mount_path(&self) -> &Path {
        &self.mount_path
    }

    /// Whether writes are refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::Secret;
    use crate::environment::validation::check_dns_subdomain;

    #[test]
    fn transient_names_are_random_and_valid() {
        let a = VolumeRequest::new("standard", "1Gi");
        let b = VolumeRequest::new("standard", "1Gi");
        assert_ne!(a.name, b.name);
        assert!(a.name.starts_with("hype-request-"), "{}", a.name);
        assert_eq!(a.name.len(), "hype-request-".len() + 8);
        assert!(check_dns_subdomain(&a.name).is_ok());
        assert!(!a.keep_on_exit && a.clone().keep_on_exit(true).keep_on_exit);
        assert!(
            !a.clone()
                .keep_on_exit(true)
                .keep_on_exit(false)
                .is_kept_on_exit()
        );
        assert!(VolumeRequest::persistent("data", "standard", "1Gi").keep_on_exit);
    }

    #[test]
    fn secrets_volumes_and_mounts_keep_their_settings() {
        let secret = Secret::new("gcp-key", "/etc/gcloud");
        assert_eq!(secret.name(), "gcp-key");
        assert_eq!(secret.mount_path(), Path::new("/etc/gcloud"));

        let volume = VolumeRequest::persistent("data", "ssd", "10Gi");
        assert_eq!(volume.name(), "data");
        assert_eq!(volume.storage_class(), "ssd");
        assert_eq!(volume.size(), "10Gi");
        assert_eq!(volume.lifetime(), VolumeLifetime::Persistent);
        assert!(volume.is_kept_on_exit());
        // Persistent volumes are always kept.
        assert!(volume.clone().keep_on_exit(false).is_kept_on_exit());

        let transient = VolumeRequest::new("standard", "1Gi");
        assert_eq!(transient.storage_class(), "standard");
        assert_eq!(transient.size(), "1Gi");
        assert!(transient.name().starts_with("hype-request-"));
        assert_eq!(transient.lifetime(), VolumeLifetime::Transient);
        assert!(!transient.is_kept_on_exit());
        assert!(transient.clone().keep_on_exit(true).is_kept_on_exit());

        let read_write = volume.mount_read_write("/data");
        assert_eq!(read_write.volume(), &volume);
        assert_eq!(read_write.mount_path(), Path::new("/data"));
        assert!(!read_write.is_read_only());
        let read_only = transient.mount_read_only("/in");
        assert_eq!(read_only.volume(), &transient);
        assert_eq!(read_only.mount_path(), Path::new("/in"));
        assert!(read_only.is_read_only());
    }
}
