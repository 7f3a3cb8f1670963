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
//!   `hype-run` then kills its group (see [`crate::entry`], "Dying with the
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

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Cluster, Connection, Ended, Job, Runner, describe_end};
use crate::cleanup;
use crate::config;
use crate::environment::{RunEnvironment, VolumeLifetime};
use crate::error::Error;
use crate::logs::{self, Stream};
use crate::mounts::{self, MappedMount};
use crate::owner::{Liveness, Owner};
use crate::staging::BoxFuture;

/// How many stderr lines of a failed child an error keeps.
const STDERR_TAIL_LINES: usize = 20;
/// How long to wait for a child's stderr to close after it exited (a
/// grandchild may hold it open).
const STDERR_DRAIN_BOUND: Duration = Duration::from_secs(2);
/// How long a call waits for `hype-spawner` to start its child.
const SPAWN_BOUND: Duration = Duration::from_secs(30);

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
            dirs: Arc::new(Dirs {
                secrets_dir,
                volumes_dir,
                work_dir,
                transient: Mutex::new(BTreeSet::new()),
            }),
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

/// The runner's directories, shared with the blocking tasks that create
/// and remove what lies in them (never on an async worker thread).
#[derive(Debug)]
struct Dirs {
    secrets_dir: PathBuf,
    volumes_dir: PathBuf,
    work_dir: PathBuf,
    transient: Mutex<BTreeSet<PathBuf>>,
}

impl Dirs {
    /// Maps the environment's secrets and volumes to directories, creating
    /// volume directories; reports every missing secret at once.
    fn map_mounts(&self, env: &RunEnvironment) -> Result<Vec<MappedMount>, Error> {
        let mut problems = Vec::new();
        let mut mapped = Vec::new();
        for secret in env.secrets() {
            let dir = self.secrets_dir.join(secret.name());
            if dir.is_dir() {
                mapped.push(MappedMount {
                    container_path: secret.mount_path().to_owned(),
                    local_path: dir,
                    read_only: true,
                });
            } else {
                problems.push(format!(
                    "secret {} has no local directory {}: create it with one file per key, or point HYPE_LOCAL_SECRETS (or LocalCluster::secrets_dir) at a directory with one folder per secret",
                    secret.name(),
                    dir.display()
                ));
            }
        }
        for mount in env.mounts() {
            let dir = self.volumes_dir.join(mount.volume().name());
            if let Err(err) = std::fs::create_dir_all(&dir) {
                problems.push(format!(
                    "volume {}: cannot create {}: {err}",
                    mount.volume().name(),
                    dir.display()
                ));
                continue;
            }
            if mount.volume().lifetime() == VolumeLifetime::Transient
                && !mount.volume().is_kept_on_exit()
            {
                let mut transient = self.transient.lock().unwrap_or_else(|e| e.into_inner());
                if transient.insert(dir.clone()) {
                    cleanup::remove_at_exit(&dir);
                    let marker = transient_marker(&self.volumes_dir, mount.volume().name());
                    let marked = std::fs::create_dir_all(transient_markers(&self.volumes_dir))
                        .and_then(|()| std::fs::write(&marker, b""));
                    if let Err(err) = marked {
                        tracing::debug!(marker = %marker.display(), %err, "cannot mark a transient volume as this process's");
                    }
                }
            }
            mapped.push(MappedMount {
                container_path: mount.mount_path().to_owned(),
                local_path: dir,
                read_only: mount.is_read_only(),
            });
        }
        if problems.is_empty() {
            Ok(mapped)
        } else {
            Err(Error::InvalidEnvironment { problems })
        }
    }
}

impl LocalRunner {
    async fn run_job(&self, job: Job, env: &RunEnvironment) -> Result<String, Error> {
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
            .env(config::HYPE_EXECUTION_ID, &job.execution_id)
            .env(config::HYPE_TERMINATION_MESSAGE_PATH, &termination_path)
            .env(config::HYPE_MOUNTS, mounts)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        crate::process::die_with_this_process(command.as_std_mut());
        let mut child = spawn(command).await.map_err(|err| Error::Spawn {
            program: self.program.clone(),
            message: err.to_string(),
        })?;
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
        match tokio::fs::read_to_string(&termination_path).await {
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

impl Dirs {
    /// Removes this process's marker of the transient volume `dir`.
    fn unmark(&self, dir: &std::path::Path) {
        if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
            let _ = std::fs::remove_file(transient_marker(&self.volumes_dir, name));
        }
    }
}

/// Where the markers of transient volumes in use are.
fn transient_markers(volumes_dir: &std::path::Path) -> PathBuf {
    volumes_dir.join(".hype-transient")
}

/// This process's marker of the transient volume `name`.
fn transient_marker(volumes_dir: &std::path::Path, name: &str) -> PathBuf {
    transient_markers(volumes_dir).join(format!("{name}+{}", Owner::current().tag()))
}

/// How many markers one sweep of transient volumes reads at most.
const MARKERS_SWEPT: usize = 1_000;

/// Removes the markers of dead owners in `volumes_dir`, and each transient
/// volume left without a marker by that (a killed submitter's). A volume
/// name is a DNS subdomain (no `+`, no `/`), so a marker's name splits
/// unambiguously; links are never followed; bounded.
fn sweep_transient_volumes(volumes_dir: &std::path::Path) {
    let markers = transient_markers(volumes_dir);
    let Ok(entries) = std::fs::read_dir(&markers) else {
        return;
    };
    let mut dead = BTreeSet::new();
    let mut marked = BTreeSet::new();
    for entry in entries.take(MARKERS_SWEPT).flatten() {
        let file = entry.file_name();
        let Some((name, tag)) = file.to_str().and_then(|f| f.rsplit_once('+')) else {
            continue;
        };
        if name.is_empty() || name.starts_with('.') || name.contains('/') {
            continue;
        }
        match Owner::parse_tag(tag).map(|owner| owner.liveness()) {
            Some(Liveness::Dead) => {
                if std::fs::remove_file(entry.path()).is_ok() {
                    dead.insert(name.to_owned());
                }
            }
            _ => {
                marked.insert(name.to_owned());
            }
        }
    }
    for name in dead.difference(&marked) {
        let dir = volumes_dir.join(name);
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir())
            && std::fs::remove_dir_all(&dir).is_ok()
        {
            tracing::debug!(volume = %dir.display(), "removed the transient volume of a dead process");
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

impl Dirs {
    /// Removes the transient volumes (and their markers) and the work
    /// directory; says what could not be removed. Blocking.
    fn remove(&self) -> Vec<String> {
        let transient =
            std::mem::take(&mut *self.transient.lock().unwrap_or_else(|e| e.into_inner()));
        let mut failures = Vec::new();
        for dir in transient {
            if let Err(err) = cleanup::remove_now(&dir) {
                failures.push(format!("{}: {err}", dir.display()));
            }
            self.unmark(&dir);
        }
        if let Err(err) = cleanup::remove_now(&self.work_dir) {
            failures.push(format!("{}: {err}", self.work_dir.display()));
        }
        failures
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

/// A child for `hype-spawner` to start on the runtime of the call that
/// asked, and where to send it.
type SpawnRequest = (
    tokio::process::Command,
    tokio::runtime::Handle,
    tokio::sync::oneshot::Sender<std::io::Result<tokio::process::Child>>,
);

/// Starts `command` on `hype-spawner`, the thread that lives as long as
/// the process (see the module docs), registered with the calling task's
/// runtime. Elsewhere than Linux, where no parent-death signal ties the
/// child to a thread, on the calling thread.
async fn spawn(mut command: tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    if !cfg!(target_os = "linux") {
        return command.spawn();
    }
    static SPAWNER: std::sync::OnceLock<Option<std::sync::mpsc::Sender<SpawnRequest>>> =
        std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("hype-spawner".to_owned())
            .spawn(move || {
                // Never ends: the sender lives in a static.
                while let Ok((mut command, runtime, reply)) = rx.recv() {
                    let _entered = runtime.enter();
                    let spawned = command.spawn();
                    if let Err(Ok(child)) = reply.send(spawned) {
                        // The call went away while its child started: kill
                        // its group before the child can start anything.
                        if let Some(pid) = child.id() {
                            kill_group(pid as i32);
                        }
                    }
                }
            })
            .ok()
            .map(|_| tx)
    });
    let Some(spawner) = spawner else {
        return Err(std::io::Error::other(
            "cannot start the hype-spawner thread that starts local children",
        ));
    };
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        std::io::Error::other("a local call must run inside a tokio runtime (with IO enabled)")
    })?;
    let (reply, started) = tokio::sync::oneshot::channel();
    spawner
        .send((command, runtime, reply))
        .map_err(|_| std::io::Error::other("the hype-spawner thread has ended"))?;
    match tokio::time::timeout(SPAWN_BOUND, started).await {
        Ok(Ok(spawned)) => spawned,
        Ok(Err(_)) => Err(std::io::Error::other(
            "the hype-spawner thread dropped the request",
        )),
        Err(_) => Err(std::io::Error::other(format!(
            "the hype-spawner thread did not start the child within {SPAWN_BOUND:?}"
        ))),
    }
}

/// Sends SIGKILL to the process group `pgid`.
fn kill_group(pgid: i32) {
    // SAFETY: kill(2) with a negative PID signals the process group the
    // runner created for a child (process_group(0)) that has not been
    // reaped yet, so the group ID is still that child's.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Kills a child's process group unless disarmed: on timeout, and when the
/// call's future is dropped mid-run.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            kill_group(pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_volumes_of_dead_owners_are_swept() {
        let volumes = tempfile::tempdir().unwrap();
        let markers = transient_markers(volumes.path());
        std::fs::create_dir_all(&markers).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let me = Owner::current().tag();
        let boot = me.rsplit('.').next().unwrap();
        let dead = format!("{dead_pid}.1.{boot}");
        for (volume, owners) in [
            ("gone", vec![dead.as_str()]),
            ("shared", vec![dead.as_str(), me.as_str()]),
            ("unmarked", vec![]),
        ] {
            std::fs::create_dir(volumes.path().join(volume)).unwrap();
            std::fs::write(volumes.path().join(volume).join("f"), b"x").unwrap();
            for owner in owners {
                std::fs::write(markers.join(format!("{volume}+{owner}")), b"").unwrap();
            }
        }
        std::fs::write(markers.join("odd-name"), b"").unwrap();

        sweep_transient_volumes(volumes.path());
        assert!(!volumes.path().join("gone").exists());
        assert!(
            volumes.path().join("shared/f").exists(),
            "a live owner keeps it"
        );
        assert!(volumes.path().join("unmarked/f").exists());
        let mut left: Vec<String> = std::fs::read_dir(&markers)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["odd-name".to_owned(), format!("shared+{me}")]);
    }
}
