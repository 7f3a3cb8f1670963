//! `hype ps --kube`: hype's pods in a namespace, as table rows.

use hype_runtime::__tools::labels::{LABEL_EXECUTION_ID, LABEL_FUNCTION, LABEL_SESSION};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};

use super::{bounded, selector};
use crate::table::Row;

/// One row per pod labelled `app.kubernetes.io/managed-by=hype` (and
/// with `session`, of that session).
pub async fn rows(
    client: &kube::Client,
    namespace: &str,
    session: Option<&str>,
) -> Result<Vec<Row>, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = bounded(
        &format!("list hype's pods in namespace {namespace}"),
        pods.list(&ListParams::default().labels(&selector(session))),
    )
    .await?;
    let now = Timestamp::now();
    Ok(list.items.iter().map(|pod| row(pod, now)).collect())
}

/// A pod's row: its phase (`Terminating` once it is being deleted), its
/// age as of `now`, its node (`-` before it is scheduled).
fn row(pod: &Pod, now: Timestamp) -> Row {
    let meta = &pod.metadata;
    let label = |key: &str| {
        meta.labels
            .as_ref()
            .and_then(|labels| labels.get(key))
            .cloned()
    };
    let name = meta.name.clone().unwrap_or_default();
    let phase = if meta.deletion_timestamp.is_some() {
        "Terminating".to_owned()
    } else {
        pod.status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".to_owned())
    };
    let age = meta.creation_timestamp.as_ref().map(|created| {
        let nanos = (now.as_nanosecond() - created.0.as_nanosecond()).max(0);
        std::time::Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    });
    Row {
        execution: label(LABEL_EXECUTION_ID).unwrap_or_else(|| name.clone()),
        function: label(LABEL_FUNCTION).unwrap_or_else(|| "-".to_owned()),
        session: label(LABEL_SESSION).unwrap_or_else(|| "-".to_owned()),
        phase,
        age,
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| "-".to_owned()),
    }
}
