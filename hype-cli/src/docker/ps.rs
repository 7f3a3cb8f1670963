//! `hype ps --docker`: hype's containers on the engine, as table rows.
//! A container's phase comes from its state (`created` and `restarting`:
//! `container-start`; `running`; `exited` and `dead`: `ended`; `paused`;
//! `removing`: `terminating`), its detail is the engine's status text
//! (`Exited (0) 3 minutes ago`). The engine's listing says when a
//! container was created, not when it started or ended, so the time in
//! phase is known for `container-start` only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use hype_runtime::__tools::labels::{LABEL_EXECUTION_ID, LABEL_FUNCTION, LABEL_SESSION};

use super::{CALL_BOUND, message};
use crate::table::Row;

/// One row per container labelled `app.kubernetes.io/managed-by=hype`
/// (and with `session`, of that session), running or not; the node is the
/// engine's host name.
pub async fn rows(docker: &Docker, session: Option<&str>) -> Result<Vec<Row>, String> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(super::filter(session)),
        ..Default::default()
    };
    let containers = match tokio::time::timeout(CALL_BOUND, docker.list_containers(Some(options)))
        .await
    {
        Ok(Ok(containers)) => containers,
        Ok(Err(err)) => return Err(format!("cannot list hype's containers: {}", message(&err))),
        Err(_) => {
            return Err(format!(
                "cannot list hype's containers: the Docker engine did not answer within {CALL_BOUND:?}"
            ));
        }
    };
    let node = match tokio::time::timeout(CALL_BOUND, docker.info()).await {
        Ok(Ok(info)) => info.name.unwrap_or_else(|| "docker".to_owned()),
        _ => "docker".to_owned(),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok(containers
        .into_iter()
        .map(|container| {
            let labels = container.labels.unwrap_or_default();
            let label = |key: &str| labels.get(key).cloned().unwrap_or_else(|| "-".to_owned());
            let name = container
                .names
                .and_then(|names| names.into_iter().next())
                .map(|name| name.trim_start_matches('/').to_owned());
            let state = container
                .state
                .map(|state| state.to_string())
                .unwrap_or_else(|| "unknown".to_owned());
            let age = container
                .created
                .map(|created| Duration::from_secs(now.saturating_sub(created).max(0) as u64));
            let phase = phase_of(&state);
            Row {
                execution: labels
                    .get(LABEL_EXECUTION_ID)
                    .cloned()
                    .or(name)
                    .unwrap_or_else(|| "-".to_owned()),
                function: label(LABEL_FUNCTION),
                session: label(LABEL_SESSION),
                phase: phase.to_owned(),
                in_phase: if phase == "container-start" {
                    age
                } else {
                    None
                },
                age,
                node: node.clone(),
                detail: container.status.unwrap_or_default(),
            }
        })
        .collect())
}

/// The phase of a container in the engine's `state`.
fn phase_of(state: &str) -> &str {
    match state {
        "created" | "restarting" => "container-start",
        "running" => "running",
        "exited" | "dead" => "ended",
        "removing" => "terminating",
        other => other,
    }
}
