//! `hype logs --docker`: the log of the container named by an execution
//! ID (the Docker runner names each call's container so), its stdout to
//! stdout and its stderr to stderr; followed until it ends with `-f`.

use std::io::Write as _;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{InspectContainerOptions, LogsOptions};
use futures::StreamExt as _;
use hype_runtime::__tools::labels::{LABEL_MANAGED_BY, MANAGED_BY};

use super::message;

/// The bound of the inspection, and of a whole read without `-f`.
const CALL_BOUND: Duration = Duration::from_secs(60);

/// Prints the log of container `execution_id`, after checking that it is
/// hype's.
pub async fn print(docker: &Docker, execution_id: &str, follow: bool) -> Result<(), String> {
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
                "no container {execution_id} on the Docker engine (`hype ps --docker` lists the executions)"
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
    let managed = inspected
        .config
        .and_then(|config| config.labels)
        .and_then(|labels| labels.get(LABEL_MANAGED_BY).cloned())
        .is_some_and(|v| v == MANAGED_BY);
    if !managed {
        return Err(format!(
            "container {execution_id} is not hype's (no label {LABEL_MANAGED_BY}={MANAGED_BY})"
        ));
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
