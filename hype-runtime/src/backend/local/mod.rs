//! The local runner: each call is a fresh child process of this binary (or
//! a configured worker binary) invoked as `hype-run`. The embedded default.
//!
//! - The child inherits this process's environment, plus the
//!   environment's env vars, `HYPE_EXECUTION_ID`,
//!   `HYPE_TERMINATION_MESSAGE_PATH` (a per-call file in the runner's
//!   temporary directory) and
//!   `HYPE_MOUNTS`.
//! - Secrets are directories: secret `NAME` is `<secrets dir>/NAME`
//!   (default `$HYPE_LOCAL_SECRETS`, else `~/.config/hype/secrets`), one file
//!   per key, as a Kubernetes secret volume would show it. A missing
//!   directory fails the call before anything starts.
//! - Volumes are directories under `<volumes dir>/NAME` (default
//!   `$HYPE_LOCAL_VOLUMES`, else `~/.local/share/hype/volumes`), created on
//!   first use; transient ones are removed when the submitter closes or is
//!   dropped, unless `keep_on_exit`. A transient volume in use has a marker,
//!   `<volumes dir>/.hype-transient/NAME+<owner tag>`; when a runner is
//!   built it removes the markers of dead owners, and a transient volume
//!   that no longer has any (a killed submitter's) with them. Read-only is not enforced for child
//!   processes (the Docker and Kubernetes runners enforce it).
//! - Each mount's container path maps to its directory through
//!   `HYPE_MOUNTS`; code reads it with [`crate::mount_path`].
//! - The child runs in its own process group. Timeout and cancellation
//!   (dropping the call's future) kill the whole group: no orphans.
//! - On Linux the child also dies with this process, even when this process
//!   is killed with SIGKILL: it gets a parent-death signal, and its
//!   `hype-run` then kills its group (see `process.rs`, "Dying with the
//!   parent"). The kernel sends that signal when the forking *thread* ends,
//!   so every child is forked on one thread, `hype-spawner`, started on the
//!   first call and never ending (a tokio worker may be retired by
//!   `block_in_place`, a blocking-pool thread ends when idle, and the
//!   runtime itself may end before the submitter does).
//! - The runner's temporary directory carries its owner's tag
//!   (`hype-local-<pid>.<start>.<boot>-XXXXXX`); one left by a process that
//!   was killed is removed by the next hype process that makes one.
//! - Its stdout is inherited; its stderr is captured (the last lines are
//!   attached to errors) and forwarded to `tracing` at debug level.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::{Cluster, Connection, Ended, Job, Runner, describe_end};
use crate::cleanup;
use crate::config;
use crate::environment::RunEnvironment;
use crate::error::Error;
use crate::logs::{self, Stream};
use crate::mounts;
use crate::phases::Mark;
use futures::future::BoxFuture;

mod spawner;
mod volumes;

use spawner::{GroupGuard, spawn};
use volumes::{Dirs, sweep_transient_volumes};

/// How many stderr lines of a failed child an error keeps.
const STDERR_TAIL_LINES: usize = 20;
/// How long to wait for a child's stderr to close after it exited (a
/// grandchild may hold it open).
const STDERR_DRAIN_BOUND: Duration = Duration::from_secs(2);

/// Child processes of this binary (or a worker binary) on this machine:
/// the embedded default.
#[derive(Debug, Clone, Default)]
pub struct LocalCluster {
    program: Option<PathBuf>,
    secrets_dir: Option<PathBuf>,
    volumes_dir: Option<PathBuf>,
}

impl LocalCluster {
    /// Child processes of this binary, secrets and volumes in their default
    /// directories.
    pub fn new() -> Self {
        LocalCluster::default()
    }

    /// Runs calls with another binary (which must register the same remote
    /// functions and dispatch `hype-run`), for instance a worker binary for
    /// tests, since a libtest harness cannot dispatch `hype-run` itself.
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// Where secrets are: secret `NAME` is the directory `dir/NAME`.
    pub fn secrets_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.secrets_dir = Some(dir.into());
        self
    }

    /// Where volumes are: volume `NAME` is the directory `dir/NAME`.
    pub fn volumes_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.volumes_dir = Some(dir.into());
        self
    }

    /// Builds the runner: the program to run, the directories, and a
    /// temporary directory for termination messages.
    fn runner(self) -> Result<LocalRunner, Error> {
        let program = match self.program {
            Some(program) => program,
            None => std::env::current_exe().map_err(|err| Error::Config {
                message: format!("cannot find this executable to run calls with: {err}"),
            })?,
        };
        let secrets_dir = self.secrets_dir.unwrap_or_else(config::local_secrets_dir);
        let volumes_dir = self.volumes_dir.unwrap_or_else(config::local_volumes_dir);
        sweep_transient_volumes(&volumes_dir);
        let work_dir = cleanup::temp_dir("hype-local-").map_err(|err| Error::Config {
            message: format!("cannot create a temporary directory for local calls: {err}"),
        })?;
        Ok(LocalRunner {
            program,
            dirs: Arc::new(Dirs::new(secrets_dir, volumes_dir, work_dir)),
        })
    }
}

impl Cluster for LocalCluster {
    fn connect(
        self,
        _connection: Connection,
    ) -> BoxFuture<'static, Result<Arc<dyn Runner>, Error>> {
        // Finding the executable, the sweep of dead volumes and the
        // temporary directory are blocking filesystem work.
        Box::pin(async move {
            let runner = tokio::task::spawn_blocking(move || self.runner())
                .await
                .map_err(|err| Error::Config {
                    message: format!("cannot set up local calls: {err}"),
                })??;
            Ok(Arc::new(runner) as Arc<dyn Runner>)
        })
    }
}

/// Runs each call as a child process. Built by connecting a [`LocalCluster`].
#[derive(Debug)]
pub(crate) struct LocalRunner {
    program: PathBuf,
    dirs: Arc<Dirs>,
}

impl LocalRunner {
    async fn run_job(&self, job: Job, env: &RunEnvironment) -> Result<String, Error> {
        for option in env.pod_only_options() {
            tracing::debug!(
                option,
                "the local runner ignores this Kubernetes-only option"
            );
        }
        let mounts = {
            let (dirs, env) = (Arc::clone(&self.dirs), env.clone());
            tokio::task::spawn_blocking(move || dirs.map_mounts(&env))
                .await
                .map_err(|err| Error::Config {
                    message: format!("cannot prepare the call's mounts: {err}"),
                })??
        };
        let mounts = mounts::encode(&mounts).map_err(|problem| Error::InvalidEnvironment {
            problems: vec![problem],
        })?;
        let termination_path = self
            .dirs
            .work_dir
            .join(format!("{}.termination-log", job.execution_id));
        let _termination_file = RemoveOnDrop(termination_path.clone());

        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg(crate::wire::HYPE_RUN)
            .arg(&job.call)
            .envs(env.env_vars().iter().map(|(k, v)| (k, v)))
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .env(config::HYPE_EXECUTION_ID, &job.execution_id)
            .env(config::HYPE_TERMINATION_MESSAGE_PATH, &termination_path)
            .env(config::HYPE_MOUNTS, mounts)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        crate::process::die_with_this_process(command.as_std_mut());
        job.phases.mark(Mark::Submitted);
        let mut child = spawn(command).await.map_err(|err| Error::Spawn {
            program: self.program.clone(),
            message: err.to_string(),
        })?;
        job.phases.mark(Mark::Started);
        let mut group = GroupGuard(child.id().map(|pid| pid as i32));
        tracing::debug!(function = job.function, execution_id = %job.execution_id, pid = ?child.id(), "started");

        // Both streams are read to their end into the job's log sink;
        // stderr's last lines also go into the error of a child that
        // writes no outcome.
        let stdout = child.stdout.take().map(|stdout| {
            let logs = Arc::clone(&job.logs);
            tokio::spawn(async move { logs::pump(stdout, &logs, Stream::Stdout, 0).await })
        });
        let stderr = child.stderr.take().map(|stderr| {
            let logs = Arc::clone(&job.logs);
            tokio::spawn(async move {
                logs::pump(stderr, &logs, Stream::Stderr, STDERR_TAIL_LINES)
                    .await
                    .join("\n")
            })
        });
        let status = match tokio::time::timeout(env.timeout(), child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(err)) => {
                return Err(Error::RunnerFailed {
                    function: job.function.to_owned(),
                    execution_id: job.execution_id,
                    status: format!("cannot wait for the child process: {err}"),
                    stderr_tail: String::new(),
                    signal: None,
                });
            }
            Err(_) => {
                group.kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                return Err(Error::Timeout {
                    function: job.function.to_owned(),
                    execution_id: job.execution_id,
                    after: env.timeout(),
                });
            }
        };
        group.0 = None; // the leader is reaped: its group ID may be reused
        job.phases.mark(Mark::Exited);
        // The child is gone; a process it started may hold the pipes open:
        // wait for their end a little, not for ever.
        if let Some(task) = stdout {
            let _ = tokio::time::timeout(STDERR_DRAIN_BOUND, task).await;
        }
        let stderr_tail = match stderr {
            Some(task) => tokio::time::timeout(STDERR_DRAIN_BOUND, task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => String::new(),
        };
        let message = tokio::fs::read_to_string(&termination_path).await;
        job.phases.mark(Mark::OutcomeRead);
        match message {
            Ok(message) if !message.is_empty() => Ok(message),
            _ => Err(Error::RunnerFailed {
                function: job.function.to_owned(),
                execution_id: job.execution_id,
                status: describe(status),
                stderr_tail,
                signal: std::os::unix::process::ExitStatusExt::signal(&status),
            }),
        }
    }
}

impl Runner for LocalRunner {
    fn run<'a>(
        &'a self,
        job: Job,
        env: &'a RunEnvironment,
    ) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(self.run_job(job, env))
    }

    fn close(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let dirs = Arc::clone(&self.dirs);
            let failures = tokio::task::spawn_blocking(move || dirs.remove())
                .await
                .unwrap_or_else(|err| vec![format!("the removal did not run: {err}")]);
            if failures.is_empty() {
                Ok(())
            } else {
                Err(Error::Config {
                    message: format!(
                        "cannot remove transient directories: {}",
                        failures.join("; ")
                    ),
                })
            }
        })
    }
}

impl Drop for LocalRunner {
    fn drop(&mut self) {
        let dirs = Arc::clone(&self.dirs);
        cleanup::in_background(move || {
            dirs.remove();
        });
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.0);
        cleanup::in_background(move || {
            let _ = std::fs::remove_file(path);
        });
    }
}

/// How a child that wrote no outcome ended.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => describe_end("the process", Ended::Code(code.into())),
        (None, Some(signal)) => describe_end("the process", Ended::Signal(signal)),
        (None, None) => format!("the process ended with {status}"),
    }
}
