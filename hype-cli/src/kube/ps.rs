//! `hype ps --kube`: hype's pods in a namespace, as table rows, each with
//! its phase ([`super::phase`]) and, for a pod waiting for a node, the
//! cluster autoscaler's latest word about it (its events). A running warm
//! worker's phase is its state as its submitter wrote it on the pod
//! (`worker: busy 2, 37 calls`, `worker: idle, 40 calls`).

use hype_runtime::__tools::CONTAINER;
use hype_runtime::__tools::labels::{
    ANNOTATION_WORKER_BUSY, ANNOTATION_WORKER_CALLS, ANNOTATION_WORKER_STATE, LABEL_EXECUTION_ID,
    LABEL_FUNCTION, LABEL_ROLE, LABEL_SESSION, ROLE_WORKER,
};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};

use super::{bounded, phase, selector};
use crate::table::Row;

/// The most pods waiting for a node whose events one listing reads (one
/// request each); the others show the scheduler's message alone.
pub const EVENT_READS: usize = 20;

/// The component the cluster autoscaler writes its events as.
const AUTOSCALER: &str = "cluster-autoscaler";

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
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut rows = Vec::with_capacity(list.items.len());
    let mut reads = 0;
    for pod in &list.items {
        let mut row = row(pod, now);
        if row.phase == "waiting-for-node" && reads < EVENT_READS {
            reads += 1;
            if let Some(word) = autoscaler(&events, pod).await {
                row.detail.push_str("; ");
                row.detail.push_str(&word);
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The cluster autoscaler's latest event about `pod`, as `autoscaler:
/// REASON: message`; `None` when it has said nothing or the events
/// cannot be read (`list` on `events` is in docs/rbac.yaml's
/// hype-operator Role; without it the scheduler's message stands alone).
async fn autoscaler(events: &Api<Event>, pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.as_deref()?;
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let list = bounded(
        &format!("list the events of pod {name}"),
        events.list(&params),
    )
    .await
    .ok()?;
    let latest = list
        .items
        .iter()
        .filter(|e| {
            let source = e.source.as_ref().and_then(|s| s.component.as_deref());
            source == Some(AUTOSCALER) || e.reporting_component.as_deref() == Some(AUTOSCALER)
        })
        .enumerate()
        .max_by_key(|(i, e)| {
            let at = e
                .last_timestamp
                .as_ref()
                .or(e.first_timestamp.as_ref())
                .map(|t| t.0);
            (at, *i)
        })
        .map(|(_, e)| e)?;
    Some(format!(
        "autoscaler: {}: {}",
        latest.reason.as_deref().unwrap_or("event"),
        latest.message.as_deref().unwrap_or("")
    ))
}

/// The time from `then` to `now`, none if `then` is unknown (0 if later).
fn since(then: Option<Timestamp>, now: Timestamp) -> Option<std::time::Duration> {
    then.map(|then| {
        let nanos = (now.as_nanosecond() - then.as_nanosecond()).max(0);
        std::time::Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    })
}

/// The phase of a warm worker's pod while it runs: `worker`, then its
/// state (`starting`, `idle`, `busy N`) and the calls it ran, from the
/// annotations its submitter writes (at most every 10 s: they may lag).
/// `None` for a call's pod.
fn worker_phase(meta: &ObjectMeta) -> Option<String> {
    let role = meta.labels.as_ref()?.get(LABEL_ROLE)?;
    if role != ROLE_WORKER {
        return None;
    }
    let annotation = |key: &str| {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(|v| v.chars().filter(|c| !c.is_control()).collect::<String>())
    };
    let mut phase = "worker".to_owned();
    if let Some(state) = annotation(ANNOTATION_WORKER_STATE) {
        phase = format!("{phase}: {state}");
        if state == "busy"
            && let Some(busy) = annotation(ANNOTATION_WORKER_BUSY)
        {
            phase = format!("{phase} {busy}");
        }
        if let Some(calls) = annotation(ANNOTATION_WORKER_CALLS) {
            phase = format!("{phase}, {calls} calls");
        }
    }
    Some(phase)
}

/// A pod's row: its phase and how long it has been in it, its age as of
/// `now`, its node (`-` before it is placed).
fn row(pod: &Pod, now: Timestamp) -> Row {
    let meta = &pod.metadata;
    let label = |key: &str| {
        meta.labels
            .as_ref()
            .and_then(|labels| labels.get(key))
            .cloned()
    };
    let name = meta.name.clone().unwrap_or_default();
    let phase = phase::of(pod, CONTAINER);
    Row {
        execution: label(LABEL_EXECUTION_ID).unwrap_or_else(|| name.clone()),
        function: label(LABEL_FUNCTION).unwrap_or_else(|| "-".to_owned()),
        session: label(LABEL_SESSION).unwrap_or_else(|| "-".to_owned()),
        phase: match worker_phase(meta) {
            Some(worker) if phase.name == "running" => worker,
            _ => phase.name.to_owned(),
        },
        in_phase: since(phase.since, now),
        age: since(meta.creation_timestamp.as_ref().map(|t| t.0), now),
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| "-".to_owned()),
        detail: phase.detail,
    }
}
