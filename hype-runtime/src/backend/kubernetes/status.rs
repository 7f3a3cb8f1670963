//! What a pod's status says about its call ([`progress`]): still going,
//! finished, or stuck or failed for a reason hype can name; and the error
//! each diagnosis stands for ([`error`]). Pure functions of the pod, so
//! every case is unit-tested without a cluster.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::pod::CONTAINER;
use crate::backend::Job;
use crate::error::Error;
use crate::phases::{Mark, PhaseRecorder};

/// Pod reasons meaning its node went away under it: graceful node
/// shutdown (`Terminated`, as GKE's spot and preemptible VMs give when
/// reclaimed, or `NodeShutdown`), and a lost node (`NodeLost`).
const PREEMPTED_REASONS: &[&str] = &["Terminated", "NodeShutdown", "NodeLost", "Shutdown"];

/// Waiting reasons meaning the image cannot be had.
const IMAGE_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
];
/// Waiting reasons meaning the container cannot be created as specified.
const CONFIG_REASONS: &[&str] = &[
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Where a call's pod is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not finished. `unschedulable` holds the scheduler's message when no
    /// node can take the pod.
    Waiting {
        /// The scheduler's message, when the pod cannot be placed.
        unschedulable: Option<String>,
    },
    /// The container ended.
    Terminated {
        /// Its exit code.
        exit_code: i32,
        /// The runtime's reason (`Completed`, `Error`).
        reason: Option<String>,
        /// The termination message (or the log tail, with
        /// `FallbackToLogsOnError`).
        message: Option<String>,
    },
    /// The image cannot be pulled.
    ImageUnavailable {
        /// The image.
        image: String,
        /// The waiting reason.
        reason: String,
        /// The runtime's message.
        message: String,
    },
    /// The container cannot be created (a missing secret, for instance).
    ContainerConfig {
        /// The waiting reason.
        reason: String,
        /// The runtime's message.
        message: String,
    },
    /// The container was killed for exceeding its memory limit.
    OutOfMemory,
    /// The node evicted the pod.
    Evicted {
        /// The eviction message.
        message: String,
    },
    /// The pod's node was shut down or lost (a spot VM reclaimed, a node
    /// drained or gone).
    Preempted {
        /// The pod's reason, or the disruption condition's.
        reason: String,
        /// The pod's message, or the condition's.
        message: String,
    },
    /// `activeDeadlineSeconds` passed.
    DeadlineExceeded,
    /// The pod failed without a container outcome (another reason).
    FailedOtherwise {
        /// The pod's reason and message.
        status: String,
    },
}

/// Reads a pod's status.
pub fn progress(pod: &Pod) -> Progress {
    let Some(status) = &pod.status else {
        return Progress::Waiting {
            unschedulable: None,
        };
    };
    match status.reason.as_deref() {
        Some("Evicted") => {
            return Progress::Evicted {
                message: status.message.clone().unwrap_or_default(),
            };
        }
        Some("DeadlineExceeded") => return Progress::DeadlineExceeded,
        Some(reason) if PREEMPTED_REASONS.contains(&reason) => {
            return Progress::Preempted {
                reason: reason.to_owned(),
                message: status.message.clone().unwrap_or_default(),
            };
        }
        _ => {}
    }
    // A pod the kubelet, the scheduler or the pod GC disrupted fails with
    // a `DisruptionTarget` condition (Kubernetes 1.26+).
    if status.phase.as_deref() == Some("Failed")
        && let Some(condition) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
    {
        return Progress::Preempted {
            reason: condition
                .reason
                .clone()
                .unwrap_or_else(|| "DisruptionTarget".to_owned()),
            message: condition.message.clone().unwrap_or_default(),
        };
    }
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == CONTAINER);
    if let Some(state) = container.and_then(|c| c.state.as_ref()) {
        if let Some(terminated) = &state.terminated {
            if terminated.reason.as_deref() == Some("OOMKilled") {
                return Progress::OutOfMemory;
            }
            return Progress::Terminated {
                exit_code: terminated.exit_code,
                reason: terminated.reason.clone(),
                message: terminated.message.clone().filter(|m| !m.is_empty()),
            };
        }
        if let Some(waiting) = &state.waiting {
            let reason = waiting.reason.clone().unwrap_or_default();
            let message = waiting.message.clone().unwrap_or_default();
            if IMAGE_REASONS.contains(&reason.as_str()) {
                let image = container
                    .map(|c| c.image.clone())
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| {
                        pod.spec
                            .as_ref()
                            .and_then(|s| s.containers.iter().find(|c| c.name == CONTAINER))
                            .and_then(|c| c.image.clone())
                            .unwrap_or_default()
                    });
                return Progress::ImageUnavailable {
                    image,
                    reason,
                    message,
                };
            }
            if CONFIG_REASONS.contains(&reason.as_str()) {
                return Progress::ContainerConfig { reason, message };
            }
        }
    }
    if status.phase.as_deref() == Some("Failed") {
        let status = match (&status.reason, &status.message) {
            (Some(r), Some(m)) => format!("pod failed: {r}: {m}"),
            (Some(r), None) => format!("pod failed: {r}"),
            (None, Some(m)) => format!("pod failed: {m}"),
            (None, None) => "pod failed without a reason".to_owned(),
        };
        return Progress::FailedOtherwise { status };
    }
    let unschedulable = status
        .conditions
        .iter()
        .flatten()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
        .map(|c| {
            c.message
                .clone()
                .unwrap_or_else(|| "no node can take the pod".to_owned())
        });
    Progress::Waiting { unschedulable }
}

/// Stamps on `phases` what a pod's status shows: `PodScheduled` true
/// (scheduled), the call's container out of `ContainerCreating` and
/// running or ended (image ready, started), ended (exited). Each is
/// stamped when the caller first sees it, by its own clock: the status's
/// times are another machine's.
pub(crate) fn observe(phases: &PhaseRecorder, pod: &Pod) {
    let Some(status) = &pod.status else {
        return;
    };
    let scheduled = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "PodScheduled" && c.status == "True");
    if scheduled {
        phases.mark(Mark::Scheduled);
    }
    let Some(state) = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == CONTAINER)
        .and_then(|c| c.state.as_ref())
    else {
        return;
    };
    if state.running.is_some() || state.terminated.is_some() {
        phases.mark(Mark::ImageReady);
        phases.mark(Mark::Started);
    }
    if state.terminated.is_some() {
        phases.mark(Mark::Exited);
    }
}

/// The error a diagnosed pod stands for: an image that cannot be pulled, a
/// container that cannot be created, an OOM kill, an eviction, the
/// deadline. `pod` is the pod as last seen, for the memory limit and the
/// deadline. Progress that is no diagnosis (still waiting, terminated,
/// failed otherwise) is reported as such, for the caller to handle first.
pub(crate) fn error(progress: Progress, job: &Job, pod: Option<&Pod>) -> Error {
    let function = job.function.to_owned();
    let execution_id = job.execution_id.clone();
    match progress {
        Progress::ImageUnavailable {
            image,
            reason,
            message,
        } => Error::ImageUnavailable {
            function,
            execution_id,
            image,
            reason,
            message,
        },
        Progress::ContainerConfig { reason, message } => Error::ContainerConfig {
            function,
            execution_id,
            reason,
            message,
        },
        Progress::OutOfMemory => Error::OutOfMemory {
            function,
            execution_id,
            limit: pod.and_then(memory_limit),
        },
        Progress::Evicted { message } => Error::Evicted {
            function,
            execution_id,
            message,
        },
        Progress::Preempted { reason, message } => Error::Preempted {
            function,
            execution_id,
            reason,
            message,
        },
        Progress::DeadlineExceeded => Error::Timeout {
            function,
            execution_id,
            after: pod
                .and_then(|pod| pod.spec.as_ref()?.active_deadline_seconds)
                .map(|s| Duration::from_secs(s.max(0).unsigned_abs()))
                .unwrap_or_default(),
        },
        other @ (Progress::Waiting { .. }
        | Progress::Terminated { .. }
        | Progress::FailedOtherwise { .. }) => Error::Cluster {
            operation: format!("read the status of pod {execution_id}"),
            message: format!("{other:?} is not a diagnosis"),
            source: None,
        },
    }
}

/// The memory limit of the pod's `hype-run` container, as written.
fn memory_limit(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == CONTAINER)?
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("memory")
        .map(|q| q.0.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "hype-run", "image": "img:1"}]},
            "status": status,
        }))
        .unwrap()
    }

    fn container(state: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"phase": "Pending", "containerStatuses": [{
            "name": "hype-run", "image": "img:1", "imageID": "", "ready": false, "restartCount": 0, "state": state
        }]})
    }

    #[test]
    fn pending_and_running_are_waiting() {
        assert_eq!(
            progress(&pod(serde_json::json!({"phase": "Pending"}))),
            Progress::Waiting {
                unschedulable: None
            }
        );
        let running =
            container(serde_json::json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}));
        assert_eq!(
            progress(&pod(running)),
            Progress::Waiting {
                unschedulable: None
            }
        );
    }

    #[test]
    fn unschedulable_carries_the_scheduler_message() {
        let p = pod(serde_json::json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient cpu."
        }]}));
        assert_eq!(
            progress(&p),
            Progress::Waiting {
                unschedulable: Some("0/3 nodes are available: 3 Insufficient cpu.".into())
            }
        );
    }

    #[test]
    fn image_and_config_errors_fail_fast() {
        for reason in ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"] {
            let p = pod(container(
                serde_json::json!({"waiting": {"reason": reason, "message": "not found"}}),
            ));
            assert_eq!(
                progress(&p),
                Progress::ImageUnavailable {
                    image: "img:1".into(),
                    reason: reason.into(),
                    message: "not found".into()
                }
            );
        }
        let p = pod(container(serde_json::json!({"waiting": {
            "reason": "CreateContainerConfigError", "message": "secret \"gcp-key\" not found"
        }})));
        assert_eq!(
            progress(&p),
            Progress::ContainerConfig {
                reason: "CreateContainerConfigError".into(),
                message: "secret \"gcp-key\" not found".into()
            }
        );
        let creating = pod(container(
            serde_json::json!({"waiting": {"reason": "ContainerCreating"}}),
        ));
        assert_eq!(
            progress(&creating),
            Progress::Waiting {
                unschedulable: None
            }
        );
    }

    #[test]
    fn terminations() {
        let done = pod(container(
            serde_json::json!({"terminated": {"exitCode": 0, "reason": "Completed", "message": "inline:AA=="}}),
        ));
        assert_eq!(
            progress(&done),
            Progress::Terminated {
                exit_code: 0,
                reason: Some("Completed".into()),
                message: Some("inline:AA==".into())
            }
        );
        let oom = pod(container(
            serde_json::json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
        ));
        assert_eq!(progress(&oom), Progress::OutOfMemory);
        let evicted = pod(
            serde_json::json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}),
        );
        assert_eq!(
            progress(&evicted),
            Progress::Evicted {
                message: "The node was low on resource: memory.".into()
            }
        );
        let deadline = pod(serde_json::json!({"phase": "Failed", "reason": "DeadlineExceeded"}));
        assert_eq!(progress(&deadline), Progress::DeadlineExceeded);
        let other =
            pod(serde_json::json!({"phase": "Failed", "reason": "UnexpectedAdmissionError"}));
        assert_eq!(
            progress(&other),
            Progress::FailedOtherwise {
                status: "pod failed: UnexpectedAdmissionError".into()
            }
        );
    }

    #[test]
    fn a_node_that_went_away_is_a_preemption() {
        let spot = pod(serde_json::json!({
            "phase": "Failed", "reason": "Terminated",
            "message": "Pod was terminated in response to imminent node shutdown."
        }));
        assert_eq!(
            progress(&spot),
            Progress::Preempted {
                reason: "Terminated".into(),
                message: "Pod was terminated in response to imminent node shutdown.".into()
            }
        );
        let lost = pod(serde_json::json!({"phase": "Failed", "reason": "NodeLost"}));
        assert!(
            matches!(progress(&lost), Progress::Preempted { reason, .. } if reason == "NodeLost")
        );
        let disrupted = pod(serde_json::json!({
            "phase": "Failed",
            "conditions": [{"type": "DisruptionTarget", "status": "True",
                            "reason": "DeletionByPodGC", "message": "PodGC: node no longer exists"}]
        }));
        assert_eq!(
            progress(&disrupted),
            Progress::Preempted {
                reason: "DeletionByPodGC".into(),
                message: "PodGC: node no longer exists".into()
            }
        );
        // A disruption condition on a pod still running is no loss yet.
        let running = pod(serde_json::json!({
            "phase": "Running",
            "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"}]
        }));
        assert!(matches!(progress(&running), Progress::Waiting { .. }));
    }
}
