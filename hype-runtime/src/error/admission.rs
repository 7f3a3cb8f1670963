//! [`Admission`]: what refused an object at admission
//! ([`Error::AdmissionDenied`](super::Error::AdmissionDenied)), and what to
//! do about each.

/// What refused a request at admission: after authentication and RBAC
/// allowed it, a check of the object itself said no. Read from the API
/// server's answer (its `Status`), in
/// [`Error::AdmissionDenied`](super::Error::AdmissionDenied).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// Pod Security admission: the namespace enforces a Pod Security
    /// Standard (its label `pod-security.kubernetes.io/enforce`) that the
    /// pod does not meet. The API server's message names each field to
    /// set (`securityContext.runAsNonRoot=true`, …).
    #[non_exhaustive]
    PodSecurity {
        /// The level and version enforced, as the API server names them:
        /// `restricted:latest`, `baseline:v1.30`.
        level: String,
    },
    /// A validating or mutating admission webhook denied the request
    /// (Gatekeeper, Kyverno, a cluster's own policy server).
    #[non_exhaustive]
    Webhook {
        /// The webhook's name (`validation.gatekeeper.sh`).
        name: String,
    },
    /// A `ValidatingAdmissionPolicy` (a CEL rule in the cluster) denied the
    /// request.
    #[non_exhaustive]
    Policy {
        /// The policy's name.
        name: String,
    },
    /// A `ResourceQuota` of the namespace: it is used up, or it requires
    /// requests or limits the pod does not set.
    #[non_exhaustive]
    ResourceQuota {
        /// The quota's name, when the message gives it.
        name: Option<String>,
    },
    /// Another admission check (a `LimitRange`, a namespace being
    /// deleted, …), named only in the API server's message.
    Other,
}

impl Admission {
    /// What to do, for the error's message: change the pod, or relax
    /// what refused it.
    pub(super) fn advice(&self, namespace: &str) -> String {
        const BASE_POD: &str =
            "a base pod (RunEnvironment::from_yaml) or the environment's options";
        match self {
            Admission::PodSecurity { level } => {
                let lower = if level.starts_with("restricted") {
                    "baseline"
                } else {
                    "privileged"
                };
                format!(
                    "set the securityContext fields it names through {BASE_POD}, or, if namespace {namespace} may run such pods, lower the level it enforces: kubectl label namespace {namespace} pod-security.kubernetes.io/enforce={lower} --overwrite"
                )
            }
            Admission::Webhook { .. } => format!(
                "change the pod as the webhook's message asks, through {BASE_POD}, or ask the webhook's owners for an exception (kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations lists them)"
            ),
            Admission::Policy { .. } => format!(
                "change the pod as the policy's message asks, through {BASE_POD}, or ask the policy's owners for an exception (kubectl get validatingadmissionpolicybindings shows where it applies)"
            ),
            Admission::ResourceQuota { .. } => format!(
                "lower the pod's requests and limits (RunEnvironment::with_request, with_limit) or set those the quota requires, run fewer calls at once, or raise the quota (kubectl describe resourcequota -n {namespace})"
            ),
            Admission::Other => format!("change the pod as the message asks, through {BASE_POD}"),
        }
    }
}

impl std::fmt::Display for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Admission::PodSecurity { level } => write!(f, "Pod Security admission ({level})"),
            Admission::Webhook { name } => write!(f, "admission webhook {name:?}"),
            Admission::Policy { name } => write!(f, "ValidatingAdmissionPolicy {name:?}"),
            Admission::ResourceQuota { name: Some(name) } => write!(f, "ResourceQuota {name:?}"),
            Admission::ResourceQuota { name: None } => f.write_str("a ResourceQuota"),
            Admission::Other => f.write_str("an admission check"),
        }
    }
}
