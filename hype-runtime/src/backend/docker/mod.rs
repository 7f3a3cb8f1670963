//! The Docker runner: each call is a container on a Docker engine (the
//! `docker` feature), like spotify/hype's `LocalDockerRunner`.
//!
//! A call's path: its named volumes are made sure of, its container is
//! built (`spec`: image, `Cmd = [<call>]` for the image's `hype-run`
//! entrypoint, env vars, labels, mounts, cpu and memory limits) and created, pulling the image first if the engine does
//! not have it (bounded by [`DockerCluster::pull_timeout`]); it is started,
//! and the engine's wait API (no polling) reports its exit, bounded by the
//! environment's timeout. Then:
//!
//! - `State.OOMKilled` gives [`Error::OutOfMemory`] with the limit;
//! - a termination message is returned for the submitter to decode;
//! - no message gives [`Error::RunnerFailed`] with the exit status and the
//!   last lines of the container's log.
//!
//! **Staging and the termination message** travel through bind mounts: the
//! submitter's staging directory (which must be `file://`) is mounted at
//! the same path, so the URIs in call envelopes and outcomes mean the same
//! inside and out, and a per-call host directory is mounted at
//! `spec::TERMINATION_DIR`, where `HYPE_TERMINATION_MESSAGE_PATH` points.
//! The engine must therefore see this machine's files (a local engine, not
//! a remote `DOCKER_HOST`). Containers run as their image's user, which
//! must be able to write the staging directory.
//!
//! **Secrets** are directories, as for the local runner: secret `NAME` is
//! `<secrets dir>/NAME` (default `$HYPE_LOCAL_SECRETS`, else
//! `~/.config/hype/secrets`), bind-mounted read-only at its mount path.
//! **Volumes** are named Docker volumes, created if missing and labelled;
//! mounts are read-only or read-write as asked. Transient volumes are
//! removed when the submitter closes (unless `keep_on_exit` or
//! [`DockerCluster::keep_volumes`]).
//!
//! **Cleanup.** Each call runs in a task of its own, which owns the
//! container's life: dropping the call's future signals the task, which
//! stops and removes the container; timeouts do the same. The container is
//! removed before the result is returned, unless
//! [`DockerCluster::keep_containers`] keeps it (stopped) for inspection.
//! [`Runner::close`] waits for those tasks, removes anything left with the
//! session's label, then the transient volumes. Every engine call has a
//! bound. Everything carries `app.kubernetes.io/managed-by=hype` and
//! `hype.dev/session=<session>`, so leftovers can be found with
//! `docker ps -a --filter label=app.kubernetes.io/managed-by=hype`.
//!
//! **A killed submitter** cannot clean up, so containers and transient
//! volumes also carry `hype.dev/owner` (this process, [`crate::owner`]).
//! On connect, the runner removes the containers and transient volumes
//! whose owner is dead ([`reap`]: never a live or unknown owner's, never a
//! persistent volume), bounded in time, warning and going on if it fails;
//! `hype gc --docker` does the same on demand.
//!
//! The files, in the order a call meets them: [`cluster`] (the
//! [`DockerCluster`] settings and connecting), `spec` (the container of a
//! call), `volumes` (named volumes), `container` (one container's life:
//! create, pull, start, wait, read, remove), [`engine`] (connecting,
//! bounded engine calls and their errors), [`reap`] (what dead sessions
//! left).

pub mod cluster;
mod container;
pub mod engine;
pub mod reap;
pub(crate) mod spec;
mod volumes;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, RemoveVolumeOptions};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::cluster::DockerCluster;
use self::engine::bounded;
use self::spec::ContainerRequest;
use super::{Arch, Delivery, Job, Runner};
use crate::cleanup;
use crate::environment::RunEnvironment;
use crate::error::Error;
use futures::future::BoxFuture;

/// How long [`Runner::close`] waits for calls in flight to clean up.
const CLOSE_WAIT: Duration = Duration::from_secs(90);

/// Runs each call as a container. Built by connecting a [`DockerCluster`].
#[derive(Debug)]
pub(crate) struct DockerRunner {
    shared: Arc<Shared>,
}

/// What the runner's calls share; each call's task holds it.
#[derive(Debug)]
struct Shared {
    docker: Docker,
    session: String,
    staging_dir: PathBuf,
    secrets_dir: PathBuf,
    work_dir: PathBuf,
    keep_containers: bool,
    keep_volumes: bool,
    pull_timeout: Duration,
    command_prefix: Vec<String>,
    /// The engine's machine type, when it says.
    arch: Option<Arch>,
    /// Volumes this runner has made sure of (created once per runner).
    volumes: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    /// Transient volumes to remove on close.
    transient: Mutex<BTreeSet<String>>,
    /// The calls' tasks, until each has cleaned up.
    tasks: TaskTracker,
}

impl Runner for DockerRunner {
    fn run<'a>(
        &'a self,
        job: Job,
        env: &'a RunEnvironment,
    ) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let termination_dir = shared.work_dir.join(&job.execution_id);
            let plan = spec::build(&ContainerRequest {
                job: &job,
                env,
                session: &shared.session,
                staging_dir: &shared.staging_dir,
                termination_dir: &termination_dir,
                secrets_dir: &shared.secrets_dir,
                command_prefix: &shared.command_prefix,
            })?;
            // The task owns the container's life, so that dropping this
            // future (cancellation) never interrupts an engine call midway:
            // the guard cancels the token, and the task removes what it
            // created.
            let cancel = CancellationToken::new();
            let _cancel_on_drop = cancel.clone().drop_guard();
            let task = shared.tasks.spawn(Arc::clone(shared).execute(
                job.clone(),
                plan,
                termination_dir,
                env.timeout(),
                cancel,
            ));
            task.await.unwrap_or_else(|err| {
                Err(Error::Cluster {
                    operation: format!("run container {}", job.execution_id),
                    message: format!("the call's task ended abnormally: {err}"),
                    source: None,
                })
            })
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.shared.close())
    }

    /// The engine is local: the executable is bind-mounted, never staged.
    fn delivery(&self) -> Delivery {
        Delivery::Mount {
            arch: self.shared.arch,
        }
    }
}

impl Shared {
    async fn close(&self) -> Result<(), Error> {
        self.tasks.close();
        if tokio::time::timeout(CLOSE_WAIT, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                calls = self.tasks.len(),
                "calls in flight did not finish cleaning up within {CLOSE_WAIT:?}"
            );
        }
        let mut failures = Vec::new();
        if !self.keep_containers {
            // Normally nothing is left: each call's task removes its own.
            let options = ListContainersOptions {
                all: true,
                filters: Some(spec::session_filter(&self.session)),
                ..Default::default()
            };
            match bounded(self.docker.list_containers(Some(options))).await {
                Ok(containers) => {
                    for container in containers {
                        if let Some(id) = container.id {
                            tracing::debug!(container = %id, "removing a leftover container");
                            self.remove_container(&id).await;
                        }
                    }
                }
                Err(failure) => failures.push(format!(
                    "cannot list the session's containers: {}",
                    failure.message()
                )),
            }
        }
        let volumes =
            std::mem::take(&mut *self.transient.lock().unwrap_or_else(|e| e.into_inner()));
        for volume in volumes {
            match bounded(
                self.docker
                    .remove_volume(&volume, None::<RemoveVolumeOptions>),
            )
            .await
            {
                Ok(()) => tracing::debug!(%volume, "transient volume removed"),
                Err(failure) if failure.status() == Some(404) => {}
                Err(failure) if failure.status() == Some(409) && self.keep_containers => {
                    tracing::info!(%volume, "transient volume kept: kept containers use it")
                }
                Err(failure) => failures.push(format!("volume {volume}: {}", failure.message())),
            }
        }
        if !self.keep_containers
            && let Err(err) = cleanup::remove(self.work_dir.clone()).await
        {
            failures.push(format!("{}: {err}", self.work_dir.display()));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::Cluster {
                operation: "close the Docker runner".to_owned(),
                message: failures.join("; "),
                source: None,
            })
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let left = std::mem::take(&mut *self.transient.lock().unwrap_or_else(|e| e.into_inner()));
        if !left.is_empty() {
            // Calls in flight hold this runner, so no container uses the
            // volumes now; remove them if a runtime is still there to.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let docker = self.docker.clone();
                    runtime.spawn(async move {
                        for volume in left {
                            if let Err(failure) =
                                bounded(docker.remove_volume(&volume, None::<RemoveVolumeOptions>)).await
                            {
                                tracing::warn!(%volume, error = %failure.message(), "cannot remove a transient volume; remove it with `docker volume rm`");
                            }
                        }
                    });
                }
                Err(_) => tracing::warn!(
                    volumes = ?left,
                    "transient Docker volumes stay: the submitter was dropped outside a tokio runtime without close(); remove them with `docker volume rm`"
                ),
            }
        }
        if !self.keep_containers {
            let work_dir = self.work_dir.clone();
            cleanup::in_background(move || {
                let _ = cleanup::remove_now(&work_dir);
            });
        }
    }
}
