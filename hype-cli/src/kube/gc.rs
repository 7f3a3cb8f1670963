//! `hype gc --kube`: the Leases of dead submitters, and the pods and
//! transient claims of sessions whose Lease is gone or stale.
//!
//! A Lease is stale when the command's start is more than the grace period
//! after its last renewal (`spec.renewTime`, else `spec.acquireTime`, else
//! its creation): with a grace of `0s`, every Lease not renewed since the
//! command started. Stale Leases are deleted with background propagation,
//! so the garbage collector removes what they own; their pods and claims
//! are deleted here too, since not every API server runs a garbage
//! collector.
//!
//! Pods and claims are listed *before* the Leases: a submitter creates its
//! Lease before anything it owns, so every pod or claim seen has its Lease
//! in the listing that follows, and a session that starts meanwhile is
//! never taken for one without a Lease. Every object's labels are checked
//! before it is deleted: `app.kubernetes.io/managed-by=hype` and a session;
//! for claims `hype.dev/lifetime=transient` (a persistent claim is never
//! collected).

use std::collections::BTreeMap;
use std::time::Duration;

use hype_runtime::__tools::labels::{
    LABEL_LIFETIME, LABEL_MANAGED_BY, LABEL_SESSION, MANAGED_BY, label_value,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams};

use super::{bounded, is_not_found, managed_selector};
use crate::duration;
use crate::report::Report;

/// What became of one session's Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LeaseState {
    /// Renewed within the grace period: the session lives.
    Live,
    /// Not renewed for this long (more than the grace period).
    Stale(Duration),
}

/// The labels of a hype object, if it is one: its session.
fn hype_session(labels: Option<&BTreeMap<String, String>>) -> Option<&str> {
    let labels = labels?;
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY) {
        return None;
    }
    labels
        .get(LABEL_SESSION)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// When a Lease was last renewed, else acquired, else created.
fn last_renewal(lease: &Lease) -> Option<Timestamp> {
    let spec = lease.spec.as_ref();
    spec.and_then(|s| s.renew_time.as_ref().map(|t| t.0))
        .or_else(|| spec.and_then(|s| s.acquire_time.as_ref().map(|t| t.0)))
        .or_else(|| lease.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// How long before `started` the Lease was last renewed (zero if after).
fn unrenewed_for(lease: &Lease, started: Timestamp) -> Duration {
    let Some(last) = last_renewal(lease) else {
        return Duration::MAX;
    };
    let nanos = started.as_nanosecond() - last.as_nanosecond();
    u64::try_from(nanos.max(0))
        .map(Duration::from_nanos)
        .unwrap_or(Duration::MAX)
}

/// A Lease's state under `grace`, as of `started`.
fn lease_state(lease: &Lease, grace: Duration, started: Timestamp) -> LeaseState {
    let unrenewed = unrenewed_for(lease, started);
    if unrenewed > grace {
        LeaseState::Stale(unrenewed)
    } else {
        LeaseState::Live
    }
}

/// Why a stale Lease goes.
fn stale_reason(unrenewed: Duration, grace: Duration) -> String {
    if unrenewed == Duration::MAX {
        return format!(
            "has no renewal, acquire or creation time (grace {})",
            duration::format(grace)
        );
    }
    format!(
        "not renewed for {} (grace {})",
        duration::format(unrenewed),
        duration::format(grace)
    )
}

/// Why a pod or claim of `session` goes, given the session's Lease state.
fn orphan_reason(session: &str, lease: Option<&LeaseState>, grace: Duration) -> Option<String> {
    let name = format!("hype-{}", label_value(session));
    match lease {
        None => Some(format!("session {session} has no lease ({name} is gone)")),
        Some(LeaseState::Stale(unrenewed)) => Some(format!(
            "session {session}'s lease {name} {}",
            stale_reason(*unrenewed, grace)
        )),
        Some(LeaseState::Live) => None,
    }
}

/// Deletes one object (background propagation); one gone already counts
/// as removed.
async fn delete<K>(api: &Api<K>, kind: &'static str, name: &str, why: &str, report: &mut Report)
where
    K: Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
{
    if !report.dry_run() {
        let deleting = async {
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(err) if is_not_found(&err) => Ok(()),
                Err(err) => Err(err),
            }
        };
        if let Err(err) = bounded(&format!("delete {kind} {name}"), deleting).await {
            report.failed(&err);
            return;
        }
    }
    report.removed(kind, name, why);
}

/// Collects in `namespace`: see the module docs.
pub async fn collect(
    client: &kube::Client,
    namespace: &str,
    grace: Duration,
    started: Timestamp,
    report: &mut Report,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let selector = ListParams::default().labels(&managed_selector());
    let in_ns = |what: &str| format!("list {what} in namespace {namespace}");
    // Pods and claims first: see the module docs.
    let pod_list = match bounded(&in_ns("hype's pods"), pods.list(&selector)).await {
        Ok(list) => list.items,
        Err(err) => return report.failed(&err),
    };
    let claim_list = match bounded(&in_ns("hype's claims"), claims.list(&selector)).await {
        Ok(list) => list.items,
        Err(err) => return report.failed(&err),
    };
    let lease_list = match bounded(&in_ns("hype's leases"), leases.list(&selector)).await {
        Ok(list) => list.items,
        Err(err) => return report.failed(&err),
    };

    let mut sessions: BTreeMap<String, LeaseState> = BTreeMap::new();
    for lease in &lease_list {
        let Some(session) = hype_session(lease.metadata.labels.as_ref()) else {
            continue;
        };
        let Some(name) = lease.metadata.name.as_deref() else {
            continue;
        };
        let state = lease_state(lease, grace, started);
        // Two Leases of one session (should not be): live if either is.
        let entry = sessions
            .entry(session.to_owned())
            .or_insert_with(|| state.clone());
        if state == LeaseState::Live {
            *entry = LeaseState::Live;
        }
        if let LeaseState::Stale(unrenewed) = state {
            delete(
                &leases,
                "lease",
                name,
                &stale_reason(unrenewed, grace),
                report,
            )
            .await;
        }
    }

    for pod in &pod_list {
        let (Some(session), Some(name)) = (
            hype_session(pod.meta().labels.as_ref()),
            pod.meta().name.as_deref(),
        ) else {
            continue;
        };
        if let Some(why) = orphan_reason(session, sessions.get(session), grace) {
            delete(&pods, "pod", name, &why, report).await;
        }
    }
    for claim in &claim_list {
        let labels = claim.meta().labels.as_ref();
        let transient = labels
            .and_then(|l| l.get(LABEL_LIFETIME))
            .is_some_and(|l| l == "transient");
        let (Some(session), Some(name), true) = (
            hype_session(labels),
            claim.meta().name.as_deref(),
            transient,
        ) else {
            continue;
        };
        if let Some(why) = orphan_reason(session, sessions.get(session), grace) {
            delete(&claims, "claim", name, &why, report).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn lease(renewed: Option<i64>, acquired: Option<i64>, created: Option<i64>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                creation_timestamp: created.map(|s| Time(at(s))),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                renew_time: renewed.map(|s| MicroTime(at(s))),
                acquire_time: acquired.map(|s| MicroTime(at(s))),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_lease_is_stale_past_its_grace_from_its_last_sign_of_life() {
        let started = at(10_000);
        let grace = Duration::from_secs(600);
        let renewed_14m_ago = lease(Some(10_000 - 840), Some(0), Some(0));
        assert_eq!(
            lease_state(&renewed_14m_ago, grace, started),
            LeaseState::Stale(Duration::from_secs(840))
        );
        assert_eq!(
            stale_reason(Duration::from_secs(840), grace),
            "not renewed for 14m (grace 10m)"
        );
        let renewed_1m_ago = lease(Some(10_000 - 60), Some(0), Some(0));
        assert_eq!(
            lease_state(&renewed_1m_ago, grace, started),
            LeaseState::Live
        );
        // No renewal: the acquire time, then the creation time count.
        assert_eq!(
            lease_state(&lease(None, Some(9_990), Some(0)), grace, started),
            LeaseState::Live
        );
        assert!(matches!(
            lease_state(&lease(None, None, Some(0)), grace, started),
            LeaseState::Stale(_)
        ));
        assert!(matches!(
            lease_state(&lease(None, None, None), grace, started),
            LeaseState::Stale(Duration::MAX)
        ));
    }

    #[test]
    fn a_zero_grace_takes_every_lease_renewed_before_the_start() {
        let started = at(10_000);
        assert!(matches!(
            lease_state(&lease(Some(9_999), None, None), Duration::ZERO, started),
            LeaseState::Stale(_)
        ));
        assert_eq!(
            lease_state(&lease(Some(10_000), None, None), Duration::ZERO, started),
            LeaseState::Live
        );
        assert_eq!(
            lease_state(&lease(Some(10_005), None, None), Duration::ZERO, started),
            LeaseState::Live,
            "renewed after the start"
        );
    }

    #[test]
    fn only_hype_objects_with_a_session_are_judged() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let hype = labels(&[(LABEL_MANAGED_BY, MANAGED_BY), (LABEL_SESSION, "s1")]);
        assert_eq!(hype_session(Some(&hype)), Some("s1"));
        let other = labels(&[(LABEL_MANAGED_BY, "helm"), (LABEL_SESSION, "s1")]);
        assert_eq!(hype_session(Some(&other)), None);
        let no_session = labels(&[(LABEL_MANAGED_BY, MANAGED_BY)]);
        assert_eq!(hype_session(Some(&no_session)), None);
        assert_eq!(hype_session(None), None);
        let grace = Duration::from_secs(600);
        assert_eq!(
            orphan_reason("s1", None, grace).unwrap(),
            "session s1 has no lease (hype-s1 is gone)"
        );
        assert_eq!(orphan_reason("s1", Some(&LeaseState::Live), grace), None);
    }
}
