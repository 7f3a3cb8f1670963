//! What refused a Kubernetes API request for good, read from the API
//! server's `Status`: authentication or RBAC ([`Error::Forbidden`]),
//! admission control ([`Error::AdmissionDenied`]), or the request itself
//! ([`Error::Rejected`]). A 403 is both RBAC's answer and admission's, so
//! the status's message tells them apart; its `details` name only the
//! object, and its `reason` is `Forbidden` for both.
//!
//! [`Error::Forbidden`]: crate::Error::Forbidden
//! [`Error::AdmissionDenied`]: crate::Error::AdmissionDenied
//! [`Error::Rejected`]: crate::Error::Rejected

use kube::core::Status;

use crate::error::Admission;
use crate::retry;

/// What an API server's refusal is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Bad credentials (401) or the authorizer (RBAC, 403).
    Access,
    /// Admission control, after RBAC allowed the request.
    Admission(Admission),
    /// Any other permanent 4xx: an invalid object, a missing namespace.
    Invalid,
    /// Not a refusal for good: 408, 409, 429, 5xx (a webhook that cannot
    /// be reached is a 500, and passes).
    Transient,
}

/// What refused a `verb` request answered with `status`:
///
/// 1. a status that is not a permanent 4xx (408, 409, 429, 5xx) is
///    [`Refusal::Transient`];
/// 2. 401 is [`Refusal::Access`];
/// 3. on a request that changes something (not `get`, `list`, `watch`),
///    the wording of an admission check is [`Refusal::Admission`], at any
///    permanent code: `violates PodSecurity "LEVEL"`, `admission webhook
///    "NAME" denied the request` (403, 400, or the webhook's code),
///    `ValidatingAdmissionPolicy 'NAME' … denied request`, `exceeded
///    quota: NAME,` or `failed quota: NAME:`;
/// 4. the authorizer's wording (`User "…" cannot …`) is [`Refusal::Access`];
/// 5. on a request that changes something, any other 403 with reason
///    `Forbidden` and the admission plugins' wording (`… is forbidden: …`,
///    as a `LimitRange` or a namespace being deleted answer) is an
///    admission refusal by [`Admission::Other`];
/// 6. any other 403 (a proxy's, not a `Status`) is [`Refusal::Access`], as
///    it was before hype told admission apart;
/// 7. any other 4xx is [`Refusal::Invalid`].
pub(crate) fn classify(verb: &str, status: &Status) -> Refusal {
    let code = status.code;
    if !retry::is_permanent_status(code) {
        return Refusal::Transient;
    }
    if code == 401 {
        return Refusal::Access;
    }
    let message = status.message.as_str();
    let changes = !matches!(verb, "get" | "list" | "watch");
    if changes && let Some(by) = admission(message) {
        return Refusal::Admission(by);
    }
    if by_rbac(message) {
        return Refusal::Access;
    }
    match code {
        403 if changes && status.reason == "Forbidden" && message.contains(" is forbidden: ") => {
            Refusal::Admission(Admission::Other)
        }
        403 => Refusal::Access,
        _ => Refusal::Invalid,
    }
}

/// The admission check a message names, from the API server's wording.
fn admission(message: &str) -> Option<Admission> {
    if let Some(level) = quoted_after(message, "violates PodSecurity \"", '"') {
        return Some(Admission::PodSecurity { level });
    }
    if message.contains("denied the request")
        && let Some(name) = quoted_after(message, "admission webhook \"", '"')
    {
        return Some(Admission::Webhook { name });
    }
    if message.contains("denied request")
        && let Some(name) = quoted_after(message, "ValidatingAdmissionPolicy '", '\'')
    {
        return Some(Admission::Policy { name });
    }
    for (marker, end) in [("exceeded quota: ", ','), ("failed quota: ", ':')] {
        if let Some(at) = message.find(marker) {
            let rest = &message[at + marker.len()..];
            let name = rest
                .split_once(end)
                .map(|(name, _)| name.trim())
                .filter(|name| !name.is_empty() && !name.contains(' '))
                .map(str::to_owned);
            return Some(Admission::ResourceQuota { name });
        }
    }
    None
}

/// Whether a message is the RBAC authorizer's: `… is forbidden: User
/// "NAME" cannot VERB resource …` (GKE adds `: requires one of [...]
/// permission(s).`).
fn by_rbac(message: &str) -> bool {
    message
        .find("User \"")
        .is_some_and(|at| message[at..].contains("\" cannot "))
}

/// The text between `start` and the next `end` after it.
fn quoted_after(message: &str, start: &str, end: char) -> Option<String> {
    let at = message.find(start)? + start.len();
    let rest = &message[at..];
    let name = &rest[..rest.find(end)?];
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status as the API server sends it.
    fn status(code: u16, reason: &str, message: &str) -> Status {
        serde_json::from_value(serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": {"name": "hype-nap-x7k2", "kind": "pods"},
            "code": code,
        }))
        .unwrap()
    }

    fn create(code: u16, reason: &str, message: &str) -> Refusal {
        classify("create", &status(code, reason, message))
    }

    #[test]
    fn rbac_denials_are_access() {
        let rbac = r#"pods is forbidden: User "system:serviceaccount:ci:runner" cannot create resource "pods" in API group "" in the namespace "batch""#;
        assert_eq!(create(403, "Forbidden", rbac), Refusal::Access);
        let gke = r#"pods is forbidden: User "ci@p.iam.gserviceaccount.com" cannot create resource "pods" in API group "" in the namespace "batch": requires one of ["container.pods.create"] permission(s)."#;
        assert_eq!(create(403, "Forbidden", gke), Refusal::Access);
        let watch = r#"pods is forbidden: User "x" cannot watch resource "pods" in API group "" in the namespace "batch""#;
        assert_eq!(
            classify("watch", &status(403, "Forbidden", watch)),
            Refusal::Access
        );
        assert_eq!(create(401, "Unauthorized", "Unauthorized"), Refusal::Access);
    }

    #[test]
    fn pod_security_names_its_level() {
        // As kube-apiserver 1.36 answers in a namespace labelled restricted.
        let message = r#"pods "hype-nap-x7k2" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true (pod or container "hype-run" must set securityContext.runAsNonRoot=true)"#;
        assert_eq!(
            create(403, "Forbidden", message),
            Refusal::Admission(Admission::PodSecurity {
                level: "restricted:latest".into()
            })
        );
        let several = r#"pods "hype-nap-x7k2" is forbidden: violates PodSecurity "baseline:v1.30": privileged (container "hype-run" must not set securityContext.privileged=true), hostPath volumes (volume "data")"#;
        assert_eq!(
            create(403, "Forbidden", several),
            Refusal::Admission(Admission::PodSecurity {
                level: "baseline:v1.30".into()
            })
        );
    }

    #[test]
    fn webhooks_and_policies_are_named_at_any_code() {
        let message = r#"admission webhook "validation.gatekeeper.sh" denied the request: [must-have-team] you must provide labels: {"team"}"#;
        let gatekeeper = Refusal::Admission(Admission::Webhook {
            name: "validation.gatekeeper.sh".into(),
        });
        for (code, reason) in [(403, "Forbidden"), (400, "BadRequest"), (422, "Invalid")] {
            assert_eq!(create(code, reason, message), gatekeeper, "{code}");
        }
        // A webhook's own text may quote a user: the webhook still wins.
        let quoting = r#"admission webhook "policy.example.com" denied the request: User "bob" cannot run privileged pods"#;
        assert!(matches!(
            create(403, "Forbidden", quoting),
            Refusal::Admission(Admission::Webhook { .. })
        ));
        let policy = r#"pods "hype-nap-x7k2" is forbidden: ValidatingAdmissionPolicy 'max-cpu.example.com' with binding 'max-cpu-binding' denied request: failed expression: object.spec.containers.all(c, c.resources.limits.cpu <= '4')"#;
        assert_eq!(
            create(403, "Forbidden", policy),
            Refusal::Admission(Admission::Policy {
                name: "max-cpu.example.com".into()
            })
        );
    }

    #[test]
    fn quotas_are_admission_refusals() {
        let exceeded = r#"pods "hype-nap-x7k2" is forbidden: exceeded quota: compute-resources, requested: limits.cpu=2, used: limits.cpu=4, limited: limits.cpu=4"#;
        assert_eq!(
            create(403, "Forbidden", exceeded),
            Refusal::Admission(Admission::ResourceQuota {
                name: Some("compute-resources".into())
            })
        );
        let unset = r#"pods "hype-nap-x7k2" is forbidden: failed quota: compute-resources: must specify limits.cpu for: hype-run; limits.memory for: hype-run"#;
        assert_eq!(
            create(403, "Forbidden", unset),
            Refusal::Admission(Admission::ResourceQuota {
                name: Some("compute-resources".into())
            })
        );
    }

    #[test]
    fn other_admission_403s_are_admission_unnamed() {
        let limit_range = r#"pods "hype-nap-x7k2" is forbidden: maximum cpu usage per Container is 2, but limit is 4"#;
        assert_eq!(
            create(403, "Forbidden", limit_range),
            Refusal::Admission(Admission::Other)
        );
        let terminating = r#"pods "hype-nap-x7k2" is forbidden: unable to create new content in namespace batch because it is being terminated"#;
        assert_eq!(
            create(403, "Forbidden", terminating),
            Refusal::Admission(Admission::Other)
        );
        // Admission checks only what changes: a read's 403 is RBAC's.
        assert_eq!(
            classify("list", &status(403, "Forbidden", limit_range)),
            Refusal::Access
        );
        // A 403 that is not a Status (a proxy's page) stays a refusal of
        // access.
        assert_eq!(
            create(
                403,
                "Failed to parse error data",
                "<html>403 Forbidden</html>"
            ),
            Refusal::Access
        );
    }

    #[test]
    fn the_errors_say_what_refused_and_what_to_do() {
        use super::super::retry::Request;
        use crate::{Error, ErrorKind};

        let request = Request::core("create", "pods", "batch").named("hype-nap-x7k2");
        let refused = |code, reason, message| {
            request.error(kube::Error::Api(status(code, reason, message).boxed()))
        };
        let message = r#"pods "hype-nap-x7k2" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true (pod or container "hype-run" must set securityContext.runAsNonRoot=true)"#;
        let err = refused(403, "Forbidden", message);
        assert!(
            matches!(&err, Error::AdmissionDenied { by: Admission::PodSecurity { level }, code: 403, namespace, .. }
                if level == "restricted:latest" && namespace == "batch"),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Other);
        let text = err.to_string();
        for part in [
            "Pod Security admission (restricted:latest) refused to create pods hype-nap-x7k2 in namespace batch",
            "securityContext.runAsNonRoot=true",
            "RunEnvironment::from_yaml",
            "kubectl label namespace batch pod-security.kubernetes.io/enforce=baseline --overwrite",
        ] {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
        assert!(!text.contains("RBAC"), "{text}");
        let source = std::error::Error::source(&err).expect("the kube::Error");
        assert!(source.downcast_ref::<kube::Error>().is_some());

        let rbac = r#"pods is forbidden: User "x" cannot create resource "pods" in API group "" in the namespace "batch""#;
        let err = refused(403, "Forbidden", rbac);
        assert!(matches!(err, Error::Forbidden { code: 403, .. }), "{err:?}");
        assert!(err.to_string().contains("RBAC rule"), "{err}");

        let quota = r#"pods "hype-nap-x7k2" is forbidden: exceeded quota: compute-resources, requested: limits.cpu=2, used: limits.cpu=4, limited: limits.cpu=4"#;
        let err = refused(403, "Forbidden", quota);
        assert!(
            err.to_string()
                .contains("ResourceQuota \"compute-resources\" refused"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("kubectl describe resourcequota -n batch"),
            "{err}"
        );
    }

    #[test]
    fn invalid_objects_are_rejected_and_transients_pass() {
        let invalid = r#"Pod "hype-nap-x7k2" is invalid: spec.terminationGracePeriodSeconds: Invalid value: -5: must be greater than or equal to 0"#;
        assert_eq!(create(422, "Invalid", invalid), Refusal::Invalid);
        assert_eq!(
            create(404, "NotFound", r#"namespaces "batch" not found"#),
            Refusal::Invalid
        );
        let unreachable = r#"Internal error occurred: failed calling webhook "validation.gatekeeper.sh": failed to call webhook: Post "https://gatekeeper-webhook-service.gatekeeper-system.svc:443/v1/admit?timeout=3s": context deadline exceeded"#;
        assert_eq!(
            create(500, "InternalError", unreachable),
            Refusal::Transient
        );
        assert_eq!(
            create(429, "TooManyRequests", "Too many requests"),
            Refusal::Transient
        );
    }
}
