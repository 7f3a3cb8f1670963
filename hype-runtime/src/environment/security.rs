//! Who a call's process is and what it may change: the user it runs as
//! and whether its root filesystem is read-only. By default both the
//! Kubernetes and the Docker runner run a call as uid and gid
//! [`DEFAULT_RUN_AS_USER`] (65532, distroless's `nonroot`) with a
//! read-only root filesystem, a writable `/tmp`, no privilege escalation
//! and no capabilities; these two options relax the first two on purpose.
//! The local runner ignores them (a call is a child process of this one).

use super::RunEnvironment;

/// The uid and gid a call runs as when neither the environment nor a base
/// pod names one: 65532, the `nonroot` user of distroless images.
pub const DEFAULT_RUN_AS_USER: u32 = 65532;

impl RunEnvironment {
    /// Runs the call as user `uid`, with primary group `uid` (Kubernetes:
    /// the `hype-run` container's `runAsUser` and `runAsGroup`, over a
    /// base pod's; Docker: `User: "uid:uid"`). Default:
    /// [`DEFAULT_RUN_AS_USER`]. `0` runs it as root: the pod then no
    /// longer sets `runAsNonRoot`, so a namespace enforcing the
    /// `restricted` Pod Security Standard refuses it.
    pub fn with_run_as_user(self, uid: u32) -> Self {
        self.with(|s| s.run_as_user = Some(uid))
    }

    /// Whether the call's root filesystem is read-only (Kubernetes:
    /// `readOnlyRootFilesystem`, over a base pod's; Docker:
    /// `ReadonlyRootfs`). Default: read-only, with a writable `/tmp` (an
    /// `emptyDir` on Kubernetes, a tmpfs on Docker), where the launcher's
    /// cache (`HYPE_CACHE_DIR`, by default `$TMPDIR/hype-cache`, so
    /// `/tmp/hype-cache` when `TMPDIR` is unset) lives.
    /// `false` for code that writes elsewhere in the image.
    pub fn with_read_only_root(self, read_only: bool) -> Self {
        self.with(|s| s.read_only_root = Some(read_only))
    }

    /// The user set by [`RunEnvironment::with_run_as_user`], if any.
    pub fn run_as_user(&self) -> Option<u32> {
        self.inner.run_as_user
    }

    /// The choice of [`RunEnvironment::with_read_only_root`], if made.
    pub fn read_only_root(&self) -> Option<bool> {
        self.inner.read_only_root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_until_asked() {
        let env = RunEnvironment::new("img");
        assert_eq!((env.run_as_user(), env.read_only_root()), (None, None));
        let env = env.with_run_as_user(0).with_read_only_root(false);
        assert_eq!(
            (env.run_as_user(), env.read_only_root()),
            (Some(0), Some(false))
        );
    }
}
