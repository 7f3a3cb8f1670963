//! `hype gc --kube`: the Leases of dead submitters, and the pods and
//! transient claims of sessions whose Lease is gone or stale.
//!
//! A Lease is stale, as of the command's start:
//!
//! - when its holder (`spec.holderIdentity`, the submitter's
//!   [`Owner`]: `<pid>.<start>.<boot>@<host>`) ran on this host since its
//!   last boot and no longer runs: at once, whatever the grace period;
//! - never while that holder runs on this host, however long ago the
//!   Lease was renewed (a suspended submitter keeps its session);
//! - otherwise (a holder on another host, of an earlier boot, or one that
//!   cannot be read) once its last renewal (`spec.renewTime`, else
//!   `spec.acquireTime`, else its creation) plus its duration
//!   (`spec.leaseDurationSeconds`, none if absent) plus the grace period
//!   has passed: the Lease's own meaning, with the grace added on top. A
//!   grace of `0s` thus still leaves every Lease within its duration.
//!
//! An earlier boot of this host is judged by time rather than at once: a
//! boot ID that differs may as well be another machine with the same host
//! name, whose live sessions must not be taken.
//!
//! Stale Leases are deleted with background propagation,
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
use hype_runtime::__tools::{Liveness, Owner};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams};

use super::{bounded, is_not_found, selector};
use crate::duration;
use crate::report::Report;

/// What became of one session's Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LeaseState {
    /// Its holder runs on this host, or it is within its duration and the
    /// grace period: the session lives.
    Live,
    /// The session is dead; why, as a phrase that follows the Lease's
    /// name ("not renewed for 14m (duration 1m + grace 10m)").
    Stale(String),
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

/// `spec.leaseDurationSeconds`; zero when absent or negative.
fn lease_duration(lease: &Lease) -> Duration {
    let seconds = lease
        .spec
        .as_ref()
        .and_then(|s| s.lease_duration_seconds)
        .unwrap_or(0);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// The Lease's holder, when it names a process of this host since its
/// last boot: the only holders whose liveness this command can see.
fn local_holder(lease: &Lease) -> Option<Owner> {
    let text = lease.spec.as_ref()?.holder_identity.as_deref()?;
    Owner::parse(text).filter(Owner::on_this_boot)
}

/// A Lease's state under `grace`, as of `started`: see the module docs.
fn lease_state(lease: &Lease, grace: Duration, started: Timestamp) -> LeaseState {
    if let Some(holder) = local_holder(lease) {
        match holder.liveness() {
            Liveness::Alive => return LeaseState::Live,
            Liveness::Dead => {
                return LeaseState::Stale(format!(
                    "is held by {holder}, which no longer runs on this host"
                ));
            }
            Liveness::Unknown => {}
        }
    }
    let unrenewed = unrenewed_for(lease, started);
    let duration = lease_duration(lease);
    if unrenewed <= duration.saturating_add(grace) {
        return LeaseState::Live;
    }
    let bound = format!(
        "duration {} + grace {}",
        duration::format(duration),
        duration::format(grace)
    );
    LeaseState::Stale(if unrenewed == Duration::MAX {
        format!("has no renewal, acquire or creation time ({bound})")
    } else {
        format!("not renewed for {} ({bound})", duration::format(unrenewed))
    })
}

/// Why a pod or claim of `session` goes, given the session's Lease state.
fn orphan_reason(session: &str, lease: Option<&LeaseState>) -> Option<String> {
    let name = format!("hype-{}", label_value(session));
    match lease {
        None => Some(format!("session {session} has no lease ({name} is gone)")),
        Some(LeaseState::Stale(why)) => Some(format!("session {session}'s lease {name} {why}")),
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

/// One `hype gc --kube` run.
#[derive(Debug, Clone, Copy)]
pub struct Gc<'a> {
    /// The namespace looked in.
    pub namespace: &'a str,
    /// Added to a Lease's duration: see the module docs.
    pub grace: Duration,
    /// When the command started: what staleness is judged against.
    pub started: Timestamp,
    /// Only this session's Lease, pods and claims, if given.
    pub session: Option<&'a str>,
}

impl Gc<'_> {
    /// Collects in the namespace: see the module docs. With a session that
    /// has no Lease, pod or claim there, says so as a failure.
    pub async fn collect(&self, client: &kube::Client, report: &mut Report) {
        let Gc {
            namespace,
            grace,
            started,
            session,
        } = *self;
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
        let selector = ListParams::default().labels(&selector(session));
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
        if let Some(session) = session
            && pod_list.is_empty()
            && claim_list.is_empty()
            && lease_list.is_empty()
        {
            return report.failed(&format!(
                "session {session} has no lease, pod or claim in namespace {namespace} (`hype ps` lists the sessions that have pods; --namespace picks another namespace)"
            ));
        }
        collect_listed(
            (&pods, &claims, &leases),
            (pod_list, claim_list, lease_list),
            grace,
            started,
            report,
        )
        .await;
    }
}

/// Judges and deletes what was listed: see the module docs.
async fn collect_listed(
    (pods, claims, leases): (&Api<Pod>, &Api<PersistentVolumeClaim>, &Api<Lease>),
    (pod_list, claim_list, lease_list): (Vec<Pod>, Vec<PersistentVolumeClaim>, Vec<Lease>),
    grace: Duration,
    started: Timestamp,
    report: &mut Report,
) {
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
        if let LeaseState::Stale(why) = state {
            delete(leases, "lease", name, &why, report).await;
        }
    }

    for pod in &pod_list {
        let (Some(session), Some(name)) = (
            hype_session(pod.meta().labels.as_ref()),
            pod.meta().name.as_deref(),
        ) else {
            continue;
        };
        if let Some(why) = orphan_reason(session, sessions.get(session)) {
            delete(pods, "pod", name, &why, report).await;
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
        if let Some(why) = orphan_reason(session, sessions.get(session)) {
            delete(claims, "claim", name, &why, report).await;
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
        held(renewed, acquired, created, Some(60), "1.2.abc@elsewhere")
    }

    /// A Lease held by `holder` with a duration of `duration` seconds.
    fn held(
        renewed: Option<i64>,
        acquired: Option<i64>,
        created: Option<i64>,
        duration: Option<i32>,
        holder: &str,
    ) -> Lease {
        Lease {
            metadata: ObjectMeta {
                creation_timestamp: created.map(|s| Time(at(s))),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                renew_time: renewed.map(|s| MicroTime(at(s))),
                acquire_time: acquired.map(|s| MicroTime(at(s))),
                lease_duration_seconds: duration,
                holder_identity: Some(holder.to_owned()),
                ..Default::default()
            }),
        }
    }

    fn stale(why: &str) -> LeaseState {
        LeaseState::Stale(why.to_owned())
    }

    #[test]
    fn a_lease_of_another_host_is_stale_past_its_duration_and_the_grace() {
        let started = at(10_000);
        let grace = Duration::from_secs(600);
        let renewed_14m_ago = lease(Some(10_000 - 840), Some(0), Some(0));
        assert_eq!(
            lease_state(&renewed_14m_ago, grace, started),
            stale("not renewed for 14m (duration 1m + grace 10m)")
        );
        // Renewed 10m30s ago: within 1m + 10m.
        let renewed_630s_ago = lease(Some(10_000 - 630), Some(0), Some(0));
        assert_eq!(
            lease_state(&renewed_630s_ago, grace, started),
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
        assert_eq!(
            lease_state(&lease(None, None, None), grace, started),
            stale("has no renewal, acquire or creation time (duration 1m + grace 10m)")
        );
        // No duration: the grace alone.
        let no_duration = held(Some(10_000 - 601), None, None, None, "x");
        assert_eq!(
            lease_state(&no_duration, grace, started),
            stale("not renewed for 10m (duration 0s + grace 10m)")
        );
    }

    #[test]
    fn a_zero_grace_leaves_every_lease_within_its_duration() {
        let started = at(10_000);
        let zero = Duration::ZERO;
        for renewed in [10_000 - 60, 10_000 - 1, 10_000, 10_005] {
            assert_eq!(
                lease_state(&lease(Some(renewed), None, None), zero, started),
                LeaseState::Live,
                "renewed at {renewed}"
            );
        }
        assert_eq!(
            lease_state(&lease(Some(10_000 - 61), None, None), zero, started),
            stale("not renewed for 1m (duration 1m + grace 0s)")
        );
    }

    #[test]
    fn a_holder_on_this_host_is_judged_by_whether_it_runs() {
        let started = at(10_000);
        let me = Owner::current();
        // Alive: never stale, however old the renewal and small the grace.
        let mine = held(Some(0), None, None, Some(60), &me.to_string());
        assert_eq!(
            lease_state(&mine, Duration::ZERO, started),
            LeaseState::Live
        );
        // Gone (the same PID with another start time): stale at once, even
        // renewed just now and under a long grace.
        let boot = me.tag().rsplit('.').next().unwrap().to_owned();
        let gone = format!("{}.1.{boot}@{}", me.pid(), me.host());
        let dead = held(Some(10_000), None, None, Some(60), &gone);
        assert_eq!(
            lease_state(&dead, Duration::from_secs(7 * 86_400), started),
            LeaseState::Stale(format!(
                "is held by {gone}, which no longer runs on this host"
            ))
        );
        // An earlier boot of this host (or another machine of its name):
        // by time, as another host.
        let earlier_boot = format!("{}.1.00000000@{}", me.pid(), me.host());
        let rebooted = held(Some(10_000 - 30), None, None, Some(60), &earlier_boot);
        assert_eq!(
            lease_state(&rebooted, Duration::ZERO, started),
            LeaseState::Live
        );
        let rebooted = held(Some(10_000 - 90), None, None, Some(60), &earlier_boot);
        assert!(matches!(
            lease_state(&rebooted, Duration::ZERO, started),
            LeaseState::Stale(_)
        ));
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
        assert_eq!(
            orphan_reason("s1", None).unwrap(),
            "session s1 has no lease (hype-s1 is gone)"
        );
        assert_eq!(orphan_reason("s1", Some(&LeaseState::Live)), None);
        assert_eq!(
            orphan_reason(
                "s1",
                Some(&stale("not renewed for 2m (duration 1m + grace 0s)"))
            )
            .unwrap(),
            "session s1's lease hype-s1 not renewed for 2m (duration 1m + grace 0s)"
        );
    }
}
