//! Clusters: what a [`crate::Submitter`] connects to, chosen in code or by
//! `HYPE_CLUSTER`.
//!
//! | `HYPE_CLUSTER` | cluster | feature |
//! |---|---|---|
//! | unset, empty or `local` | [`LocalCluster`]: child processes (the embedded default) | none |
//! | `docker` | `DockerCluster`: containers on the local Docker engine | `docker` |
//! | `kube` or `kube:CONTEXT` | Kubernetes from kubeconfig or in-cluster config | `kubernetes` |
//! | `gke:PROJECT/LOCATION/CLUSTER` | `ContainerEngineCluster`: Google Kubernetes Engine | `gcs` |

#[cfg(feature = "gcs")]
pub mod gke;

use std::sync::Arc;

#[cfg(feature = "gcs")]
pub use self::gke::ContainerEngineCluster;
use crate::error::Error;
use crate::runner::Runner;
#[cfg(feature = "docker")]
pub use crate::runner::docker::DockerCluster;
#[cfg(feature = "kubernetes")]
pub use crate::runner::kubernetes::KubeCluster;
pub use crate::runner::local::LocalCluster;
use crate::staging::{BoxFuture, Staging};

/// What a cluster is connected for: the submitter's staging store and
/// session. Everything a runner creates carries the session in its labels
/// (`hype.dev/session`), so one submitter's objects can be found and removed.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The submitter's staging store.
    pub staging: Arc<dyn Staging>,
    /// The submitter's session ID: 10 characters of `[0-9a-z]`, a valid
    /// label value.
    pub session: String,
}

/// Something calls can be sent to: connects and gives the runner.
pub trait Cluster: Send + 'static {
    /// Connects to the cluster for one submitter.
    fn connect(self, connection: Connection) -> BoxFuture<'static, Result<Arc<dyn Runner>, Error>>;
}

impl Cluster for LocalCluster {
    fn connect(
        self,
        _connection: Connection,
    ) -> BoxFuture<'static, Result<Arc<dyn Runner>, Error>> {
        Box::pin(async move { Ok(Arc::new(self.into_runner()?) as Arc<dyn Runner>) })
    }
}

/// A cluster named by `HYPE_CLUSTER`.
#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// Reads `HYPE_CLUSTER`.
    pub fn from_env() -> Result<ClusterSpec, Error> {
        match std::env::var("HYPE_CLUSTER") {
            Ok(value) => ClusterSpec::parse(&value),
            Err(std::env::VarError::NotPresent) => Ok(ClusterSpec::Local),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::Config {
                message: "HYPE_CLUSTER is not UTF-8".to_owned(),
            }),
        }
    }

    /// The cargo feature this cluster needs, if any.
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            ClusterSpec::Local => None,
            ClusterSpec::Docker => Some("docker"),
            ClusterSpec::Kube { .. } => Some("kubernetes"),
            ClusterSpec::Gke { .. } => Some("gcs"),
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
}
