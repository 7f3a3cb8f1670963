//! Bounded retries of Kubernetes API requests that failed for a transient
//! reason (429 Too Many Requests, 5xx, connection failures, no answer), with
//! the crate's one retry policy ([`crate::retry`]). Nothing here retries a
//! user's failing code: a pod that ran and failed is never re-created
//! (spotify/hype#30).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::retry::{self, Retryable as _};

/// How many times a request is tried.
pub(crate) const ATTEMPTS: u32 = 6;
/// The bound on one attempt.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether an API error is worth another try.
pub(crate) fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code == 429 || (500..600).contains(&status.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
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
pub(crate) async fn bounded<T, F, Fut>(operation: &str, mut request: F) -> Result<T, Error>
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
                operation,
                ?failed,
                ?delay,
                "transient API failure; retrying"
            );
        })
        .await
        .map_err(|failed| match failed {
            Failed::Api(err) => api_error(operation, err),
            Failed::NoAnswer => Error::Cluster {
                operation: operation.to_owned(),
                message: format!("no answer within {ATTEMPT_TIMEOUT:?}, {ATTEMPTS} times"),
                source: None,
            },
        })
}

/// The [`Error::Cluster`] for an API failure, with the failure as its source.
pub(crate) fn api_error(operation: &str, err: kube::Error) -> Error {
    let message = match &err {
        kube::Error::Api(status) => format!(
            "{} ({}, HTTP {})",
            status.message, status.reason, status.code
        ),
        other => other.to_string(),
    };
    let source: Option<Arc<dyn std::error::Error + Send + Sync>> = match err {
        // Its text is the message already; keep the chain below it.
        kube::Error::Api(_) => Some(Arc::new(err)),
        _ => None,
    };
    Error::Cluster {
        operation: operation.to_owned(),
        message,
        source,
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
