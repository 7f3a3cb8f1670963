//! One container's life, start to cleanup: the termination directory,
//! volumes, create (pulling a missing image), start, the engine's wait
//! (bounded by the timeout, cancellable), inspect for OOM, the termination
//! message or the log tail, and removal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as EngineError;
use bollard::models::ContainerState;
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, KillContainerOptions,
    LogsOptions, RemoveContainerOptions, StartContainerOptions, WaitContainerOptions,
};
use futures::StreamExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::Shared;
use super::engine::{EngineFailure, bounded, engine_message};
use super::spec::{self, ContainerPlan};
use crate::backend::{Ended, Job, describe_end, signal_of};
use crate::error::Error;
use crate::launch;
use crate::logs::{self, LogMode, Stream};
use crate::phases::Mark;

/// How many log lines a failed call's error carries.
const LOG_TAIL_LINES: usize = 20;
/// How long the end of a finished container's log stream is waited for.
const LOG_DRAIN: Duration = Duration::from_secs(5);

fn cancelled_error(job: &Job) -> Error {
    Error::Cancelled {
        function: job.function.to_owned(),
        execution_id: job.execution_id.clone(),
        reason: "the call's future was dropped".to_owned(),
    }
}

impl Shared {
    /// One call, start to cleanup.
    pub(super) async fn execute(
        self: Arc<Self>,
        job: Job,
        plan: ContainerPlan,
        termination_dir: PathBuf,
        timeout: Duration,
        cancelled: CancellationToken,
    ) -> Result<String, Error> {
        let mut created = false;
        let result = self
            .lifecycle(
                &job,
                &plan,
                &termination_dir,
                timeout,
                &cancelled,
                &mut created,
            )
            .await;
        if created {
            self.dispose(&job.execution_id).await;
            job.phases.mark(Mark::CleanedUp);
        }
        if !self.keep_containers {
            let _ = tokio::fs::remove_dir_all(&termination_dir).await;
        }
        match &result {
            Ok(_) => {
                tracing::debug!(function = job.function, container = %job.execution_id, "container finished")
            }
            Err(err) => {
                tracing::debug!(function = job.function, container = %job.execution_id, %err, "container failed")
            }
        }
        result
    }

    pub(super) async fn lifecycle(
        &self,
        job: &Job,
        plan: &ContainerPlan,
        termination_dir: &Path,
        timeout: Duration,
        cancelled: &CancellationToken,
        created: &mut bool,
    ) -> Result<String, Error> {
        {
            let dir = termination_dir.to_owned();
            tokio::task::spawn_blocking(move || create_termination_dir(&dir))
                .await
                .map_err(|err| Error::Config {
                    message: format!("cannot create the termination message directory: {err}"),
                })??;
        }
        for volume in &plan.volumes {
            self.ensure_volume(volume).await?;
        }
        if cancelled.is_cancelled() {
            return Err(cancelled_error(job));
        }
        *created = true;
        job.phases.mark(Mark::Submitted);
        self.create(job, plan, cancelled).await?;
        if cancelled.is_cancelled() {
            return Err(cancelled_error(job));
        }
        self.start(job, &plan.image).await?;
        job.phases.mark(Mark::Started);
        tracing::debug!(function = job.function, container = %job.execution_id, image = %plan.image, "container started");
        let following = self.follow_logs(job);
        let exit_code = self.wait(job, timeout, cancelled).await?;
        job.phases.mark(Mark::Exited);
        // The log stream ends with the container: read it to its end (its
        // last lines included) before the container is removed.
        let _ = tokio::time::timeout(LOG_DRAIN, following).await;
        let state = self.inspect(job).await?;
        if state.oom_killed == Some(true) {
            return Err(Error::OutOfMemory {
                function: job.function.to_owned(),
                execution_id: job.execution_id.clone(),
                limit: plan.memory_limit.clone(),
            });
        }
        let termination_path = termination_dir.join(spec::TERMINATION_FILE);
        let message = tokio::fs::read_to_string(&termination_path).await;
        job.phases.mark(Mark::OutcomeRead);
        match message {
            Ok(message) if !message.is_empty() => Ok(message),
            _ => {
                let stderr_tail = self
                    .logs(&job.execution_id, Some(LOG_TAIL_LINES))
                    .await
                    .trim_end()
                    .to_owned();
                // The dynamic loader refused a shipped executable: exit 127
                // and its message, before main ran.
                if job.executable.is_some()
                    && exit_code == 127
                    && let Some(message) = launch::loader_failure(stderr_tail.as_bytes())
                {
                    return Err(Error::ExecutableCannotStart {
                        execution_id: job.execution_id.clone(),
                        image: plan.image.clone(),
                        message,
                    });
                }
                Err(Error::RunnerFailed {
                    function: job.function.to_owned(),
                    execution_id: job.execution_id.clone(),
                    status: describe(exit_code, state.error.as_deref()),
                    stderr_tail,
                    signal: signal_of(Ended::Code(exit_code)),
                })
            }
        }
    }

    /// Creates the container, pulling its image first if the engine lacks it.
    pub(super) async fn create(
        &self,
        job: &Job,
        plan: &ContainerPlan,
        cancelled: &CancellationToken,
    ) -> Result<(), Error> {
        let create = || {
            let options = CreateContainerOptions {
                name: Some(job.execution_id.clone()),
                ..Default::default()
            };
            bounded(
                self.docker
                    .create_container(Some(options), plan.body.clone()),
            )
        };
        let mut result = create().await;
        if result.as_ref().err().and_then(EngineFailure::status) == Some(404) {
            job.phases.mark(Mark::PullStarted);
            self.pull(job, &plan.image, cancelled).await?;
            job.phases.mark(Mark::ImageReady);
            result = create().await;
        }
        result
            .map(|_| ())
            .map_err(|failure| match failure.status() {
                Some(404) => Error::ImageUnavailable {
                    function: job.function.to_owned(),
                    execution_id: job.execution_id.clone(),
                    image: plan.image.clone(),
                    reason: "NotFound".to_owned(),
                    message: failure.message(),
                },
                Some(400) if failure.message().contains("invalid reference format") => {
                    Error::ImageUnavailable {
                        function: job.function.to_owned(),
                        execution_id: job.execution_id.clone(),
                        image: plan.image.clone(),
                        reason: "InvalidImageName".to_owned(),
                        message: failure.message(),
                    }
                }
                Some(400) => Error::ContainerConfig {
                    function: job.function.to_owned(),
                    execution_id: job.execution_id.clone(),
                    reason: "InvalidContainerConfig".to_owned(),
                    message: failure.message(),
                },
                _ => failure.into_error(format!("create container {}", job.execution_id)),
            })
    }

    /// Pulls a missing image, bounded by the pull timeout; cancellable.
    pub(super) async fn pull(
        &self,
        job: &Job,
        image: &str,
        cancelled: &CancellationToken,
    ) -> Result<(), Error> {
        let reference = spec::with_default_tag(image);
        tracing::info!(image = %reference, "the image is not on the Docker engine; pulling it");
        let options = CreateImageOptions {
            from_image: Some(reference.clone()),
            ..Default::default()
        };
        let pulling = async {
            let mut progress = std::pin::pin!(self.docker.create_image(Some(options), None, None));
            while let Some(step) = progress.next().await {
                step?;
            }
            Ok::<(), EngineError>(())
        };
        let unavailable = |message: String| Error::ImageUnavailable {
            function: job.function.to_owned(),
            execution_id: job.execution_id.clone(),
            image: image.to_owned(),
            reason: "NotFound".to_owned(),
            message,
        };
        tokio::select! {
            pulled = tokio::time::timeout(self.pull_timeout, pulling) => match pulled {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(unavailable(format!(
                    "it is not on the Docker engine, and pulling {reference} failed: {}",
                    engine_message(&err)
                ))),
                Err(_) => Err(unavailable(format!(
                    "it is not on the Docker engine, and pulling {reference} did not finish within {:?} (DockerCluster::pull_timeout)",
                    self.pull_timeout
                ))),
            },
            _ = cancelled.cancelled() => Err(cancelled_error(job)),
        }
    }

    pub(super) async fn start(&self, job: &Job, image: &str) -> Result<(), Error> {
        bounded(
            self.docker
                .start_container(&job.execution_id, None::<StartContainerOptions>),
        )
        .await
        .map_err(|failure| match failure {
            EngineFailure::Api(_) => {
                let message = failure.message();
                // The runtime cannot exec the mounted executable: its ELF
                // interpreter is not in the image, or the kernel refuses it.
                if job.executable.is_some()
                    && (message.contains("no such file or directory")
                        || message.contains("exec format error"))
                {
                    return Error::ExecutableCannotStart {
                        execution_id: job.execution_id.clone(),
                        image: image.to_owned(),
                        message: format!(
                            "{message} (the executable is there: its ELF interpreter, the dynamic loader it was linked against, is not in the image, or the kernel cannot run it)"
                        ),
                    };
                }
                let hint = if message.contains("executable file not found")
                    || message.contains("no such file or directory")
                {
                    "; the image's ENTRYPOINT must be hype-run (see docker/README.md), or set DockerCluster::command_prefix"
                } else {
                    ""
                };
                Error::ContainerConfig {
                    function: job.function.to_owned(),
                    execution_id: job.execution_id.clone(),
                    reason: "StartFailed".to_owned(),
                    message: format!("{message}{hint}"),
                }
            }
            EngineFailure::NoAnswer(_) => {
                failure.into_error(format!("start container {}", job.execution_id))
            }
        })
    }

    /// Waits for the container to stop (the engine's wait API), bounded by
    /// the timeout; returns its exit code.
    pub(super) async fn wait(
        &self,
        job: &Job,
        timeout: Duration,
        cancelled: &CancellationToken,
    ) -> Result<i64, Error> {
        let options = WaitContainerOptions {
            condition: "not-running".to_owned(),
        };
        let mut exits =
            std::pin::pin!(self.docker.wait_container(&job.execution_id, Some(options)));
        tokio::select! {
            exit = tokio::time::timeout(timeout, exits.next()) => match exit {
                Err(_) => Err(Error::Timeout {
                    function: job.function.to_owned(),
                    execution_id: job.execution_id.clone(),
                    after: timeout,
                }),
                Ok(Some(Ok(response))) => Ok(response.status_code),
                Ok(Some(Err(EngineError::DockerContainerWaitError { code, .. }))) => Ok(code),
                Ok(Some(Err(err))) => {
                    let failure = EngineFailure::Api(err);
                    if failure.status() == Some(404) {
                        Err(Error::DeletedExternally {
                            function: job.function.to_owned(),
                            execution_id: job.execution_id.clone(),
                        })
                    } else {
                        Err(failure.into_error(format!("wait for container {}", job.execution_id)))
                    }
                }
                Ok(None) => Err(Error::Cluster {
                    operation: format!("wait for container {}", job.execution_id),
                    message: "the engine ended the wait without an exit status".to_owned(),
                    source: None,
                }),
            },
            _ = cancelled.cancelled() => Err(cancelled_error(job)),
        }
    }

    pub(super) async fn inspect(&self, job: &Job) -> Result<ContainerState, Error> {
        match bounded(
            self.docker
                .inspect_container(&job.execution_id, None::<InspectContainerOptions>),
        )
        .await
        {
            Ok(response) => Ok(response.state.unwrap_or_default()),
            Err(failure) if failure.status() == Some(404) => Err(Error::DeletedExternally {
                function: job.function.to_owned(),
                execution_id: job.execution_id.clone(),
            }),
            Err(failure) => {
                Err(failure.into_error(format!("inspect container {}", job.execution_id)))
            }
        }
    }

    /// The container's output (stdout and stderr): the last `tail` lines,
    /// or all of it. Never fails: a failure to read becomes the text.
    /// Follows the container's output into the job's log sink, a line at
    /// a time, until the container ends (the stream then ends). Stopped
    /// when the handle is dropped. Nothing to follow with the output off.
    fn follow_logs(&self, job: &Job) -> AbortOnDropHandle<()> {
        if job.logs.mode() == LogMode::Off {
            return AbortOnDropHandle::new(tokio::spawn(async {}));
        }
        let docker = self.docker.clone();
        let name = job.execution_id.clone();
        let sink = Arc::clone(&job.logs);
        AbortOnDropHandle::new(tokio::spawn(async move {
            let options = LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            };
            // Frames may split lines: each stream goes through a pipe to
            // the one line reader.
            let (mut stdout, stdout_lines) = tokio::io::duplex(64 * 1024);
            let (mut stderr, stderr_lines) = tokio::io::duplex(64 * 1024);
            let feed = async move {
                let mut chunks = std::pin::pin!(docker.logs(&name, Some(options)));
                while let Some(Ok(chunk)) = chunks.next().await {
                    let written = match chunk {
                        LogOutput::StdErr { message } => stderr.write_all(&message).await,
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            stdout.write_all(&message).await
                        }
                        LogOutput::StdIn { .. } => Ok(()),
                    };
                    if written.is_err() {
                        break;
                    }
                }
            };
            tokio::join!(
                feed,
                logs::pump(stdout_lines, &sink, Stream::Stdout, 0),
                logs::pump(stderr_lines, &sink, Stream::Stderr, 0),
            );
        }))
    }

    pub(super) async fn logs(&self, container: &str, tail: Option<usize>) -> String {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..Default::default()
        };
        let reading = async {
            let mut chunks = std::pin::pin!(self.docker.logs(container, Some(options)));
            let mut text = Vec::new();
            while let Some(chunk) = chunks.next().await {
                text.extend_from_slice(&chunk?.into_bytes());
            }
            Ok::<Vec<u8>, EngineError>(text)
        };
        match bounded(reading).await {
            Ok(text) => String::from_utf8_lossy(&text).into_owned(),
            Err(failure) => format!("(cannot read the container's log: {})", failure.message()),
        }
    }

    /// Removes a call's container (forcibly: it may still run), or with
    /// `keep_containers`, stops it and leaves it.
    pub(super) async fn dispose(&self, container: &str) {
        if self.keep_containers {
            match bounded(
                self.docker
                    .kill_container(container, None::<KillContainerOptions>),
            )
            .await
            {
                Ok(()) => {}
                // Not there, or not running: nothing to stop.
                Err(failure) if matches!(failure.status(), Some(404 | 409)) => {}
                Err(failure) => {
                    tracing::warn!(container, error = %failure.message(), "cannot stop the container")
                }
            }
            tracing::info!(container, "container kept (DockerCluster::keep_containers)");
            return;
        }
        self.remove_container(container).await;
    }

    pub(super) async fn remove_container(&self, container: &str) {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match bounded(self.docker.remove_container(container, Some(options))).await {
            Ok(()) => tracing::debug!(container, "container removed"),
            // Gone already, or its removal is already in progress.
            Err(failure) if matches!(failure.status(), Some(404 | 409)) => {}
            Err(failure) => {
                tracing::warn!(container, error = %failure.message(), "cannot remove the container; remove it with `docker rm -f`")
            }
        }
    }
}

/// The per-call host directory `hype-run` writes its termination message
/// to; writable by any user, since the image's user may not be this one.
fn create_termination_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)))
        .map_err(|err| Error::Config {
            message: format!(
                "cannot create the termination message directory {}: {err}",
                dir.display()
            ),
        })
}

/// How a container that wrote no outcome ended.
fn describe(code: i64, engine_error: Option<&str>) -> String {
    let mut text = describe_end("the container", Ended::Code(code));
    if let Some(error) = engine_error.filter(|e| !e.is_empty()) {
        text.push_str(&format!("; the engine says: {error}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn exit_codes_are_described() {
        assert!(describe(137, None).contains("SIGKILL"));
        assert!(describe(101, None).contains("panicked"));
        assert!(describe(66, None).contains("unknown function"));
        assert_eq!(
            describe(3, Some("")),
            "the container exited with code 3 without writing an outcome"
        );
        assert!(describe(127, Some("exec failed")).ends_with("the engine says: exec failed"));
    }
}
