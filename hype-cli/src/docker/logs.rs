//! `hype logs --docker`: the log of the container named by an execution
//! ID (the Docker runner names each call's container so), its stdout to
//! stdout and its stderr to stderr; followed until it ends with `-f`; or
//! those of every container of a session.

use std::io::Write as _;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions, LogsOptions};
use futures::StreamExt as _;
use hype_runtime::__tools::labels::{LABEL_MANAGED_BY, LABEL_SESSION, MANAGED_BY, label_value};

use super::{CALL_BOUND, bounded, filter, message};

/// Prints the log of container `execution_id`, after checking that it is
/// hype's (and of `session`, if given). The inspection, and a whole read
/// without `follow`, are bounded by [`CALL_BOUND`].
pub async fn print(
    docker: &Docker,
    execution_id: &str,
    session: Option<&str>,
    follow: bool,
) -> Result<(), String> {
    let inspected = match tokio::time::timeout(
        CALL_BOUND,
        docker.inspect_container(execution_id, None::<InspectContainerOptions>),
    )
    .await
    {
        Ok(Ok(inspected)) => inspected,
        Ok(Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        })) => {
            return Err(format!(
                "no container {execution_id} on the Docker engine: if it ran, its call has ended and its log went with the container (`hype ps --docker` lists the executions that still have one)\n{}",
                crate::LOGS_GONE
            ));
        }
        Ok(Err(err)) => {
            return Err(format!(
                "cannot inspect container {execution_id}: {}",
                message(&err)
            ));
        }
        Err(_) => {
            return Err(format!(
                "cannot inspect container {execution_id}: the Docker engine did not answer within {CALL_BOUND:?}"
            ));
        }
    };
    let labels = inspected
        .config
        .and_then(|config| config.labels)
        .unwrap_or_default();
    if labels.get(LABEL_MANAGED_BY).is_none_or(|v| v != MANAGED_BY) {
        return Err(format!(
            "container {execution_id} is not hype's (no label {LABEL_MANAGED_BY}={MANAGED_BY})"
        ));
    }
    if let Some(session) = session {
        let of = labels
            .get(LABEL_SESSION)
            .map_or("no session", String::as_str);
        if of != label_value(session) {
            return Err(format!(
                "container {execution_id} is of session {of}, not {session}"
            ));
        }
    }
    let options = LogsOptions {
        follow,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let reading = async {
        let mut stream = std::pin::pin!(docker.logs(execution_id, Some(options)));
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(LogOutput::StdErr { message }) => {
                    let _ = std::io::stderr().lock().write_all(&message);
                }
                Ok(output) => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&output.into_bytes());
                    let _ = out.flush();
                }
                Err(err) => {
                    return Err(format!(
                        "the log of container {execution_id} broke off: {}",
                        message(&err)
                    ));
                }
            }
        }
        Ok(())
    };
    if follow {
        return reading.await;
    }
    tokio::time::timeout(CALL_BOUND, reading)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the log of container {execution_id} did not end within {CALL_BOUND:?}"
            ))
        })
}

/// Prints the log of every container of `session` (running or not),
/// oldest first, each after a `==> <container> <==` line. Gives how many it
/// printed and what failed; an error if the containers cannot be listed.
pub async fn session(docker: &Docker, session: &str) -> Result<(usize, Vec<String>), String> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(filter(Some(session))),
        ..Default::default()
    };
    let what = format!("list the containers of session {session}");
    let mut containers = bounded(&what, docker.list_containers(Some(options))).await?;
    containers.sort_by_key(|c| c.created);
    let (mut printed, mut errors) = (0, Vec::new());
    for container in containers {
        let Some(name) = container
            .names
            .and_then(|names| names.into_iter().next())
            .map(|name| name.trim_start_matches('/').to_owned())
        else {
            continue;
        };
        println!("==> {name} <==");
        match print(docker, &name, Some(session), false).await {
            Ok(()) => printed += 1,
            Err(err) => errors.push(err),
        }
    }
    Ok((printed, errors))
}
