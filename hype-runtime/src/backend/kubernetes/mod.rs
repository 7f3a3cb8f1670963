//! The Kubernetes runner: each call is a pod whose `hype-run` container
//! executes it (the `kubernetes` feature).
//!
//! A call's path: its claims are made sure of ([`volumes`]), its pod is
//! built ([`pod`]) and created (bounded retries of transient API errors,
//! [`retry`]), the submitter's shared watch ([`watch`]) wakes the call on
//! every change of its pod, and the pod's status is read ([`status`]) until
//! the container ends or something is diagnosed: an image that cannot be
//! pulled or a missing secret fail fast, an unschedulable pod fails after
//! the pending timeout with the scheduler's message, and OOM kills,
//! evictions, deletions by someone else and the deadline each have their
//! own error. The outcome comes from the termination message. The pod is
//! deleted once it is read, when the call's future is dropped, and on
//! timeout; transient claims go when the submitter closes.
//!
//! On drop of the last submitter clone without [`crate::Submitter::close`],
//! pods of calls still in flight are deleted by background tasks (when a
//! tokio runtime is still running) but transient claims stay: close the
//! submitter to remove them. Everything hype creates carries the labels
//! `app.kubernetes.io/managed-by=hype` and `hype.dev/session=<session>`, so
//! leftovers can be found with `kubectl get pods,pvc -l app.kubernetes.io/managed-by=hype`.
//!
//! The files, in the order a call meets them: [`cluster`] (the
//! [`KubeCluster`] settings and connecting; [`gke`] finds a GKE cluster's
//! endpoint and credentials first), [`volumes`] (claims), [`pod`] (the pod
//! of a call), [`runner`] (create, wait, read, delete), [`watch`] (the
//! shared watch that wakes each call), [`status`] (what a pod's status
//! says, and the error it stands for), [`retry`] (bounded retries of API
//! requests).

pub mod cluster;
pub(crate) mod deletion;
#[cfg(feature = "gcs")]
pub mod gke;
pub mod lease;
pub(crate) mod logs;
pub(crate) mod pod;
pub(crate) mod retry;
pub(crate) mod runner;
pub(crate) mod status;
pub(crate) mod volumes;
pub(crate) mod watch;

pub use self::cluster::{DEFAULT_PENDING_TIMEOUT, KubeCluster};
#[cfg(feature = "gcs")]
pub use self::gke::ContainerEngineCluster;
