//! Docker for the `hype` command: the engine `DOCKER_HOST` names (else the
//! default socket), connected as the Docker runner connects. [`gc`]
//! removes what dead sessions left, [`ps`] lists executions, [`logs`]
//! prints one's log.

pub mod gc;
pub mod logs;
pub mod ps;

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, ListVolumesOptions};
use hype_runtime::__tools::labels::{LABEL_MANAGED_BY, LABEL_SESSION, MANAGED_BY, label_value};

/// The bound of one engine call.
pub const CALL_BOUND: Duration = Duration::from_secs(60);

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

/// The engine's label filter of hype's objects, of `session` only if
/// given.
pub fn filter(session: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut terms = vec![format!("{LABEL_MANAGED_BY}={MANAGED_BY}")];
    if let Some(session) = session {
        terms.push(format!("{LABEL_SESSION}={}", label_value(session)));
    }
    HashMap::from([("label".to_owned(), terms)])
}

/// Runs one engine call within [`CALL_BOUND`]; the error says what was
/// done.
pub async fn bounded<T>(
    what: &str,
    call: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_BOUND, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(format!("cannot {what}: {}", message(&err))),
        Err(_) => Err(format!(
            "cannot {what}: the Docker engine did not answer within {CALL_BOUND:?}"
        )),
    }
}

/// Whether the engine holds any container (running or not) or volume of
/// `session`.
pub async fn session_exists(docker: &Docker, session: &str) -> Result<bool, String> {
    let containers = ListContainersOptions {
        all: true,
        filters: Some(filter(Some(session))),
        ..Default::default()
    };
    let what = format!("list the containers of session {session}");
    if !bounded(&what, docker.list_containers(Some(containers)))
        .await?
        .is_empty()
    {
        return Ok(true);
    }
    let volumes = ListVolumesOptions {
        filters: Some(filter(Some(session))),
    };
    let what = format!("list the volumes of session {session}");
    let volumes = bounded(&what, docker.list_volumes(Some(volumes))).await?;
    Ok(!volumes.volumes.unwrap_or_default().is_empty())
}
