//! Engine calls with a bound, and what their failures mean: every call
//! but the wait and the pull answers within [`ENGINE_CALL_BOUND`] or fails
//! with [`EngineFailure::NoAnswer`].

use std::future::Future;
use std::time::Duration;

use bollard::errors::Error as EngineError;

use crate::error::Error;

/// The bound of every engine call other than the wait and the pull.
pub(crate) const ENGINE_CALL_BOUND: Duration = Duration::from_secs(60);

/// An engine call that failed or did not answer in time.
#[derive(Debug)]
pub(super) enum EngineFailure {
    Api(EngineError),
    NoAnswer(Duration),
}

impl EngineFailure {
    pub(super) fn status(&self) -> Option<u16> {
        match self {
            EngineFailure::Api(EngineError::DockerResponseServerError { status_code, .. }) => {
                Some(*status_code)
            }
            _ => None,
        }
    }

    pub(super) fn message(&self) -> String {
        match self {
            EngineFailure::Api(err) => engine_message(err),
            EngineFailure::NoAnswer(bound) => {
                format!("the Docker engine did not answer within {bound:?}")
            }
        }
    }

    pub(super) fn into_error(self, operation: impl Into<String>) -> Error {
        Error::Cluster {
            operation: operation.into(),
            message: self.message(),
            source: None,
        }
    }
}

/// The engine's own message when it sent one.
pub(super) fn engine_message(err: &EngineError) -> String {
    match err {
        EngineError::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        other => other.to_string(),
    }
}

/// Runs an engine call with [`ENGINE_CALL_BOUND`].
pub(super) async fn bounded<T>(
    call: impl Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineFailure> {
    match tokio::time::timeout(ENGINE_CALL_BOUND, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(EngineFailure::Api(err)),
        Err(_) => Err(EngineFailure::NoAnswer(ENGINE_CALL_BOUND)),
    }
}
