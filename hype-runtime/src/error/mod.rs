//! The one error type of hype: what went wrong with a remote call, to what,
//! and what to do about it.
//!
//! Errors of the user's own code are not here: a function returning
//! `Result<T, E>` gives `Ok(Err(e))` with `E` carried across the wire. A
//! panic in the user's code is [`Error::RemotePanic`].

//!
//! The enum and its variants are here; [`ErrorKind`] (the kind of each
//! variant, for retry policies) and [`Attempt`] in `kind.rs`,
//! [`Admission`] (what refused an object at admission) in `admission.rs`,
//! [`ErrorSource`] (the shared underlying error) in `source.rs`, and what
//! an error names or says about itself in `accessors.rs`.

use std::path::PathBuf;
use std::time::Duration;

mod accessors;
mod admission;
mod kind;
mod source;

pub use admission::Admission;
pub use kind::{Attempt, ErrorKind};
pub use source::ErrorSource;

/// Everything that can go wrong between calling a remote function and
/// holding its result.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The function panicked where it ran.
    #[error("remote function {function} panicked{}: {message}", location.as_deref().map(|l| format!(" at {l}")).unwrap_or_default())]
    #[non_exhaustive]
    RemotePanic {
        /// The function's ID.
        function: String,
        /// The panic message (`panic!` payload).
        message: String,
        /// `file:line:column` of the panic, when known.
        location: Option<String>,
        /// The execution (pod, container or process) that ran it.
        execution_id: String,
    },

    /// The binary that received the call has no function with this ID:
    /// built from other source (version skew), or, when it knows no
    /// function at all, an image holding only the launcher `hype-run` that
    /// was sent a call without a shipped executable.
    #[error("{}", unknown_function_message(function, execution_id, known))]
    #[non_exhaustive]
    UnknownFunction {
        /// The requested ID.
        function: String,
        /// The execution that refused it.
        execution_id: String,
        /// Some IDs the remote binary does know.
        known: Vec<String>,
    },

    /// The remote binary has the function, with other argument or return types.
    #[error(
        "remote function {function} has another signature in the binary that ran {execution_id} (caller {expected:016x}, remote {found:016x}): the image or worker binary was built from other source; rebuild it from the same source"
    )]
    #[non_exhaustive]
    SignatureMismatch {
        /// The function's ID.
        function: String,
        /// The caller's signature hash.
        expected: u64,
        /// The remote binary's signature hash.
        found: u64,
        /// The execution that refused it.
        execution_id: String,
    },

    /// Bytes that should be a hype envelope or payload are not one.
    #[error("malformed {what}: {reason}")]
    #[non_exhaustive]
    MalformedEnvelope {
        /// What was being decoded (for example "call envelope").
        what: String,
        /// Why it is not valid.
        reason: String,
    },

    /// `hype-run` was invoked with the wrong arguments.
    #[error("bad hype-run invocation: {message}")]
    #[non_exhaustive]
    BadInvocation {
        /// What was wrong.
        message: String,
    },

    /// A staged object is not where its reference says.
    #[error(
        "staged object {uri} does not exist: the staging area was cleaned or points elsewhere; check HYPE_STAGING"
    )]
    #[non_exhaustive]
    StagedObjectMissing {
        /// The object's URI.
        uri: String,
    },

    /// A staged blob's bytes do not hash to the digest that names it.
    #[error(
        "staged object {uri} is corrupt: expected sha256 {expected} ({expected_len} bytes), found {actual} ({actual_len} bytes); delete it and run again"
    )]
    #[non_exhaustive]
    DigestMismatch {
        /// The object's URI.
        uri: String,
        /// The digest its reference names.
        expected: String,
        /// The digest of the bytes found.
        actual: String,
        /// The length its reference names.
        expected_len: u64,
        /// The length found.
        actual_len: u64,
    },

    /// The staging store failed.
    #[error("staging {operation} {uri} failed: {message}")]
    #[non_exhaustive]
    Staging {
        /// What was being done ("write", "read", …).
        operation: &'static str,
        /// The object or location.
        uri: String,
        /// What went wrong, in hype's words; the underlying error's own
        /// text is in `source`, not repeated here.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<ErrorSource>,
    },

    /// Arguments or a result could not be encoded.
    #[error("cannot encode the {what} of {function}: {message}")]
    #[non_exhaustive]
    Encode {
        /// The function's ID.
        function: String,
        /// "arguments" or "result".
        what: &'static str,
        /// The serializer's message.
        message: String,
    },

    /// Arguments or a result could not be decoded into their Rust type.
    #[error("cannot decode the {what} of {function}: {message}")]
    #[non_exhaustive]
    Decode {
        /// The function's ID.
        function: String,
        /// "arguments" or "result".
        what: &'static str,
        /// The deserializer's message.
        message: String,
    },

    /// The call did not finish within the environment's timeout.
    #[error(
        "remote function {function} ({execution_id}) did not finish within {after:?}; it was stopped. Raise RunEnvironment::with_timeout if it needs longer"
    )]
    #[non_exhaustive]
    Timeout {
        /// The function's ID.
        function: String,
        /// The execution that was stopped.
        execution_id: String,
        /// The timeout.
        after: Duration,
    },

    /// The call was stopped before it finished by something other than its
    /// caller: the submitter was closed, or the execution was killed from
    /// outside.
    #[error("remote function {function} ({execution_id}) was cancelled: {reason}")]
    #[non_exhaustive]
    Cancelled {
        /// The function's ID.
        function: String,
        /// The execution that was stopped.
        execution_id: String,
        /// Who or what stopped it.
        reason: String,
    },

    /// The execution ended without a readable outcome.
    #[error("remote function {function} ({execution_id}) failed: {status}{}", if stderr_tail.is_empty() { String::new() } else { format!("; its stderr ended with:\n{stderr_tail}") })]
    #[non_exhaustive]
    RunnerFailed {
        /// The function's ID.
        function: String,
        /// The execution.
        execution_id: String,
        /// How it ended (exit status, signal, or the runner's word).
        status: String,
        /// The last lines the execution wrote to stderr.
        stderr_tail: String,
        /// The signal that killed it, when one did (a container's exit
        /// code 128 + n counts as signal n). SIGKILL, SIGTERM, SIGINT or
        /// SIGHUP with no outcome written is an execution lost to the
        /// infrastructure ([`ErrorKind::Lost`]).
        signal: Option<i32>,
    },

    /// The image of the call cannot be pulled or found (Kubernetes
    /// `ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`; Docker: no
    /// such image locally and none to pull).
    #[error(
        "{execution_id} cannot start: image {image} is unavailable ({reason}: {message}); check the image name and the pull credentials of the node or engine"
    )]
    #[non_exhaustive]
    ImageUnavailable {
        /// The function's ID.
        function: String,
        /// The execution (pod or container).
        execution_id: String,
        /// The image.
        image: String,
        /// The runtime's reason (`ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`, `NotFound`).
        reason: String,
        /// The runtime's message.
        message: String,
    },

    /// The container could not be created from its configuration (Kubernetes
    /// `CreateContainerConfigError`, for instance a missing secret).
    #[error("{execution_id} cannot start: {reason}: {message}")]
    #[non_exhaustive]
    ContainerConfig {
        /// The function's ID.
        function: String,
        /// The execution.
        execution_id: String,
        /// The runtime's reason.
        reason: String,
        /// The runtime's message (naming the missing secret, for instance).
        message: String,
    },

    /// No node could take the execution within the pending timeout, or
    /// within the scale-up timeout while the cluster autoscaler was adding
    /// one; or at once, when the autoscaler said it will add none
    /// (`NotTriggerScaleUp`) and no node group that would take it is only
    /// full.
    #[error(
        "{execution_id} was not scheduled within {after:?}: {message}; lower the resource requests or add capacity"
    )]
    #[non_exhaustive]
    Unschedulable {
        /// The function's ID.
        function: String,
        /// The execution.
        execution_id: String,
        /// The scheduler's message, then what the cluster autoscaler said
        /// about the pod, if anything.
        message: String,
        /// How long hype waited: the pending timeout, the scale-up
        /// timeout when the autoscaler was adding a node, or less when it
        /// said no node will come.
        after: Duration,
    },

    /// The execution was killed for using more memory than its limit.
    #[error("remote function {function} ({execution_id}) ran out of memory{} and was killed; raise the memory limit with RunEnvironment::with_limit(\"memory\", ...)", limit.as_deref().map(|l| format!(" (limit {l})")).unwrap_or_default())]
    #[non_exhaustive]
    OutOfMemory {
        /// The function's ID.
        function: String,
        /// The execution.
        execution_id: String,
        /// The memory limit, when known.
        limit: Option<String>,
    },

    /// The node evicted the execution.
    #[error("{execution_id} was evicted from its node: {message}")]
    #[non_exhaustive]
    Evicted {
        /// The function's ID.
        function: String,
        /// The execution.
        execution_id: String,
        /// The eviction message.
        message: String,
    },

    /// The node running the execution was shut down or lost: a GKE spot
    /// or preemptible VM reclaimed, a node drained or gone (the pod's
    /// reason `Terminated`, `NodeShutdown` or `NodeLost`, or a
    /// `DisruptionTarget` condition).
    #[error(
        "{execution_id} was stopped because its node went away ({reason}: {message}); RunEnvironment::with_retries(n) runs such calls again"
    )]
    #[non_exhaustive]
    Preempted {
        /// The function's ID.
        function: String,
        /// The execution.
        execution_id: String,
        /// The pod's reason (`Terminated`, `NodeShutdown`, …).
        reason: String,
        /// The pod's message.
        message: String,
    },

    /// Every attempt of a call with retries ([`RunEnvironment::with_retries`])
    /// failed in a way that is retried (lost to the infrastructure, or a
    /// kind asked for): each attempt, with its error and how long it ran.
    ///
    /// [`RunEnvironment::with_retries`]: crate::RunEnvironment::with_retries
    #[error("remote function {function} failed {} times, and no retries are left: {}", attempts.len(), attempts.iter().enumerate().map(|(i, a)| format!("attempt {} ({}, {:.1?}): {}", i + 1, a.execution_id, a.took, a.error)).collect::<Vec<_>>().join("; "))]
    #[non_exhaustive]
    RetriesExhausted {
        /// The function's ID.
        function: String,
        /// Every attempt, in order.
        attempts: Vec<Attempt>,
    },

    /// Someone other than hype deleted the execution while it ran.
    #[error("{execution_id} was deleted by someone else while it ran (remote function {function})")]
    #[non_exhaustive]
    DeletedExternally {
        /// The function's ID.
        function: String,
        /// The execution.
        execution_id: String,
    },

    /// The cluster's API failed (after bounded retries for transient errors).
    #[error("cluster API {operation} failed: {message}")]
    #[non_exhaustive]
    Cluster {
        /// What was being done ("create pod hype-x-1", "watch pods", …).
        operation: String,
        /// What went wrong.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<ErrorSource>,
    },

    /// The cluster's API refused a request for lack of rights (HTTP 403
    /// from the authorizer, RBAC) or of valid credentials (HTTP 401). A 403
    /// from admission control (Pod Security, a webhook, a quota) is
    /// [`Error::AdmissionDenied`] instead. Not retried: the account needs
    /// the RBAC rule named (`docs/rbac.yaml` lists every rule hype uses),
    /// or fresh credentials.
    #[error(
        "the Kubernetes API refused to {verb} {resource} in namespace {namespace} (HTTP {code}: {message}); {}",
        if *code == 401 {
            "the submitter's credentials were not accepted: refresh them (kubeconfig, token) and run again".to_owned()
        } else {
            format!("the submitter's account needs this RBAC rule in a Role bound to it in namespace {namespace}: {{apiGroups: [\"{group}\"], resources: [\"{resource}\"], verbs: [\"{verb}\"]}} (docs/rbac.yaml has every rule hype needs)")
        }
    )]
    #[non_exhaustive]
    Forbidden {
        /// The verb refused (`create`, `watch`, `list`, `delete`, …).
        verb: String,
        /// The API group (`""` for the core group, `coordination.k8s.io`).
        group: String,
        /// The resource (`pods`, `persistentvolumeclaims`, `leases`, …).
        resource: String,
        /// The namespace.
        namespace: String,
        /// 401 or 403.
        code: u16,
        /// The API server's message.
        message: String,
    },

    /// The cluster's admission control refused to create (or change) an
    /// object that RBAC allowed: Pod Security admission (the namespace
    /// enforces `restricted` or `baseline` and the pod does not meet it),
    /// an admission webhook's or a `ValidatingAdmissionPolicy`'s denial, a
    /// `ResourceQuota`. [`Admission`] says which and names it; the API
    /// server's message names the field to change. Not an RBAC problem:
    /// no Role helps ([`Error::Forbidden`] is for those).
    ///
    /// Not retried, neither the request nor the call
    /// ([`ErrorKind::Other`]): the same pod would be refused again (a used
    /// up quota frees only as other pods end). To get past it, change the
    /// pod through a base pod ([`RunEnvironment::from_yaml`]) or the
    /// environment's options, or relax what refused it: for Pod Security,
    /// label the namespace `pod-security.kubernetes.io/enforce` with a
    /// lower level (`baseline`, `privileged`); for a webhook or policy, ask
    /// its owners; for a quota, lower the pod's requests and limits or
    /// raise the quota.
    ///
    /// [`RunEnvironment::from_yaml`]: crate::RunEnvironment::from_yaml
    #[error(
        "{by} refused to {operation} (HTTP {code}: {message}); {}",
        by.advice(namespace)
    )]
    #[non_exhaustive]
    AdmissionDenied {
        /// What was asked ("create pods hype-x-1 in namespace default").
        operation: String,
        /// The namespace.
        namespace: String,
        /// What refused it: Pod Security, a webhook, a policy, a quota.
        by: Admission,
        /// The HTTP status (403; a webhook may answer 400 or 422).
        code: u16,
        /// The API server's message, naming the policy and what to change.
        message: String,
        /// The client's typed error (`kube::Error`).
        #[source]
        source: Option<ErrorSource>,
    },

    /// The execution could not be started.
    #[error("cannot start {program}: {message}")]
    #[non_exhaustive]
    Spawn {
        /// What was started.
        program: PathBuf,
        /// Why it failed.
        message: String,
    },

    /// Two remote functions in one binary share an ID.
    #[error("duplicate remote function ID(s) {}: give one of each pair another name with #[hype::remote(name = \"...\")]", ids.join(", "))]
    #[non_exhaustive]
    DuplicateFunction {
        /// The IDs registered more than once.
        ids: Vec<String>,
    },

    /// A `RunEnvironment` asks for something this runner cannot give.
    #[error("invalid run environment: {}", problems.join("; "))]
    #[non_exhaustive]
    InvalidEnvironment {
        /// Every problem found, not only the first.
        problems: Vec<String>,
    },

    /// No Google Cloud credentials were found (Application Default
    /// Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's
    /// application-default file, the metadata server), for GCS staging or a
    /// GKE cluster.
    #[error(
        "no Google Cloud credentials found for {purpose}: {}. Set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, run `gcloud auth application-default login`, or run where a metadata server gives a service account (GCE, or a GKE pod with Workload Identity)",
        looked.join("; ")
    )]
    #[non_exhaustive]
    CredentialsNotFound {
        /// What the credentials were for (a bucket, a cluster).
        purpose: String,
        /// Every place hype looked, and what it found there.
        looked: Vec<String>,
    },

    /// The executable a submitter would ship with its calls cannot run
    /// where the calls go (not a Linux ELF executable, or for another
    /// machine): found when the submitter is built or a call is sent.
    #[error(
        "cannot ship {} with the calls: {reason}. Cross-build it for Linux (cargo build --target x86_64-unknown-linux-gnu, or --target x86_64-unknown-linux-musl for a static binary; aarch64-unknown-linux-gnu for arm64) and pass its path with HYPE_EXECUTABLE=/path or SubmitterBuilder::executable(path); or bake your binary into the image and turn shipping off with HYPE_SHIP_EXECUTABLE=0 or SubmitterBuilder::ship_executable(false)",
        path.display()
    )]
    #[non_exhaustive]
    ExecutableNotShippable {
        /// The executable.
        path: PathBuf,
        /// Why it cannot run there.
        reason: String,
    },

    /// The executable a call names is not in the staging store: the
    /// launcher where the call ran could not fetch it.
    #[error(
        "{execution_id} cannot fetch the executable its call names: {uri} is not in the staging store (was it deleted, or do the executions read another bucket?)"
    )]
    #[non_exhaustive]
    ExecutableMissing {
        /// The execution that looked for it.
        execution_id: String,
        /// Where it should be.
        uri: String,
    },

    /// The staged executable a call names does not match its digest or
    /// length.
    #[error("{execution_id} fetched a corrupt executable from {uri}: {message}")]
    #[non_exhaustive]
    ExecutableCorrupt {
        /// The execution that fetched it.
        execution_id: String,
        /// Where it was.
        uri: String,
        /// What did not match.
        message: String,
    },

    /// The shipped executable cannot start in the call's image: the
    /// dynamic loader refused it (a glibc newer than the image's, a missing
    /// shared library) or the kernel did (ENOEXEC).
    #[error(
        "{execution_id}: the shipped executable cannot start in image {image}: {message}. Build it against a glibc no newer than the image's (e.g. cargo zigbuild --target x86_64-unknown-linux-gnu.2.28), or as a static musl binary, or use an image that has its libraries"
    )]
    #[non_exhaustive]
    ExecutableCannotStart {
        /// The execution that tried to start it.
        execution_id: String,
        /// The image it ran in (`unknown` when the runner did not say).
        image: String,
        /// The loader's or the kernel's own message.
        message: String,
    },

    /// hype's configuration (`HYPE_CLUSTER`, `HYPE_STAGING`, a submitter
    /// setting) is invalid or names a backend that is not compiled in.
    #[error("configuration: {message}")]
    #[non_exhaustive]
    Config {
        /// What is wrong and how to fix it.
        message: String,
    },

    /// A cluster's API (the Kubernetes API server, the Docker engine)
    /// refused a request for good: an HTTP 4xx other than 408 (timeout),
    /// 409 (conflict, which hype handles itself) and 429 (too many
    /// requests), and neither a refusal by RBAC ([`Error::Forbidden`]) nor
    /// by admission ([`Error::AdmissionDenied`], which a used up quota is).
    /// An invalid pod (422), a missing namespace (404), a container the
    /// engine cannot create (400).
    /// Not retried, neither the request nor the call
    /// ([`ErrorKind::Other`]): the same request would be refused again.
    #[error("{api} rejected the request to {operation} (HTTP {code}): {message}")]
    #[non_exhaustive]
    Rejected {
        /// Which API: `the Kubernetes API`, `the Docker engine`.
        api: &'static str,
        /// What was asked ("create pods hype-x-1 in namespace default", …).
        operation: String,
        /// The HTTP status.
        code: u16,
        /// The server's own message (naming the invalid field, for
        /// instance).
        message: String,
        /// The client's typed error (`kube::Error`, `bollard::errors::Error`).
        #[source]
        source: Option<ErrorSource>,
    },

    /// The staging store failed for a reason that passes: it answered
    /// 5xx, 408 or 429, did not answer in time, or the connection failed,
    /// after the storage client's own retries. The call's data path was
    /// lost, not the user's code: [`ErrorKind::Lost`], so
    /// `RunEnvironment::with_retries` runs the call again.
    #[error(
        "staging {operation} {uri} failed for a transient reason: {message}; RunEnvironment::with_retries(n) runs such calls again"
    )]
    #[non_exhaustive]
    StagingUnavailable {
        /// What was being done ("write", "read", …).
        operation: &'static str,
        /// The object or location.
        uri: String,
        /// What went wrong, in hype's words.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<ErrorSource>,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// [`Error::UnknownFunction`]'s message. A binary that knows no function at
/// all is the generic image's launcher, sent a call with shipping off: the
/// advice is then to ship or to bake, not to look for version skew.
fn unknown_function_message(function: &str, execution_id: &str, known: &[String]) -> String {
    if known.is_empty() {
        return format!(
            "the hype-run that ran {execution_id} knows no remote functions, so not {function}: this image holds only the launcher; turn shipping on or bake the program (shipping is the default: a staging store the pods can read, HYPE_SHIP_EXECUTABLE unset, SubmitterBuilder::ship_executable not false; baking: docker/baked.Dockerfile, see docker/README.md)"
        );
    }
    format!(
        "the binary that ran {execution_id} has no remote function {function}: it was probably built from other source than this one (version skew); rebuild the image or worker binary from the same source (it knows {} function(s), e.g. {})",
        known.len(),
        known.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
    )
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The variant's name; exhaustive, so a new variant fails to compile
    /// here until it is in [`samples`] and the table.
    fn name(err: &Error) -> &'static str {
        match err {
            Error::RemotePanic { .. } => "RemotePanic",
            Error::UnknownFunction { .. } => "UnknownFunction",
            Error::SignatureMismatch { .. } => "SignatureMismatch",
            Error::MalformedEnvelope { .. } => "MalformedEnvelope",
            Error::BadInvocation { .. } => "BadInvocation",
            Error::StagedObjectMissing { .. } => "StagedObjectMissing",
            Error::DigestMismatch { .. } => "DigestMismatch",
            Error::Staging { .. } => "Staging",
            Error::Encode { .. } => "Encode",
            Error::Decode { .. } => "Decode",
            Error::Timeout { .. } => "Timeout",
            Error::Cancelled { .. } => "Cancelled",
            Error::RunnerFailed { .. } => "RunnerFailed",
            Error::ImageUnavailable { .. } => "ImageUnavailable",
            Error::ContainerConfig { .. } => "ContainerConfig",
            Error::Unschedulable { .. } => "Unschedulable",
            Error::OutOfMemory { .. } => "OutOfMemory",
            Error::Evicted { .. } => "Evicted",
            Error::Preempted { .. } => "Preempted",
            Error::RetriesExhausted { .. } => "RetriesExhausted",
            Error::DeletedExternally { .. } => "DeletedExternally",
            Error::Cluster { .. } => "Cluster",
            Error::Forbidden { .. } => "Forbidden",
            Error::AdmissionDenied { .. } => "AdmissionDenied",
            Error::Spawn { .. } => "Spawn",
            Error::DuplicateFunction { .. } => "DuplicateFunction",
            Error::InvalidEnvironment { .. } => "InvalidEnvironment",
            Error::CredentialsNotFound { .. } => "CredentialsNotFound",
            Error::ExecutableNotShippable { .. } => "ExecutableNotShippable",
            Error::ExecutableMissing { .. } => "ExecutableMissing",
            Error::ExecutableCorrupt { .. } => "ExecutableCorrupt",
            Error::ExecutableCannotStart { .. } => "ExecutableCannotStart",
            Error::Config { .. } => "Config",
            Error::Rejected { .. } => "Rejected",
            Error::StagingUnavailable { .. } => "StagingUnavailable",
        }
    }

    /// One value of each variant (two of `RunnerFailed`, whose kind
    /// depends on its signal).
    #[test]
    fn accessors_name_the_function_and_execution_where_the_error_does() {
        for err in samples() {
            let debug = format!("{err:?}");
            let names_function = debug.contains("function: ");
            assert_eq!(err.function().is_some(), names_function, "{debug}");
            let names_execution = debug.contains("execution_id: ");
            assert_eq!(err.execution_id().is_some(), names_execution, "{debug}");
        }
        let retried = Error::RetriesExhausted {
            function: "f".into(),
            attempts: vec![
                Attempt {
                    execution_id: "hype-f-1".into(),
                    error: Error::Config {
                        message: "x".into(),
                    },
                    took: Duration::ZERO,
                },
                Attempt {
                    execution_id: "hype-f-2".into(),
                    error: Error::Config {
                        message: "x".into(),
                    },
                    took: Duration::ZERO,
                },
            ],
        };
        assert_eq!(retried.function(), Some("f"));
        assert_eq!(
            retried.execution_id(),
            Some("hype-f-2"),
            "the last attempt's"
        );
    }

    fn samples() -> Vec<Error> {
        let s = String::new;
        let (function, execution_id) = (s(), s());
        vec![
            Error::RemotePanic {
                function: s(),
                message: s(),
                location: None,
                execution_id: s(),
            },
            Error::UnknownFunction {
                function: s(),
                execution_id: s(),
                known: vec![],
            },
            Error::SignatureMismatch {
                function: s(),
                expected: 0,
                found: 1,
                execution_id: s(),
            },
            Error::malformed("call", "x"),
            Error::BadInvocation { message: s() },
            Error::StagedObjectMissing { uri: s() },
            Error::DigestMismatch {
                uri: s(),
                expected: s(),
                actual: s(),
                expected_len: 0,
                actual_len: 1,
            },
            Error::Staging {
                operation: "read",
                uri: s(),
                message: s(),
                source: None,
            },
            Error::StagingUnavailable {
                operation: "read",
                uri: s(),
                message: s(),
                source: None,
            },
            Error::Encode {
                function: s(),
                what: "result",
                message: s(),
            },
            Error::Decode {
                function: s(),
                what: "result",
                message: s(),
            },
            Error::Timeout {
                function: s(),
                execution_id: s(),
                after: Duration::from_secs(1),
            },
            Error::Cancelled {
                function: s(),
                execution_id: s(),
                reason: s(),
            },
            Error::RunnerFailed {
                function: s(),
                execution_id: s(),
                status: s(),
                stderr_tail: s(),
                signal: Some(9),
            },
            Error::RunnerFailed {
                function: s(),
                execution_id: s(),
                status: s(),
                stderr_tail: s(),
                signal: None,
            },
            Error::ImageUnavailable {
                function: s(),
                execution_id: s(),
                image: s(),
                reason: s(),
                message: s(),
            },
            Error::ContainerConfig {
                function: s(),
                execution_id: s(),
                reason: s(),
                message: s(),
            },
            Error::Unschedulable {
                function: s(),
                execution_id: s(),
                message: s(),
                after: Duration::from_secs(1),
            },
            Error::OutOfMemory {
                function: s(),
                execution_id: s(),
                limit: None,
            },
            Error::Evicted {
                function: s(),
                execution_id: s(),
                message: s(),
            },
            Error::Preempted {
                function: s(),
                execution_id: s(),
                reason: s(),
                message: s(),
            },
            Error::RetriesExhausted {
                function: s(),
                attempts: vec![],
            },
            Error::DeletedExternally {
                function,
                execution_id,
            },
            Error::Cluster {
                operation: s(),
                message: s(),
                source: None,
            },
            Error::Rejected {
                api: "the Kubernetes API",
                operation: s(),
                code: 422,
                message: s(),
                source: None,
            },
            Error::Forbidden {
                verb: s(),
                group: s(),
                resource: s(),
                namespace: s(),
                code: 403,
                message: s(),
            },
            Error::AdmissionDenied {
                operation: s(),
                namespace: s(),
                by: Admission::Other,
                code: 403,
                message: s(),
                source: None,
            },
            Error::Spawn {
                program: PathBuf::new(),
                message: s(),
            },
            Error::DuplicateFunction { ids: vec![] },
            Error::InvalidEnvironment { problems: vec![] },
            Error::CredentialsNotFound {
                purpose: s(),
                looked: vec![],
            },
            Error::ExecutableNotShippable {
                path: PathBuf::new(),
                reason: s(),
            },
            Error::ExecutableMissing {
                execution_id: s(),
                uri: s(),
            },
            Error::ExecutableCorrupt {
                execution_id: s(),
                uri: s(),
                message: s(),
            },
            Error::ExecutableCannotStart {
                execution_id: s(),
                image: s(),
                message: s(),
            },
            Error::Config { message: s() },
        ]
    }

    /// The table's rows: variant, kind, retried.
    fn table() -> Vec<(String, String, String)> {
        include_str!("error_table.md")
            .lines()
            .skip(2)
            .map(|line| {
                let cells: Vec<String> = line
                    .trim_matches('|')
                    .split(" | ")
                    .map(|cell| cell.trim().trim_matches('`').to_owned())
                    .collect();
                assert_eq!(cells.len(), 4, "a row of four cells: {line}");
                (cells[0].clone(), cells[2].clone(), cells[3].clone())
            })
            .collect()
    }

    #[test]
    fn the_table_names_every_variant_with_its_kind() {
        let rows = table();
        let samples = samples();
        for err in &samples {
            let kind = format!("{:?}", err.kind());
            assert!(
                rows.iter()
                    .any(|(variant, k, _)| variant == name(err) && *k == kind),
                "error_table.md has no row `{}` | {kind}",
                name(err)
            );
        }
        for (variant, kind, retried) in &rows {
            assert!(
                samples.iter().any(|e| name(e) == variant),
                "error_table.md names {variant}, which is no variant"
            );
            // "yes" exactly for the losses, but the final RetriesExhausted.
            assert_eq!(
                retried == "yes",
                kind == "Lost" && variant != "RetriesExhausted",
                "{variant}: {kind} / {retried}"
            );
        }
    }

    /// A launcher that knows no function says to ship or to bake; a
    /// binary that knows others says version skew and names some.
    #[test]
    fn unknown_function_tells_the_launcher_from_version_skew() {
        let unknown = |known: Vec<String>| {
            Error::UnknownFunction {
                function: "app::f".into(),
                execution_id: "hype-f-1".into(),
                known,
            }
            .to_string()
        };
        let launcher = unknown(vec![]);
        assert!(
            launcher.contains(
                "this image holds only the launcher; turn shipping on or bake the program"
            ),
            "{launcher}"
        );
        assert!(!launcher.contains("version skew"), "{launcher}");
        let skew = unknown(vec!["app::g".into()]);
        assert!(skew.contains("version skew"), "{skew}");
        assert!(skew.contains("e.g. app::g"), "{skew}");
        assert!(!skew.contains("only the launcher"), "{skew}");
    }

    #[test]
    fn the_readme_has_the_table() {
        let readme = include_str!("../../../README.md");
        assert!(
            readme.contains(include_str!("error_table.md")),
            "README.md's Errors section must hold hype-runtime/src/error/error_table.md as it is"
        );
    }
}
