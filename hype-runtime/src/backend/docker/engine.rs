//! Connecting to the engine, engine calls with a bound, and what their
//! failures mean: every call but the wait and the pull answers within
//! [`ENGINE_CALL_BOUND`] or fails with `EngineFailure::NoAnswer`.

use std::future::Future;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as EngineError;

use crate::error::Error;

/// The bound of every engine call other than the wait and the pull.
pub const ENGINE_CALL_BOUND: Duration = Duration::from_secs(60);
/// How long connecting may take.
pub const CONNECT_BOUND: Duration = Duration::from_secs(10);

/// The engine's address: `DOCKER_HOST`, else the default socket.
pub fn host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
}

/// Connects to the engine at [`host`] and negotiates the API version,
/// within [`CONNECT_BOUND`]; the error says how to point at another one.
pub async fn connect() -> Result<Docker, Error> {
    let host = host();
    let docker = Docker::connect_with_defaults().map_err(|err| Error::Config {
        message: format!(
            "cannot use the Docker engine at {host}: {err}; set DOCKER_HOST to its socket (unix:///var/run/docker.sock) or address"
        ),
    })?;
    let operation = format!("connect to the Docker engine at {host}");
    match tokio::time::timeout(CONNECT_BOUND, docker.negotiate_version()).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(err)) => Err(Error::Cluster {
            operation,
            message: format!(
                "{}; is the engine running, and may this user use its socket? (DOCKER_HOST selects another engine)",
                engine_message(&err)
            ),
            source: Some(err.into()),
        }),
        Err(_) => Err(Error::Cluster {
            operation,
            message: format!("no answer within {CONNECT_BOUND:?}; is the engine running?"),
            source: None,
        }),
    }
}

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

    /// The error of the failed call: [`Error::Rejected`] for a permanent
    /// refusal (a 4xx but 408, 409 and 429: an invalid configuration, a
    /// missing object), else [`Error::Cluster`] ([`crate::ErrorKind::Lost`]).
    /// The engine's typed error stays the source.
    pub(super) fn into_error(self, operation: impl Into<String>) -> Error {
        let message = self.message();
        match self {
            EngineFailure::Api(err) if permanent_status(&err).is_some() => Error::Rejected {
                api: "the Docker engine",
                operation: operation.into(),
                code: permanent_status(&err).unwrap_or_default(),
                message: match &err {
                    EngineError::DockerResponseServerError { message, .. } => message.clone(),
                    other => other.to_string(),
                },
                source: Some(err.into()),
            },
            EngineFailure::Api(err) => Error::Cluster {
                operation: operation.into(),
                message,
                source: Some(err.into()),
            },
            EngineFailure::NoAnswer(_) => Error::Cluster {
                operation: operation.into(),
                message,
                source: None,
            },
        }
    }
}

/// The status of an engine answer that refuses a request for good.
fn permanent_status(err: &EngineError) -> Option<u16> {
    match err {
        EngineError::DockerResponseServerError { status_code, .. }
            if crate::retry::is_permanent_status(*status_code) =>
        {
            Some(*status_code)
        }
        _ => None,
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
