//! The Kubernetes runner: each call is a pod whose `hype-run` container
//! executes it (the `kubernetes` feature).
//!
//! A call's path: its claims are made sure of (`volumes`), its pod is
//! built (`pod`) and created (bounded retries of transient API errors,
//! `retry`), the submitter's shared watch (`watch`) wakes the call on
//! every change of its pod, and the pod's status is read (`status`) until
//! the container ends or something is diagnosed: an image that cannot be
//! pulled or a missing secret fail fast, an unschedulable pod fails after
//! the pending timeout with the scheduler's message (after the longer
//! scale-up timeout while the cluster autoscaler, read from the pod's
//! events by `autoscaler`, is adding a node for it), and OOM kills,
//! evictions, deletions by someone else and the deadline each have their
//! own error. The outcome comes from the termination message. The pod is
//! deleted once it is read, when the call's future is dropped, and on
//! timeout; transient claims go when the submitter closes.
//!
//! Each submitter holds a Lease ([`lease`]) that owns its pods and
//! transient claims; `close()` deletes what is left by label and then the
//! Lease, so the cluster's garbage collector removes anything else
//! (`deletion`). On drop of the last submitter clone without
//! [`crate::Submitter::close`], pods of calls in flight are deleted by
//! background tasks and so is the Lease (when a tokio runtime is still
//! running), so the garbage collector takes the transient claims; a Lease
//! that could not be deleted goes stale, and `hype gc` collects it with
//! what it owns. Everything hype creates carries the labels
//! `app.kubernetes.io/managed-by=hype` and `hype.dev/session=<session>`.
//!
//! The files, in the order a call meets them: [`cluster`] (the
//! [`KubeCluster`] settings and connecting; [`gke`] finds a GKE cluster's
//! endpoint and credentials first; [`lease`] the session's Lease),
//! `volumes` (claims), `pod` (the pod of a call; `security` its
//! security context), `runner` (create,
//! wait, read, delete), `watch` (the shared watch that wakes each call,
//! and its fault handling), `autoscaler` (whether a node is coming for
//! an unschedulable pod), `status` (what a pod's status says, and the
//! error it stands for), `logs` (the pod's output, followed),
//! `deletion` (deleting without giving up, the sweep on close),
//! `retry` (bounded retries of API requests), `refusal` (whether a
//! refusal is RBAC's, admission control's or the request's own),
//! `workers` (warm workers: pods that run many calls, over one
//! `pods/attach` stream each, for environments with
//! [`crate::RunEnvironment::with_workers`] or `HYPE_WORKERS`).

pub(crate) mod autoscaler;
pub mod cluster;
pub(crate) mod deletion;
#[cfg(feature = "gke")]
pub mod gke;
pub mod lease;
pub(crate) mod logs;
pub(crate) mod pod;
pub(crate) mod refusal;
pub(crate) mod retry;
pub(crate) mod runner;
pub(crate) mod security;
pub(crate) mod status;
pub(crate) mod volumes;
pub(crate) mod watch;
pub(crate) mod workers;

pub use self::cluster::KubeCluster;
#[cfg(feature = "gke")]
pub use self::gke::ContainerEngineCluster;
/// The name of the container that runs `hype-run` in every pod (for the
/// `hype` command).
pub use self::pod::CONTAINER;
