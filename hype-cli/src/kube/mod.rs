//! Kubernetes for the `hype` command: connecting through a kubeconfig
//! context (as `KubeCluster` does), and bounded API calls. [`gc`] removes
//! what dead sessions left, [`ps`] lists executions, [`logs`] prints one's
//! log.
//!
//! What hype creates there (the runner's contract): a Lease
//! `hype-<session>` per submitter, renewed while it lives; pods and
//! transient claims labelled with their session and owned (ownerReference)
//! by that Lease; persistent claims labelled `hype.dev/lifetime=persistent`,
//! never collected.

pub mod gc;
pub mod logs;
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

/// A client for the kubeconfig `context` (the current one when `None`, or
/// the in-cluster service account), and the namespace to use: `namespace`,
/// else the context's, else `default`. The runtime's own
/// ([`hype_runtime::KubeCluster::client`]), so the CLI connects as a
/// submitter does.
pub async fn connect(
    context: Option<String>,
    namespace: Option<String>,
) -> Result<(kube::Client, String), String> {
    let which = match &context {
        Some(context) => format!("kubeconfig context {context}"),
        None => "the current kubeconfig context".to_owned(),
    };
    let mut cluster = hype_runtime::KubeCluster::new();
    if let Some(context) = context {
        cluster = cluster.context(context);
    }
    if let Some(namespace) = namespace {
        cluster = cluster.namespace(namespace);
    }
    tokio::time::timeout(CALL_BOUND, cluster.client())
        .await
        .map_err(|_| format!("cannot load {which}: no result within {CALL_BOUND:?}"))?
        .map_err(|err| {
            format!("cannot load {which}: {err} (KUBECONFIG names the kubeconfig files)")
        })
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
