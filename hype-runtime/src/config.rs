//! Every `HYPE_*` environment variable hype reads, parsed and validated in
//! one place.
//!
//! | variable | read by | meaning |
//! |---|---|---|
//! | `HYPE_CLUSTER` | the default submitter | where calls run: [`ClusterSpec`] |
//! | `HYPE_STAGING` | the default submitter | the staging store: `file:///dir`, `gs://bucket/prefix` |
//! | `HYPE_LOCAL_SECRETS` | local and Docker runners | the directory of local secrets (default `~/.config/hype/secrets`) |
//! | `HYPE_LOCAL_VOLUMES` | local runner | the directory of local volumes (default `~/.local/share/hype/volumes`) |
//! | `HYPE_EXECUTION_ID` | `hype-run` | the execution's name (pod, container, process) |
//! | `HYPE_TERMINATION_MESSAGE_PATH` | `hype-run` | where the outcome goes (default `/dev/termination-log`) |
//! | `HYPE_MOUNTS` | [`crate::mount_path`] | the local runner's map of mount paths to directories |
//! | `HYPE_EXECUTABLE` | submitters | the executable to ship with calls, instead of this one (a cross-built binary) |
//! | `HYPE_SHIP_EXECUTABLE` | submitters | `0` or `false`: ship no executable (the image has the binary baked in); default `1` |
//! | `HYPE_CACHE_DIR` | `hype-run` | where a launcher keeps fetched executables (default `$TMPDIR/hype-cache`; created 0700, refused unless this user's own and private) |
//! | `HYPE_IMAGE` | the default submitter; `hype-run` | the env image calls run in: [`crate::Call::run_on_cluster`] gives it to an environment that names none (`RunEnvironment::local()`); the Docker and Kubernetes runners set it in the execution, whose errors name it |
//! | `HYPE_LAUNCHED` | `hype-run` | set by a launcher for the executable it runs: the digest it fetched (the loop guard) |
//! | `HYPE_PARENT_PID` | `hype-run` | set by the local runner and the launcher: the process `hype-run` dies with (`process.rs`: dying with the parent) |
//!
//! `HYPE_CLUSTER` takes:
//!
//! | `HYPE_CLUSTER` | cluster | feature |
//! |---|---|---|
//! | unset, empty or `local` | `LocalCluster`: child processes (the embedded default) | none |
//! | `docker` | `DockerCluster`: containers on the local Docker engine | `docker` |
//! | `kube` or `kube:CONTEXT` | `KubeCluster`: Kubernetes from kubeconfig or in-cluster config | `kubernetes` |
//! | `gke:PROJECT/LOCATION/CLUSTER` | `ContainerEngineCluster`: Google Kubernetes Engine | `gke` |
//!
//! A variable that is set but not UTF-8 is an error naming it, never
//! silently ignored.

use std::path::PathBuf;

use crate::error::Error;

/// Where calls of the default submitter run.
pub const HYPE_CLUSTER: &str = "HYPE_CLUSTER";
/// The default submitter's staging store.
pub const HYPE_STAGING: &str = "HYPE_STAGING";
/// The directory of local secrets: secret `NAME` is `$HYPE_LOCAL_SECRETS/NAME`.
pub const HYPE_LOCAL_SECRETS: &str = "HYPE_LOCAL_SECRETS";
/// The directory of local volumes: volume `NAME` is `$HYPE_LOCAL_VOLUMES/NAME`.
pub const HYPE_LOCAL_VOLUMES: &str = "HYPE_LOCAL_VOLUMES";
/// The execution's name, set by every runner for `hype-run`.
pub const HYPE_EXECUTION_ID: &str = "HYPE_EXECUTION_ID";
/// Where `hype-run` writes its termination message.
pub const HYPE_TERMINATION_MESSAGE_PATH: &str = "HYPE_TERMINATION_MESSAGE_PATH";
/// The local runner's mount map ([`crate::mounts`]).
pub const HYPE_MOUNTS: &str = "HYPE_MOUNTS";

/// The executable to ship with calls, when not this one.
pub const HYPE_EXECUTABLE: &str = "HYPE_EXECUTABLE";
/// `0`/`false` turns executable shipping off.
pub const HYPE_SHIP_EXECUTABLE: &str = "HYPE_SHIP_EXECUTABLE";
/// Where a launching `hype-run` caches fetched executables.
pub const HYPE_CACHE_DIR: &str = "HYPE_CACHE_DIR";
/// The env image calls run in: the default submitter's image for an
/// environment that names none; set by the Docker and Kubernetes runners
/// in the execution, whose errors name it.
pub const HYPE_IMAGE: &str = "HYPE_IMAGE";
/// The digest of the executable a launcher fetched and started.
pub const HYPE_LAUNCHED: &str = "HYPE_LAUNCHED";
/// The PID of the process that started this `hype-run` and armed it to die
/// with it (see `process.rs`, dying with the parent).
pub const HYPE_PARENT_PID: &str = "HYPE_PARENT_PID";

/// Where the termination message goes unless `HYPE_TERMINATION_MESSAGE_PATH` says.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// The value of `name`: `None` when unset, an error naming it when it is
/// not UTF-8.
pub fn var(name: &str) -> Result<Option<String>, Error> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::Config {
            message: format!("{name} is not UTF-8"),
        }),
    }
}

/// `HYPE_STAGING`, if set and not empty.
pub fn staging() -> Result<Option<String>, Error> {
    Ok(var(HYPE_STAGING)?.filter(|s| !s.trim().is_empty()))
}

/// The directory of local secrets: `HYPE_LOCAL_SECRETS`, else
/// `~/.config/hype/secrets`.
pub fn local_secrets_dir() -> PathBuf {
    dir_or_home(HYPE_LOCAL_SECRETS, &[".config", "hype", "secrets"])
}

/// The directory of local volumes: `HYPE_LOCAL_VOLUMES`, else
/// `~/.local/share/hype/volumes`.
pub fn local_volumes_dir() -> PathBuf {
    dir_or_home(HYPE_LOCAL_VOLUMES, &[".local", "share", "hype", "volumes"])
}

fn dir_or_home(name: &str, under_home: &[&str]) -> PathBuf {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let mut dir = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            dir.extend(under_home);
            dir
        })
}

/// `HYPE_EXECUTION_ID`, else `hype-run-<pid>` (a `hype-run` started by hand).
pub fn execution_id() -> String {
    var(HYPE_EXECUTION_ID)
        .ok()
        .flatten()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("hype-run-{}", std::process::id()))
}

/// `HYPE_TERMINATION_MESSAGE_PATH`, else [`DEFAULT_TERMINATION_MESSAGE_PATH`].
pub fn termination_message_path() -> PathBuf {
    std::env::var_os(HYPE_TERMINATION_MESSAGE_PATH)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TERMINATION_MESSAGE_PATH))
}

/// `HYPE_SHIP_EXECUTABLE`: whether to ship the executable with calls
/// (default yes). Anything but `0`, `1`, `false`, `true` (or empty) is an
/// error naming the variable.
pub fn ship_executable() -> Result<bool, Error> {
    match var(HYPE_SHIP_EXECUTABLE)?.as_deref().map(str::trim) {
        None | Some("" | "1" | "true") => Ok(true),
        Some("0" | "false") => Ok(false),
        Some(other) => Err(Error::Config {
            message: format!("{HYPE_SHIP_EXECUTABLE}={other:?}: use 0 (off) or 1 (on)"),
        }),
    }
}

/// `HYPE_EXECUTABLE`, if set and not empty: the executable to ship.
pub fn executable() -> Option<PathBuf> {
    std::env::var_os(HYPE_EXECUTABLE)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `HYPE_CACHE_DIR`, else `$TMPDIR/hype-cache`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os(HYPE_CACHE_DIR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("hype-cache"))
}

/// `HYPE_IMAGE`, if set and not empty: the image of an environment that
/// names none, for [`crate::Call::run_on_cluster`].
pub fn default_image() -> Result<Option<String>, Error> {
    Ok(var(HYPE_IMAGE)?.filter(|v| !v.trim().is_empty()))
}

/// `HYPE_IMAGE`, else `unknown`: in `hype-run`, the image it runs in.
pub fn image() -> String {
    var(HYPE_IMAGE)
        .ok()
        .flatten()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A cluster named by `HYPE_CLUSTER`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterSpec {
    /// Child processes on this machine.
    Local,
    /// A local Docker engine.
    Docker,
    /// Kubernetes through kubeconfig (optionally a named context) or the
    /// in-cluster configuration.
    Kube {
        /// The kubeconfig context, if not the current one.
        context: Option<String>,
    },
    /// A GKE cluster.
    Gke {
        /// The Google Cloud project.
        project: String,
        /// The zone or region.
        location: String,
        /// The cluster's name.
        cluster: String,
    },
}

impl ClusterSpec {
    /// Parses a `HYPE_CLUSTER` value.
    pub fn parse(value: &str) -> Result<ClusterSpec, Error> {
        let value = value.trim();
        let bad = |why: &str| Error::Config {
            message: format!(
                "HYPE_CLUSTER={value:?} {why}; expected one of: local, docker, kube, kube:CONTEXT, gke:PROJECT/LOCATION/CLUSTER"
            ),
        };
        match value {
            "" | "local" => Ok(ClusterSpec::Local),
            "docker" => Ok(ClusterSpec::Docker),
            "kube" => Ok(ClusterSpec::Kube { context: None }),
            _ => {
                if let Some(context) = value.strip_prefix("kube:") {
                    if context.is_empty() {
                        return Err(bad("names an empty context"));
                    }
                    return Ok(ClusterSpec::Kube {
                        context: Some(context.to_owned()),
                    });
                }
                if let Some(rest) = value.strip_prefix("gke:") {
                    let parts: Vec<&str> = rest.split('/').collect();
                    return match parts.as_slice() {
                        [p, l, c] if !p.is_empty() && !l.is_empty() && !c.is_empty() => {
                            Ok(ClusterSpec::Gke {
                                project: (*p).to_owned(),
                                location: (*l).to_owned(),
                                cluster: (*c).to_owned(),
                            })
                        }
                        _ => Err(bad("is not gke:PROJECT/LOCATION/CLUSTER")),
                    };
                }
                Err(bad("is not a known cluster"))
            }
        }
    }

    /// Reads `HYPE_CLUSTER` (unset means [`ClusterSpec::Local`]).
    pub fn from_env() -> Result<ClusterSpec, Error> {
        match var(HYPE_CLUSTER)? {
            Some(value) => ClusterSpec::parse(&value),
            None => Ok(ClusterSpec::Local),
        }
    }

    /// The cargo feature this cluster needs, if any.
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            ClusterSpec::Local => None,
            ClusterSpec::Docker => Some("docker"),
            ClusterSpec::Kube { .. } => Some("kubernetes"),
            ClusterSpec::Gke { .. } => Some("gke"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(ClusterSpec::parse("").unwrap(), ClusterSpec::Local);
        assert_eq!(ClusterSpec::parse("local").unwrap(), ClusterSpec::Local);
        assert_eq!(ClusterSpec::parse("docker").unwrap(), ClusterSpec::Docker);
        assert_eq!(
            ClusterSpec::parse("kube").unwrap(),
            ClusterSpec::Kube { context: None }
        );
        assert_eq!(
            ClusterSpec::parse("kube:prod").unwrap(),
            ClusterSpec::Kube {
                context: Some("prod".into())
            }
        );
        assert_eq!(
            ClusterSpec::parse("gke:p/europe-west1-b/c").unwrap(),
            ClusterSpec::Gke {
                project: "p".into(),
                location: "europe-west1-b".into(),
                cluster: "c".into()
            }
        );
        for bad in ["gke:p/l", "gke:p//c", "kube:", "k8s", "gke:a/b/c/d"] {
            let err = ClusterSpec::parse(bad).unwrap_err().to_string();
            assert!(err.contains("expected one of"), "{bad}: {err}");
        }
    }

    /// A build without a backend names the feature to enable: GKE needs
    /// `gke` (Kubernetes and GCS), not `gcs` alone.
    #[test]
    fn each_backend_names_its_feature() {
        let feature = |value: &str| ClusterSpec::parse(value).unwrap().feature();
        assert_eq!(feature("local"), None);
        assert_eq!(feature("docker"), Some("docker"));
        assert_eq!(feature("kube"), Some("kubernetes"));
        assert_eq!(feature("gke:p/europe-west1-b/c"), Some("gke"));
    }
}
