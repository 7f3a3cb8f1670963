//! Where a pod's execution is, read from the pod's status, as `hype ps`
//! shows it: its phase, since when, and why it waits.
//!
//! | phase | when | since |
//! |---|---|---|
//! | `scheduling` | not yet placed, and the scheduler has not said it cannot be | creation |
//! | `waiting-for-node` | `PodScheduled` False, reason `Unschedulable` (the scheduler's message; the cluster autoscaler's word is added by the caller) | the condition's lastTransitionTime |
//! | `image-pull` | the container waits with a pull error (`ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`, …; the reason and message) | placement |
//! | `container-start` | placed; the container is being created (`ContainerCreating`, which includes an image pull that has not failed: Kubernetes does not tell them apart in the status) | placement |
//! | `running` | the container runs | its startedAt |
//! | `ended` | the pod Succeeded or Failed, or the container terminated (reason and exit code) | its finishedAt |
//! | `terminating` | being deleted | the deletion request |

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The waiting reasons of a container whose image cannot be pulled.
const PULL_ERRORS: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
    "SignatureValidationFailed",
];

/// Where an execution is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// `scheduling`, `waiting-for-node`, `image-pull`, `container-start`,
    /// `running`, `ended`, `terminating` (see the module's table).
    pub name: &'static str,
    /// When it entered the phase, when the status says.
    pub since: Option<Timestamp>,
    /// Why it waits or how it ended (empty when there is nothing to say).
    pub detail: String,
}

/// The container that runs `hype-run` (named `container`), else the
/// pod's first.
fn container_status<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .iter()
        .find(|s| s.name == container)
        .or_else(|| statuses.first())
}

fn condition<'a>(pod: &'a Pod, kind: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

/// `reason: message`, either alone, or empty.
fn reason_message(reason: Option<&str>, message: Option<&str>) -> String {
    match (reason, message) {
        (Some(r), Some(m)) if !m.is_empty() => format!("{r}: {m}"),
        (Some(r), _) => r.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => String::new(),
    }
}

/// The phase of `pod`, whose `hype-run` container is named `container`.
pub fn of(pod: &Pod, container: &str) -> Phase {
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if let Some(deleted) = &pod.metadata.deletion_timestamp {
        // The deletion timestamp is the request plus the grace period.
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return Phase {
            name: "terminating",
            since: deleted.0.checked_sub(SignedDuration::from_secs(grace)).ok(),
            detail: String::new(),
        };
    }
    let status = pod.status.as_ref();
    let container = container_status(pod, container);
    let terminated = container
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    let pod_phase = status.and_then(|s| s.phase.as_deref());
    if matches!(pod_phase, Some("Succeeded" | "Failed")) || terminated.is_some() {
        let mut detail = pod_phase.unwrap_or("Running").to_owned();
        let pod_reason = reason_message(
            status.and_then(|s| s.reason.as_deref()),
            status.and_then(|s| s.message.as_deref()),
        );
        if !pod_reason.is_empty() {
            detail = format!("{detail}: {pod_reason}");
        }
        if let Some(t) = terminated {
            detail.push_str(&format!(
                " (exit code {}{})",
                t.exit_code,
                t.reason
                    .as_deref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default()
            ));
        }
        return Phase {
            name: "ended",
            since: terminated.and_then(|t| t.finished_at.as_ref()).map(|t| t.0),
            detail,
        };
    }
    let scheduled = condition(pod, "PodScheduled");
    let placed = scheduled.filter(|c| c.status == "True");
    let Some(placed) = placed else {
        if let Some(c) = scheduled.filter(|c| c.reason.as_deref() == Some("Unschedulable")) {
            return Phase {
                name: "waiting-for-node",
                since: c.last_transition_time.as_ref().map(|t| t.0).or(created),
                detail: reason_message(c.reason.as_deref(), c.message.as_deref()),
            };
        }
        return Phase {
            name: "scheduling",
            since: created,
            detail: String::new(),
        };
    };
    let placed_at = placed
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
        .or(created);
    let state = container.and_then(|c| c.state.as_ref());
    if let Some(running) = state.and_then(|s| s.running.as_ref()) {
        return Phase {
            name: "running",
            since: running.started_at.as_ref().map(|t| t.0).or(placed_at),
            detail: String::new(),
        };
    }
    let waiting = state.and_then(|s| s.waiting.as_ref());
    let reason = waiting.and_then(|w| w.reason.as_deref());
    let detail = reason_message(reason, waiting.and_then(|w| w.message.as_deref()));
    if reason.is_some_and(|r| PULL_ERRORS.contains(&r)) {
        return Phase {
            name: "image-pull",
            since: placed_at,
            detail,
        };
    }
    Phase {
        name: "container-start",
        since: placed_at,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "hype-f-1", "creationTimestamp": "2026-12-06T10:00:00Z"},
            "status": status,
        }))
        .unwrap()
    }

    fn at(text: &str) -> Option<Timestamp> {
        Some(text.parse().unwrap())
    }

    const SCHEDULED: &str = "2026-12-06T10:00:02Z";

    fn placed(containers: serde_json::Value) -> Pod {
        pod(serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": SCHEDULED}],
            "containerStatuses": containers,
        }))
    }

    #[test]
    fn a_pod_not_placed_is_scheduling_or_waiting_for_a_node() {
        let phase = of(&pod(serde_json::json!({"phase": "Pending"})), "hype-run");
        assert_eq!(
            (phase.name, phase.since),
            ("scheduling", at("2026-12-06T10:00:00Z"))
        );
        let phase = of(
            &pod(serde_json::json!({"phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu.",
                "lastTransitionTime": "2026-12-06T10:00:01Z"}]})),
            "hype-run",
        );
        assert_eq!(phase.name, "waiting-for-node");
        assert_eq!(phase.since, at("2026-12-06T10:00:01Z"));
        assert_eq!(
            phase.detail,
            "Unschedulable: 0/3 nodes are available: 3 Insufficient cpu."
        );
    }

    #[test]
    fn a_placed_pod_pulls_starts_runs_and_ends() {
        let waiting = |reason: &str, message: &str| {
            serde_json::json!([{"name": "hype-run", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}}])
        };
        let phase = of(&placed(waiting("ContainerCreating", "")), "hype-run");
        assert_eq!(
            (phase.name, phase.since, phase.detail.as_str()),
            ("container-start", at(SCHEDULED), "ContainerCreating")
        );
        let phase = of(
            &placed(waiting(
                "ImagePullBackOff",
                "Back-off pulling image \"x:1\"",
            )),
            "hype-run",
        );
        assert_eq!(phase.name, "image-pull");
        assert_eq!(
            phase.detail,
            "ImagePullBackOff: Back-off pulling image \"x:1\""
        );
        let phase = of(&placed(serde_json::json!([])), "hype-run");
        assert_eq!(phase.name, "container-start");
        let running = serde_json::json!([{"name": "hype-run", "image": "i", "imageID": "", "ready": true,
            "restartCount": 0, "state": {"running": {"startedAt": "2026-12-06T10:00:05Z"}}}]);
        let phase = of(&placed(running), "hype-run");
        assert_eq!(
            (phase.name, phase.since),
            ("running", at("2026-12-06T10:00:05Z"))
        );
        let ended = pod(
            serde_json::json!({"phase": "Failed", "containerStatuses": [{
            "name": "hype-run", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                     "finishedAt": "2026-12-06T10:01:00Z"}}}]}),
        );
        let phase = of(&ended, "hype-run");
        assert_eq!(phase.name, "ended");
        assert_eq!(phase.since, at("2026-12-06T10:01:00Z"));
        assert_eq!(phase.detail, "Failed (exit code 137, OOMKilled)");
    }

    #[test]
    fn a_pod_being_deleted_is_terminating_since_the_request() {
        let mut pod = placed(serde_json::json!([]));
        pod.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-12-06T10:00:40Z".parse().unwrap(),
            ));
        pod.metadata.deletion_grace_period_seconds = Some(30);
        let phase = of(&pod, "hype-run");
        assert_eq!(
            (phase.name, phase.since),
            ("terminating", at("2026-12-06T10:00:10Z"))
        );
    }
}
