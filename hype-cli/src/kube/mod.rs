//! Kubernetes for the `hype` command: connecting through a kubeconfig
//! context (as `KubeCluster` does) or to a GKE cluster (as
//! `ContainerEngineCluster` does), and bounded API calls. [`gc`] removes
//! what dead sessions left, [`ps`] lists executions (with [`phase`]: where
//! each is), [`logs`] prints one's log.
//!
//! What hype creates there (the runner's contract): a Lease
//! `hype-<session>` per submitter, renewed while it lives; pods and
//! transient claims labelled with their session and owned (ownerReference)
//! by that Lease; persistent claims labelled `hype.dev/lifetime=persistent`,
//! never collected.

pub mod gc;
pub mod logs;
pub mod phase;
pub mod ps;

use std::future::Future;
use std::time::Duration;

use hype_runtime::__tools::labels::{LABEL_MANAGED_BY, LABEL_SESSION, MANAGED_BY, label_value};

/// The bound of one API call.
pub const CALL_BOUND: Duration = Duration::from_secs(60);

/// The label selector of everything hype manages.
pub fn managed_selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY}")
}

/// The label selector of what hype manages, of `session` only if given.
pub fn selector(session: Option<&str>) -> String {
    match session {
        Some(session) => format!(
            "{},{LABEL_SESSION}={}",
            managed_selector(),
            label_value(session)
        ),
        None => managed_selector(),
    }
}

/// The environment variable that points `--gke` at another GKE API
/// endpoint than `https://container.googleapis.com` (a private one, or a
/// test double).
pub const GKE_API_ENDPOINT: &str = "HYPE_GKE_API_ENDPOINT";

/// A GKE cluster as `--gke` names it: `PROJECT/LOCATION/CLUSTER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GkeName {
    /// The Google Cloud project.
    pub project: String,
    /// The zone or region.
    pub location: String,
    /// The cluster.
    pub cluster: String,
}

impl GkeName {
    /// Parses `PROJECT/LOCATION/CLUSTER` (clap names the flag in its
    /// error).
    pub fn parse(value: &str) -> Result<GkeName, String> {
        match value.split('/').collect::<Vec<_>>().as_slice() {
            [project, location, cluster]
                if !project.is_empty() && !location.is_empty() && !cluster.is_empty() =>
            {
                Ok(GkeName {
                    project: (*project).to_owned(),
                    location: (*location).to_owned(),
                    cluster: (*cluster).to_owned(),
                })
            }
            _ => Err(
                "expected PROJECT/LOCATION/CLUSTER, e.g. my-project/europe-west1/my-cluster (LOCATION a zone or a region)"
                    .to_owned(),
            ),
        }
    }
}

impl std::fmt::Display for GkeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.project, self.location, self.cluster)
    }
}

/// Which cluster: through kubeconfig, or a GKE cluster through its API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A kubeconfig context (the current one when `None`, or the
    /// in-cluster service account).
    Context(Option<String>),
    /// A GKE cluster, with Application Default Credentials.
    Gke(GkeName),
}

/// A client for `target`, and the namespace to use: `namespace`, else
/// the context's, else `default`. The runtime's own
/// ([`hype_runtime::KubeCluster::client`], and
/// [`hype_runtime::ContainerEngineCluster::kube_cluster`] for GKE), so the
/// CLI connects as a submitter does.
pub async fn connect(
    target: Target,
    namespace: Option<String>,
) -> Result<(kube::Client, String), String> {
    let (which, hint) = match &target {
        Target::Context(Some(context)) => (
            format!("kubeconfig context {context}"),
            "KUBECONFIG names the kubeconfig files",
        ),
        Target::Context(None) => (
            "the current kubeconfig context".to_owned(),
            "KUBECONFIG names the kubeconfig files",
        ),
        Target::Gke(name) => (
            format!("GKE cluster {name}"),
            "--gke uses Application Default Credentials, which need container.clusters.get",
        ),
    };
    let connecting = async {
        let cluster = match target {
            Target::Context(context) => {
                let mut cluster = hype_runtime::KubeCluster::new();
                if let Some(context) = context {
                    cluster = cluster.context(context);
                }
                cluster
            }
            Target::Gke(name) => {
                let mut gke = hype_runtime::ContainerEngineCluster::new(
                    name.project,
                    name.location,
                    name.cluster,
                );
                if let Some(endpoint) = std::env::var(GKE_API_ENDPOINT)
                    .ok()
                    .filter(|e| !e.is_empty())
                {
                    gke = gke.api_endpoint(endpoint);
                }
                gke.kube_cluster().await?
            }
        };
        let cluster = match namespace {
            Some(namespace) => cluster.namespace(namespace),
            None => cluster,
        };
        cluster.client().await
    };
    tokio::time::timeout(CALL_BOUND, connecting)
        .await
        .map_err(|_| format!("cannot reach {which}: no result within {CALL_BOUND:?}"))?
        .map_err(|err| format!("cannot reach {which}: {err} ({hint})"))
}

/// Whether a kubeconfig (or an in-cluster service account) can be loaded:
/// what `ps` and `logs` default to.
pub async fn usable() -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(10), kube::Config::infer()).await,
        Ok(Ok(_))
    )
}

/// Runs one API call within [`CALL_BOUND`]; the error says what was done.
pub async fn bounded<T>(
    what: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_BOUND, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(format!("cannot {what}: {}", message(&err))),
        Err(_) => Err(format!(
            "cannot {what}: the API server did not answer within {CALL_BOUND:?}"
        )),
    }
}

/// Whether an API error is a 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

/// The API server's message when it sent one.
fn message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} (HTTP {})", status.message, status.code),
        other => other.to_string(),
    }
}
