//! Bounded retries of Kubernetes API requests that failed for a transient
//! reason (429 Too Many Requests, 5xx, connection failures, no answer), with
//! the crate's one retry policy ([`crate::retry`]). Nothing here retries a
//! user's failing code: a pod that ran and failed is never re-created
//! (spotify/hype#30).
//!
//! Each request is described by a [`Request`] (verb, resource, name,
//! namespace), so that a refusal by RBAC (401, 403) becomes an
//! [`Error::Forbidden`] naming the RBAC rule that is missing, a refusal by
//! admission control (Pod Security, a webhook, a quota) an
//! [`Error::AdmissionDenied`] naming what refused it (`refusal` tells
//! them apart), and any other permanent 4xx an [`Error::Rejected`] naming
//! the request, at once and without retries.

use std::future::Future;
use std::time::Duration;

use super::refusal::{self, Refusal};
use crate::error::Error;
use crate::retry::{self, Retryable as _};

/// How many times a request is tried.
pub(crate) const ATTEMPTS: u32 = 6;
/// The bound on one attempt.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether an API error is worth another try.
pub(crate) fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => retry::is_transient_status(status.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// One API request, as RBAC sees it: for messages and for
/// [`Error::Forbidden`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    /// The RBAC verb: `create`, `get`, `list`, `watch`, `patch`, `delete`,
    /// `deletecollection`.
    pub verb: &'static str,
    /// The API group: `""` (core) or `coordination.k8s.io`.
    pub group: &'static str,
    /// The resource, plural: `pods`, `persistentvolumeclaims`, `leases`.
    pub resource: &'static str,
    /// The object, for requests on one object.
    pub name: Option<&'a str>,
    /// The namespace.
    pub namespace: &'a str,
}

impl<'a> Request<'a> {
    /// A request on core-group `resource` in `namespace`.
    pub fn core(verb: &'static str, resource: &'static str, namespace: &'a str) -> Request<'a> {
        Request {
            verb,
            group: "",
            resource,
            name: None,
            namespace,
        }
    }

    /// The same request on object `name`.
    pub fn named(self, name: &'a str) -> Request<'a> {
        Request {
            name: Some(name),
            ..self
        }
    }

    /// The same request in API group `group`.
    pub fn in_group(self, group: &'static str) -> Request<'a> {
        Request { group, ..self }
    }

    /// The error of a failed request, by what refused it
    /// ([`refusal::classify`]):
    ///
    /// | answer | error |
    /// |---|---|
    /// | 401; a 403 from RBAC | [`Error::Forbidden`], naming the RBAC rule |
    /// | a 4xx from admission control (Pod Security, a webhook, a policy, a quota) | [`Error::AdmissionDenied`], naming what refused it |
    /// | any other 4xx but 408, 409 and 429 | [`Error::Rejected`], with the server's message |
    /// | 408, 409, 429, 5xx, transport failures | [`Error::Cluster`] |
    ///
    /// The `kube::Error` stays the source, but for [`Error::Forbidden`].
    pub fn error(&self, err: kube::Error) -> Error {
        let kube::Error::Api(status) = &err else {
            return api_error(&self.to_string(), err);
        };
        let (code, message) = (status.code, status.message.clone());
        match refusal::classify(self.verb, status) {
            Refusal::Access => Error::Forbidden {
                verb: self.verb.to_owned(),
                group: self.group.to_owned(),
                resource: self.resource.to_owned(),
                namespace: self.namespace.to_owned(),
                code,
                message,
            },
            Refusal::Admission(by) => Error::AdmissionDenied {
                operation: self.to_string(),
                namespace: self.namespace.to_owned(),
                by,
                code,
                message,
                source: Some(err.into()),
            },
            Refusal::Invalid => Error::Rejected {
                api: "the Kubernetes API",
                operation: self.to_string(),
                code,
                message: format!("{message} ({})", status.reason),
                source: Some(err.into()),
            },
            Refusal::Transient => api_error(&self.to_string(), err),
        }
    }
}

impl std::fmt::Display for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if let Some(name) = self.name {
            write!(f, " {name}")?;
        }
        write!(f, " in namespace {}", self.namespace)
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum Failed {
    Api(kube::Error),
    NoAnswer,
}

/// Runs `request` until it succeeds, fails for good, or [`ATTEMPTS`] run
/// out, waiting about 100 ms, 200 ms, … (at most 3 s, with jitter) between
/// attempts.
pub(crate) async fn bounded<T, F, Fut>(what: &Request<'_>, mut request: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let attempt = || {
        let answer = tokio::time::timeout(ATTEMPT_TIMEOUT, request());
        async move {
            match answer.await {
                Ok(result) => result.map_err(Failed::Api),
                Err(_) => Err(Failed::NoAnswer),
            }
        }
    };
    let policy = retry::backoff(
        Duration::from_millis(100),
        Duration::from_secs(3),
        Some(ATTEMPTS),
    );
    attempt
        .retry(policy)
        .sleep(tokio::time::sleep)
        .when(|failed| match failed {
            Failed::Api(err) => is_transient(err),
            Failed::NoAnswer => true,
        })
        .notify(|failed, delay| {
            tracing::debug!(
                operation = %what,
                ?failed,
                ?delay,
                "transient API failure; retrying"
            );
        })
        .await
        .map_err(|failed| match failed {
            Failed::Api(err) => what.error(err),
            Failed::NoAnswer => Error::Cluster {
                operation: what.to_string(),
                message: format!("no answer within {ATTEMPT_TIMEOUT:?}, {ATTEMPTS} times"),
                source: None,
            },
        })
}

/// The [`Error::Cluster`] for an API failure, with the typed
/// `kube::Error` as its source.
pub(crate) fn api_error(operation: &str, err: kube::Error) -> Error {
    let message = match &err {
        kube::Error::Api(status) => format!(
            "{} ({}, HTTP {})",
            status.message, status.reason, status.code
        ),
        other => other.to_string(),
    };
    Error::Cluster {
        operation: operation.to_owned(),
        message,
        source: Some(err.into()),
    }
}

/// Whether an API error is a 404.
pub(crate) fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

/// Whether an API error is a 409.
pub(crate) fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}
