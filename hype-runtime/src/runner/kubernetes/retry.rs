//! Bounded retries of cluster API requests that failed for a transient
//! reason: 429 Too Many Requests, 5xx, and connection failures. Nothing
//! here retries a user's failing code: a pod that ran and failed is never
//! re-created (spotify/hype#30).

use std::future::Future;
use std::time::Duration;

use crate::error::Error;

/// How many times a request is tried.
pub const ATTEMPTS: u32 = 6;
/// The bound on one attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether an API error is worth another try.
pub fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code == 429 || (500..600).contains(&status.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// Runs `request` until it succeeds, fails for good, or [`ATTEMPTS`] run
/// out, waiting 100 ms, 200 ms, … (at most 3 s) between attempts.
pub async fn bounded<T, F, Fut>(operation: &str, mut request: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        let result = tokio::time::timeout(ATTEMPT_TIMEOUT, request()).await;
        let err = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) if is_transient(&err) && attempt < ATTEMPTS => err.to_string(),
            Ok(Err(err)) => return Err(api_error(operation, &err)),
            Err(_) if attempt < ATTEMPTS => format!("no answer within {ATTEMPT_TIMEOUT:?}"),
            Err(_) => {
                return Err(Error::Cluster {
                    operation: operation.to_owned(),
                    message: format!("no answer within {ATTEMPT_TIMEOUT:?}, {ATTEMPTS} times"),
                });
            }
        };
        tracing::debug!(operation, attempt, %err, ?delay, "transient API failure; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
        attempt += 1;
    }
}

/// The [`Error::Cluster`] for an API failure.
pub fn api_error(operation: &str, err: &kube::Error) -> Error {
    let message = match err {
        kube::Error::Api(status) => format!(
            "{} ({}, HTTP {})",
            status.message, status.reason, status.code
        ),
        other => other.to_string(),
    };
    Error::Cluster {
        operation: operation.to_owned(),
        message,
    }
}

/// Whether an API error is a 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

/// Whether an API error is a 409.
pub fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}
