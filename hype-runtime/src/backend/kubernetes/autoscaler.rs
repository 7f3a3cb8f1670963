//! What the cluster autoscaler says about an unschedulable pod, read from
//! the pod's events: `TriggeredScaleUp` (a node is being added for it: the
//! call waits up to the scale-up timeout), `NotTriggerScaleUp` (no node
//! will be added), or nothing (no autoscaler, or it has not looked yet:
//! the call waits up to the pending timeout).
//!
//! A `NotTriggerScaleUp` fails the call at once, with the scheduler's
//! and the autoscaler's messages, unless the autoscaler says a node group
//! that would take the pod is only full (`max node group size reached`,
//! `max cluster cpu limit reached`, `max cluster memory limit reached`,
//! `max cluster cpu, memory limit reached`): room frees up there as other
//! pods (other calls of a fan-out) end, so the call waits up to the
//! pending timeout.
//!
//! The events are read only for a pod the scheduler has called
//! unschedulable, with one `list` of the pod's namespace filtered by
//! `involvedObject.name` (never a watch), at most once per
//! [`events_every`] per pod. A refused or failing read leaves the last
//! verdict in place: the pending timeout still applies, so a submitter
//! without the `list events` rule behaves as before the autoscaler was
//! read (it is said once per session, at `warn`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

/// The component the cluster autoscaler writes its events as.
const COMPONENT: &str = "cluster-autoscaler";
/// The bound on one read of a pod's events.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a pod's events are read while it is unschedulable: a quarter
/// of the pending timeout, between 200 ms and 15 s (so one pod costs at
/// most 4 requests a minute; a cluster autoscaler looks every 10 s).
pub(crate) fn events_every(pending_timeout: Duration) -> Duration {
    (pending_timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(15))
}

/// The autoscaler's latest word on a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Verdict {
    /// No event of the autoscaler about the pod.
    #[default]
    Silent,
    /// `TriggeredScaleUp`, with the autoscaler's message: a node is coming.
    ScalingUp(String),
    /// `NotTriggerScaleUp`, with the autoscaler's message: none will,
    /// and no node group that would take the pod is only full.
    NoScaleUp(String),
    /// `NotTriggerScaleUp` because node groups (or the cluster's limits)
    /// that would take the pod are full, with the autoscaler's message:
    /// room may free up.
    GroupsFull(String),
}

impl Verdict {
    /// Whether the call should fail now rather than wait.
    pub(crate) fn is_final(&self) -> bool {
        matches!(self, Verdict::NoScaleUp(_))
    }
}

/// Whether a `NotTriggerScaleUp` message says a node group that would
/// take the pod is full, rather than that none would.
fn only_full(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("max node group size reached")
        || (message.contains("max cluster") && message.contains("limit reached"))
}

impl Verdict {
    /// What the verdict adds to the scheduler's message when the call
    /// fails.
    pub(crate) fn explain(&self, waited: Duration) -> String {
        match self {
            Verdict::Silent => String::new(),
            Verdict::ScalingUp(message) => format!(
                "; the cluster autoscaler started a scale-up ({message}) but no node took the pod within the scale-up timeout ({waited:?})"
            ),
            Verdict::NoScaleUp(message) | Verdict::GroupsFull(message) => {
                format!("; the cluster autoscaler will not add a node: {message}")
            }
        }
    }
}

/// The latest of the autoscaler's events about a pod, by last timestamp
/// (then by the list's order).
pub(crate) fn verdict(events: &[Event]) -> Verdict {
    let autoscaler = |e: &&Event| {
        let source = e.source.as_ref().and_then(|s| s.component.as_deref());
        source == Some(COMPONENT) || e.reporting_component.as_deref() == Some(COMPONENT)
    };
    let latest = events
        .iter()
        .filter(autoscaler)
        .filter(|e| e.involved_object.kind.as_deref().is_none_or(|k| k == "Pod"))
        .enumerate()
        .max_by_key(|(i, e)| {
            let at = e
                .last_timestamp
                .as_ref()
                .or(e.first_timestamp.as_ref())
                .map(|t| t.0);
            (at, *i)
        })
        .map(|(_, e)| e);
    let Some(event) = latest else {
        return Verdict::Silent;
    };
    let message = event.message.clone().unwrap_or_default();
    match event.reason.as_deref() {
        Some("TriggeredScaleUp") => Verdict::ScalingUp(message),
        Some("NotTriggerScaleUp") if only_full(&message) => Verdict::GroupsFull(message),
        Some("NotTriggerScaleUp") => Verdict::NoScaleUp(message),
        _ => Verdict::Silent,
    }
}

/// Reads pods' events for the autoscaler's verdicts.
#[derive(Debug)]
pub(crate) struct AutoscalerEvents {
    events: Api<Event>,
    namespace: String,
    /// Whether a failed read was said already (once per session).
    warned: AtomicBool,
}

impl AutoscalerEvents {
    pub(crate) fn new(events: Api<Event>, namespace: &str) -> AutoscalerEvents {
        AutoscalerEvents {
            events,
            namespace: namespace.to_owned(),
            warned: AtomicBool::new(false),
        }
    }

    /// The autoscaler's verdict on pod `pod`, or `None` when its events
    /// cannot be read now (one attempt: the caller reads again later).
    pub(crate) async fn read(&self, pod: &str) -> Option<Verdict> {
        let params = ListParams::default().fields(&format!("involvedObject.name={pod}"));
        let answer = tokio::time::timeout(READ_TIMEOUT, self.events.list(&params)).await;
        let failure = match answer {
            Ok(Ok(list)) => return Some(verdict(&list.items)),
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no answer within {READ_TIMEOUT:?}"),
        };
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                pod,
                namespace = %self.namespace,
                error = %failure,
                "cannot read the events of an unschedulable pod, so whether the cluster autoscaler is adding a node is unknown; such pods fail after the pending timeout (grant `list` on `events`, see docs/rbac.yaml)"
            );
        } else {
            tracing::debug!(pod, error = %failure, "cannot read the pod's events");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str, component: &str, at: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": reason,
            "message": format!("{reason} said"),
            "source": {"component": component},
            "lastTimestamp": at,
        }))
        .unwrap()
    }

    #[test]
    fn the_latest_autoscaler_event_decides() {
        assert_eq!(verdict(&[]), Verdict::Silent);
        let up = event("TriggeredScaleUp", COMPONENT, "2026-01-01T00:00:10Z");
        let no = event("NotTriggerScaleUp", COMPONENT, "2026-01-01T00:00:05Z");
        assert_eq!(
            verdict(&[up.clone(), no.clone()]),
            Verdict::ScalingUp("TriggeredScaleUp said".into())
        );
        let later_no = event("NotTriggerScaleUp", COMPONENT, "2026-01-01T00:00:20Z");
        assert!(verdict(std::slice::from_ref(&later_no)).is_final());
        assert_eq!(
            verdict(&[up, later_no]),
            Verdict::NoScaleUp("NotTriggerScaleUp said".into())
        );
        // The scheduler's own events are not the autoscaler's word.
        let scheduler = event(
            "FailedScheduling",
            "default-scheduler",
            "2026-01-01T00:00:30Z",
        );
        assert_eq!(verdict(&[no.clone(), scheduler]), verdict(&[no]));
    }

    #[test]
    fn full_node_groups_are_worth_waiting_for_and_nothing_else() {
        let said = |message: &str| {
            let mut e = event("NotTriggerScaleUp", COMPONENT, "2026-01-01T00:00:05Z");
            e.message = Some(message.to_owned());
            verdict(&[e])
        };
        for full in [
            "pod didn't trigger scale-up: 1 max node group size reached",
            "pod didn't trigger scale-up: 2 node(s) didn't match Pod's node affinity/selector, 1 max node group size reached",
            "pod didn't trigger scale-up: max cluster cpu limit reached",
            "pod didn't trigger scale-up: max cluster cpu, memory limit reached",
        ] {
            assert!(matches!(said(full), Verdict::GroupsFull(_)), "{full}");
            assert!(!said(full).is_final(), "{full}");
        }
        for hopeless in [
            "pod didn't trigger scale-up: 1 node(s) didn't match Pod's node affinity/selector",
            "pod didn't trigger scale-up (it wouldn't fit if a new node is added): 1 Insufficient nvidia.com/gpu",
        ] {
            assert!(said(hopeless).is_final(), "{hopeless}");
        }
        assert!(!Verdict::Silent.is_final());
        assert!(!Verdict::ScalingUp(String::new()).is_final());
    }

    #[test]
    fn events_are_read_at_a_bounded_rate() {
        assert_eq!(
            events_every(Duration::from_secs(300)),
            Duration::from_secs(15)
        );
        assert_eq!(
            events_every(Duration::from_secs(1)),
            Duration::from_millis(250)
        );
        assert_eq!(events_every(Duration::ZERO), Duration::from_millis(200));
    }
}
