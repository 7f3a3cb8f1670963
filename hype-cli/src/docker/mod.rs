//! Docker for the `hype` command: the engine `DOCKER_HOST` names (else the
//! default socket), connected as the Docker runner connects. [`gc`]
//! removes what dead sessions left, [`ps`] lists executions, [`logs`]
//! prints one's log.

pub mod gc;
pub mod logs;
pub mod ps;

use bollard::Docker;

/// The engine, or an error saying how to reach one.
pub async fn connect() -> Result<Docker, String> {
    hype_runtime::__tools::engine::connect()
        .await
        .map_err(|err| err.to_string())
}

/// The message of a failed engine call, with its status when the engine
/// sent one.
pub fn message(err: &bollard::errors::Error) -> String {
    match err {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        other => other.to_string(),
    }
}
