//! The kubelet simulator: schedules each pod onto the one node, prepares
//! its volumes, "pulls" its image (looks it up in
//! [`KubeletOptions::images`](super::KubeletOptions::images)), resolves its
//! environment, runs every container as a real process (or through the
//! in-process executor), and writes the statuses a kubelet writes, one
//! MODIFIED event per change.
//!
//! Each pod has one tokio task (its "pod worker"); each container process
//! is spawned and waited for by its own std thread, so a process never
//! outlives the thread that could be told to kill it and the parent-death
//! signal stays tied to a live thread. Every container is its own process
//! group, killed as a whole, as a container's processes die with it. A
//! container with `stdin: true` gets pipes: its output is copied to its
//! log and to attached clients (`streams.rs`), and it counts as ended once
//! its output is in the log.
//!
//! With the Docker executor ([`super::docker`]) each container is a Docker
//! container instead: the image is looked up on the engine (never pulled),
//! mounts are bind mounts at their real paths (no `HYPE_MOUNTS`), the
//! termination message file is bind-mounted at the container's
//! `terminationMessagePath`, and the engine's `State.OOMKilled` makes a
//! container `OOMKilled`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Event, EventSource, HostIP, ObjectReference,
    PersistentVolumeClaim, Pod, PodCondition, PodIP, PodStatus, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta, Time};
use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::api::{ApiError, LogQuery, check_preconditions};
use super::docker::{BindMount, DockerLaunch, Exit};
use super::faults::Autoscaler;
use super::store::{self, Key, Kind, State, key_of, now};
use super::streams::{self, ContainerIo, ExecContext};
use super::{Executor, InProcessPod, InProcessResult, KubeletOptions, ReadOnlyMounts, Shared};

/// The kubelet's termination message limit per container.
const TERMINATION_MESSAGE_LIMIT: usize = 4096;
/// `FallbackToLogsOnError` takes at most this many log lines…
const FALLBACK_LOG_LINES: usize = 80;
/// …and at most this many bytes.
const FALLBACK_LOG_BYTES: usize = 2048;
/// Where the pod's IP would be.
const POD_IP: &str = "127.0.0.1";
/// The uid of processes in pods without read-only claim mounts, when
/// read-only mounts are enforced by file modes.
const RW_UID: u32 = 65534;
/// The uid of processes in pods with a read-only claim mount, then.
const RO_UID: u32 = 65533;
/// How long a failed pull shows `ErrImagePull` before `ImagePullBackOff`.
const PULL_BACK_OFF: Duration = Duration::from_secs(1);
/// PATH in every container, as base images set it.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The process groups of every container ever started, and whether the
/// server is closing (then a freshly spawned process is killed at once).
#[derive(Default)]
struct Processes {
    groups: BTreeSet<i32>,
    closing: bool,
}

/// The simulator's state, part of the server's shared state.
pub(crate) struct Kubelet {
    images: BTreeMap<String, PathBuf>,
    docker_images: BTreeMap<String, String>,
    executor: Executor,
    env: BTreeMap<String, String>,
    node_name: String,
    pods_dir: PathBuf,
    volumes_dir: PathBuf,
    /// The server's staging directory, bind-mounted into Docker containers.
    staging_dir: PathBuf,
    /// This server's value of the Docker containers' server label.
    server_label: String,
    pub(crate) read_only: ReadOnlyMounts,
    controls: Mutex<HashMap<String, watch::Sender<bool>>>,
    processes: Arc<Mutex<Processes>>,
    tasks: Mutex<Vec<AbortHandle>>,
    /// Running containers' streams, for attach and exec.
    streams: streams::Registry,
    /// How long each pod takes to start.
    pod_delays: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Kubelet {
    /// A kubelet keeping its files under `root`.
    pub(crate) fn new(options: &KubeletOptions, root: &Path) -> Kubelet {
        let pods_dir = root.join("pods");
        let volumes_dir = root.join("volumes");
        for dir in [&pods_dir, &volumes_dir] {
            make_dir(dir, 0o755, None).expect("create the kubelet's directories");
        }
        let docker = matches!(options.executor, Executor::Docker(_));
        Kubelet {
            images: options.images.clone(),
            docker_images: options.docker_images.clone(),
            executor: options.executor.clone(),
            env: options.env.clone(),
            node_name: options.node_name.clone(),
            pod_delays: options.pod_delays.total(),
            // A container's read-only bind mounts refuse writes (EROFS).
            read_only: if docker {
                ReadOnlyMounts::MountNamespace
            } else {
                options
                    .read_only_mounts
                    .unwrap_or_else(|| detect_read_only(root))
            },
            pods_dir,
            volumes_dir,
            staging_dir: root.join("staging"),
            server_label: root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            controls: Mutex::new(HashMap::new()),
            processes: Arc::new(Mutex::new(Processes::default())),
            tasks: Mutex::new(Vec::new()),
            streams: Arc::default(),
        }
    }

    /// The directory holding a claim's data.
    pub(crate) fn claim_dir(&self, claim_uid: &str) -> PathBuf {
        self.volumes_dir.join(claim_uid)
    }

    fn pod_dir(&self, pod_uid: &str) -> PathBuf {
        self.pods_dir.join(pod_uid)
    }

    /// Whether containers are processes whose streams attach and exec
    /// reach (the process executor).
    /// Whether containers' streams can be served: attach with the process
    /// and Docker executors, exec (`exec`) with the process executor only.
    pub(crate) fn serves_streams(&self, exec: bool) -> bool {
        match self.executor {
            Executor::Process => true,
            Executor::Docker(_) => !exec,
            _ => false,
        }
    }

    /// The streams of a running container of the pod with `pod_uid`.
    pub(crate) fn container_io(&self, pod_uid: &str, container: &str) -> Option<Arc<ContainerIo>> {
        lock(&self.streams)
            .get(&(pod_uid.to_owned(), container.to_owned()))
            .cloned()
    }

    fn stop(&self, uid: &str) {
        if let Some(control) = lock(&self.controls).get(uid) {
            control.send_replace(true);
        }
    }

    /// Live processes (not zombies) in the process group of any container.
    pub(crate) fn live_processes(&self) -> Vec<u32> {
        let groups = lock(&self.processes).groups.clone();
        live_in_groups(&groups)
    }

    /// The names of the Docker containers this server created that the
    /// engine still has (empty with other executors, or if the engine
    /// cannot be asked).
    pub(crate) async fn live_containers(&self) -> Vec<String> {
        match &self.executor {
            Executor::Docker(docker) => docker
                .containers_of(&self.server_label)
                .await
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Removes every Docker container of this server (bounded by
    /// `within`); true if none is left. Nothing to do for other executors.
    pub(crate) async fn remove_containers(&self, within: Duration) -> bool {
        match &self.executor {
            Executor::Docker(docker) => docker.remove_all_of(&self.server_label, within).await,
            _ => true,
        }
    }

    /// [`remove_containers`](Self::remove_containers) for `Drop`: blocks
    /// this thread (up to `within` and a little).
    pub(crate) fn remove_containers_blocking(&self, within: Duration) {
        if matches!(self.executor, Executor::Docker(_)) {
            super::docker::remove_all_of_blocking(self.server_label.clone(), within);
        }
    }

    /// Kills every container process and stops every pod worker, without
    /// changing any object: the server is going away.
    pub(crate) fn kill_everything(&self) {
        {
            let mut processes = lock(&self.processes);
            processes.closing = true;
            let groups = processes.groups.clone();
            for pid in live_in_groups(&groups) {
                if let Some(group) = process_group_of(pid) {
                    // SAFETY: kill(2) has no memory-safety preconditions.
                    unsafe { libc::kill(-group, libc::SIGKILL) };
                }
            }
        }
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

/// The process group of `pid`, from `/proc/<pid>/stat`, and whether the
/// process is a zombie.
fn proc_stat(pid: u32) -> Option<(i32, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let _ppid = fields.next()?;
    let group = fields.next()?.parse().ok()?;
    Some((group, state == "Z"))
}

fn process_group_of(pid: u32) -> Option<i32> {
    proc_stat(pid).map(|(g, _)| g)
}

fn live_in_groups(groups: &BTreeSet<i32>) -> Vec<u32> {
    if groups.is_empty() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            proc_stat(*pid).is_some_and(|(group, zombie)| !zombie && groups.contains(&group))
        })
        .collect()
}

/// Stops tracking a process group once no process is in it (bounded wait),
/// so its number, free for reuse, can never name someone else's group.
fn forget_when_empty(processes: &Mutex<Processes>, group: i32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        // SAFETY: kill(2) with signal 0 only checks for existence.
        let empty = unsafe { libc::kill(-group, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if empty {
            lock(processes).groups.remove(&group);
            return;
        }
        if std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn make_dir(path: &Path, mode: u32, owner: Option<u32>) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(uid) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(uid))?;
    }
    Ok(())
}

/// A read-only bind mount a container's process sets up in its own mount
/// namespace before it executes.
pub(crate) struct Bind {
    source: CString,
    target: CString,
    flags: libc::c_ulong,
}

impl Bind {
    fn new(source: &Path, target: &Path) -> std::io::Result<Bind> {
        let source = CString::new(source.as_os_str().as_bytes())?;
        let target = CString::new(target.as_os_str().as_bytes())?;
        // A read-only remount must keep the locked flags of the filesystem.
        // SAFETY: statvfs writes into the zeroed struct we own; the path is
        // a valid C string.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        let mut flags = 0;
        if unsafe { libc::statvfs(source.as_ptr(), &mut stat) } == 0 {
            for (st, ms) in [
                (libc::ST_NOSUID, libc::MS_NOSUID),
                (libc::ST_NODEV, libc::MS_NODEV),
                (libc::ST_NOEXEC, libc::MS_NOEXEC),
                (libc::ST_NOATIME, libc::MS_NOATIME),
                (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
                (libc::ST_RELATIME, libc::MS_RELATIME),
            ] {
                if stat.f_flag & st != 0 {
                    flags |= ms;
                }
            }
        }
        Ok(Bind {
            source,
            target,
            flags,
        })
    }
}

/// Runs in the forked child before exec: die with the server, and mount
/// the read-only binds in a private mount namespace. Only async-signal-safe
/// calls (no allocation).
pub(crate) fn child_setup(binds: &[Bind]) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: plain system calls on valid C strings owned by `binds`.
    unsafe {
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
        if binds.is_empty() {
            return Ok(());
        }
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        for bind in binds {
            check(libc::mount(
                bind.source.as_ptr(),
                bind.target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                std::ptr::null(),
                bind.target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | bind.flags,
                std::ptr::null(),
            ))?;
        }
    }
    Ok(())
}

/// How read-only mounts can be enforced here: a private mount namespace
/// with read-only bind mounts (needs root), else file modes and two
/// unprivileged uids (needs root), else not at all.
fn detect_read_only(root: &Path) -> ReadOnlyMounts {
    static DETECTED: std::sync::OnceLock<ReadOnlyMounts> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| probe_read_only(root))
}

fn probe_read_only(root: &Path) -> ReadOnlyMounts {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return ReadOnlyMounts::NotEnforced;
    }
    let probe = root.join("read-only-probe");
    let shell = ["/bin/sh", "/usr/bin/sh"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists());
    if let (Some(shell), Ok(())) = (shell, make_dir(&probe, 0o755, None))
        && let Ok(bind) = Bind::new(&probe, &probe)
    {
        let mut command = std::process::Command::new(shell);
        command
            .args(["-c", "echo probe > \"$1/file\"", "sh"])
            .arg(&probe)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let binds = vec![bind];
        // SAFETY: child_setup only makes async-signal-safe system calls.
        unsafe { command.pre_exec(move || child_setup(&binds)) };
        let refused = command.status().is_ok_and(|s| !s.success());
        let written = probe.join("file").exists();
        let _ = std::fs::remove_dir_all(&probe);
        if refused && !written {
            return ReadOnlyMounts::MountNamespace;
        }
    }
    ReadOnlyMounts::FileModes
}

/// Starts the pod worker of a newly created pod.
pub(crate) fn admit(shared: &Arc<Shared>, pod: &Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let (stop_tx, stop_rx) = watch::channel(false);
    lock(&shared.kubelet.controls).insert(uid.clone(), stop_tx);
    let worker = PodWorker {
        shared: shared.clone(),
        key: key_of(pod),
        dir: shared.kubelet.pod_dir(&uid),
        uid,
        stop: stop_rx,
        changes: shared.store.subscribe(),
        faults: shared.faults.subscribe(),
        deadline: None,
        pull_failed_at: None,
    };
    let task = tokio::spawn(worker.run());
    let mut tasks = lock(&shared.kubelet.tasks);
    tasks.retain(|t| !t.is_finished());
    tasks.push(task.abort_handle());
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Deletes a pod as the apiserver and kubelet do: at once if it is not
/// bound to the node, already finished, or the grace period is 0;
/// otherwise it gets a deletionTimestamp (MODIFIED), the kubelet kills its
/// containers, records their termination (MODIFIED) and removes it
/// (DELETED).
pub(crate) fn delete_pod(
    shared: &Arc<Shared>,
    key: &Key,
    options: &DeleteOptions,
) -> Result<Pod, ApiError> {
    let mut state = shared.store.lock();
    let pod = state
        .get::<Pod>(key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(Kind::Pod, &key.1))?;
    check_preconditions(Kind::Pod, &pod.metadata, options)?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let grace = options
        .grace_period_seconds
        .or(pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30)
        .max(0);
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let result = if !bound || is_terminal(&pod) || grace == 0 {
        let removed = state
            .remove::<Pod>(key, Some(&uid), |p| {
                p.metadata.deletion_timestamp.get_or_insert_with(now);
                p.metadata.deletion_grace_period_seconds = Some(0);
            })
            .expect("present under the lock");
        drop(state);
        release_claims(shared);
        removed
    } else if pod.metadata.deletion_timestamp.is_some() {
        pod
    } else {
        state
            .modify::<Pod>(key, Some(&uid), |p| {
                p.metadata.deletion_timestamp = Some(now());
                p.metadata.deletion_grace_period_seconds = Some(grace);
            })
            .expect("present under the lock")
    };
    shared.kubelet.stop(&uid);
    Ok(result)
}

fn claim_in_use(state: &State, key: &Key) -> bool {
    state.pods.iter().any(|((ns, _), pod)| {
        *ns == key.0
            && !is_terminal(pod)
            && pod
                .spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .any(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| c.claim_name == key.1)
                })
    })
}

/// Deletes a claim; one a pod still uses stays (Terminating) until no
/// unfinished pod uses it, as `kubernetes.io/pvc-protection` does. Its data
/// goes with it.
pub(crate) fn delete_claim(
    shared: &Arc<Shared>,
    key: &Key,
    options: &DeleteOptions,
) -> Result<PersistentVolumeClaim, ApiError> {
    let mut state = shared.store.lock();
    let claim = state
        .get::<PersistentVolumeClaim>(key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(Kind::Pvc, &key.1))?;
    check_preconditions(Kind::Pvc, &claim.metadata, options)?;
    if claim.metadata.deletion_timestamp.is_some() {
        return Ok(claim);
    }
    if claim_in_use(&state, key) {
        return Ok(state
            .modify::<PersistentVolumeClaim>(key, None, |c| {
                c.metadata.deletion_timestamp = Some(now());
                c.metadata.deletion_grace_period_seconds = Some(0);
            })
            .expect("present under the lock"));
    }
    let removed = state
        .remove::<PersistentVolumeClaim>(key, None, |c| {
            c.metadata.deletion_timestamp = Some(now());
            c.metadata.deletion_grace_period_seconds = Some(0);
            c.metadata.finalizers = None;
        })
        .expect("present under the lock");
    drop(state);
    if let Some(uid) = &removed.metadata.uid {
        let _ = std::fs::remove_dir_all(shared.kubelet.claim_dir(uid));
    }
    Ok(removed)
}

/// Removes terminating claims no unfinished pod uses any more.
fn release_claims(shared: &Shared) {
    let mut gone = Vec::new();
    {
        let mut state = shared.store.lock();
        let terminating: Vec<Key> = state
            .pvcs
            .iter()
            .filter(|(_, c)| c.metadata.deletion_timestamp.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for key in terminating {
            if !claim_in_use(&state, &key)
                && let Some(claim) = state.remove::<PersistentVolumeClaim>(&key, None, |c| {
                    c.metadata.finalizers = None;
                })
            {
                gone.extend(claim.metadata.uid);
            }
        }
    }
    for uid in gone {
        let _ = std::fs::remove_dir_all(shared.kubelet.claim_dir(&uid));
    }
}

/// A container's log, as `GET …/pods/{name}/log` returns it.
pub(crate) fn logs(shared: &Shared, key: &Key, query: &LogQuery) -> Result<String, ApiError> {
    let (path, _) = log_file(shared, key, query)?;
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if let Some(n) = query.tail_lines {
        text = tail_lines(&text, n).to_owned();
    }
    if let Some(limit) = query.limit_bytes
        && text.len() > limit
    {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Ok(text)
}

/// Whether a `follow=true` log stream of `container` is over: the
/// container has terminated, or the pod is gone.
pub(crate) fn log_finished(shared: &Shared, key: &Key, container: &str) -> bool {
    let Some(pod) = shared.store.get::<Pod>(&key.0, &key.1) else {
        return true;
    };
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.terminated.is_some())
}

/// The file holding a pod container's log, and the container's name, or
/// the API's error when there is no such log yet (as a kubelet answers).
pub(crate) fn log_file(
    shared: &Shared,
    key: &Key,
    query: &LogQuery,
) -> Result<(PathBuf, String), ApiError> {
    let pod: Pod = shared
        .store
        .get(&key.0, &key.1)
        .ok_or_else(|| ApiError::not_found(Kind::Pod, &key.1))?;
    let names: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
        .collect();
    let name = match &query.container {
        Some(c) if names.contains(c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {}",
                key.1
            )));
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {}, choose one of: [{}]",
                key.1,
                names.join(" ")
            )));
        }
    };
    let state = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == name))
        .and_then(|c| c.state.clone());
    let waiting = match &state {
        None => Some("ContainerCreating".to_owned()),
        Some(s) if s.running.is_none() && s.terminated.is_none() => Some(
            s.waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .unwrap_or_else(|| "ContainerCreating".to_owned()),
        ),
        Some(_) => None,
    };
    if let Some(reason) = waiting {
        return Err(ApiError::bad_request(format!(
            "container {name:?} in pod {:?} is waiting to start: {reason}",
            key.1
        )));
    }
    let uid = pod.metadata.uid.unwrap_or_default();
    Ok((log_path(&shared.kubelet.pod_dir(&uid), &name), name))
}

/// The last `n` lines of `text` (a trailing newline ends a line).
fn tail_lines(text: &str, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut count = 0;
    for (i, c) in body.char_indices().rev() {
        if c == '\n' {
            count += 1;
            if count == n {
                return &text[i + 1..];
            }
        }
    }
    text
}

fn log_path(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("logs").join(format!("{container}.log"))
}

fn termination_path(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("termination").join(container)
}

/// The last `limit` bytes of a file, as text.
fn read_tail(path: &Path, limit: usize) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(limit as u64);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_ok() {
        let _ = file.take(limit as u64).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What the worker of a running pod woke up for.
enum Next {
    Exit(usize, Exit),
    Deadline,
    Woken,
}

/// How a container that exited with `code` ended: its reason, and its
/// termination message (the file, or with `FallbackToLogsOnError` the log's
/// tail when the file is empty and the container failed).
fn container_ended(
    launch: &Launch,
    pod_dir: &Path,
    code: i32,
    override_reason: Option<&str>,
    started: Option<&Started>,
) -> Ended {
    let (exit_code, reason) = match override_reason {
        Some(reason) => (137, reason.to_owned()),
        None if code == 0 => (0, "Completed".to_owned()),
        None => (code, "Error".to_owned()),
    };
    let mut message = read_tail(
        &termination_path(pod_dir, &launch.name),
        TERMINATION_MESSAGE_LIMIT,
    );
    if message.is_empty() && exit_code != 0 && launch.fallback_to_logs {
        let logs = read_tail(&log_path(pod_dir, &launch.name), 64 * 1024);
        let tail = tail_lines(&logs, FALLBACK_LOG_LINES);
        let cut = tail.len().saturating_sub(FALLBACK_LOG_BYTES);
        let cut = (cut..=tail.len())
            .find(|&i| tail.is_char_boundary(i))
            .unwrap_or(tail.len());
        message = tail[cut..].to_owned();
    }
    Ended {
        exit_code,
        reason,
        message: (!message.is_empty()).then_some(message),
        started_at: started.map(|s| s.started_at.clone()),
        finished_at: now(),
        container_id: started.and_then(|s| s.container_id.clone()),
    }
}

/// What woke a waiting pod worker.
enum Wake {
    Stop,
    Deadline,
    Changed,
}

/// One mount of a container, as `HYPE_MOUNTS` gives it.
struct Mount {
    container_path: String,
    local: PathBuf,
    read_only: bool,
}

/// Everything needed to start one container.
struct Launch {
    name: String,
    image: String,
    /// None with the in-process executor.
    program: Option<PathBuf>,
    /// The command line after the program: `hype-run`, then the args.
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    binds: Vec<(PathBuf, PathBuf)>,
    user: Option<u32>,
    fallback_to_logs: bool,
    /// Why the container cannot start (a `StartError`), if so.
    start_error: Option<String>,
    /// `stdin: true`: a stdin pipe, output copied to attached clients too.
    stdin: bool,
    /// `stdinOnce: true`: stdin closes when the first attached client
    /// closes it.
    stdin_once: bool,
    /// The container to create, with the Docker executor.
    docker: Option<DockerLaunch>,
}

/// A started container: its process group (processes), its runtime ID
/// (Docker), and its end.
struct Running {
    group: Option<i32>,
    container_id: Option<String>,
    exit: BoxFuture<'static, Exit>,
}

/// Why a pod cannot start yet: per container, a waiting reason and message.
type Blocked = Vec<(usize, &'static str, String)>;

/// With the Docker executor: each image a pod names → the local image and
/// its ID, or why it cannot be "pulled".
type DockerImages = BTreeMap<String, Result<(String, String), String>>;

/// `image` with `:latest` if it names neither tag nor digest.
fn with_latest(image: &str) -> String {
    if image
        .rsplit('/')
        .next()
        .is_some_and(|last| !last.contains([':', '@']))
    {
        format!("{image}:latest")
    } else {
        image.to_owned()
    }
}

/// A started container.
struct Started {
    index: usize,
    group: Option<i32>,
    started_at: Time,
    /// The runtime's ID (`docker://…`), when the container has a real one.
    container_id: Option<String>,
}

/// How a container ended.
#[derive(Clone)]
struct Ended {
    exit_code: i32,
    reason: String,
    message: Option<String>,
    started_at: Option<Time>,
    finished_at: Time,
    /// The runtime's ID, when the container had a real one.
    container_id: Option<String>,
}

struct PodWorker {
    shared: Arc<Shared>,
    key: Key,
    uid: String,
    dir: PathBuf,
    stop: watch::Receiver<bool>,
    changes: watch::Receiver<u64>,
    faults: watch::Receiver<u64>,
    deadline: Option<Instant>,
    /// When pulling an image first failed.
    pull_failed_at: Option<Instant>,
}

fn condition(
    status: &mut PodStatus,
    ty: &str,
    value: bool,
    reason: Option<&str>,
    message: Option<&str>,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let value = if value { "True" } else { "False" };
    let existing = conditions.iter_mut().find(|c| c.type_ == ty);
    let transition = match &existing {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => Some(now()),
    };
    let new = PodCondition {
        type_: ty.to_owned(),
        status: value.to_owned(),
        reason: reason.map(str::to_owned),
        message: message.map(str::to_owned),
        last_transition_time: transition,
        last_probe_time: None,
        observed_generation: None,
    };
    match existing {
        Some(c) => *c = new,
        None => conditions.push(new),
    }
}

fn container_status(
    c: &Container,
    state: ContainerState,
    ready: bool,
    started: bool,
) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready,
        restart_count: 0,
        started: Some(started),
        state: Some(state),
        ..ContainerStatus::default()
    }
}

fn waiting_state(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message,
        }),
        ..ContainerState::default()
    }
}

fn containers(pod: &Pod) -> Vec<Container> {
    pod.spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default()
}

fn container_id(pod_uid: &str, name: &str) -> String {
    format!("hype-test-double://{pod_uid}/{name}")
}

/// `$(VAR)` expansion as the kubelet does it in args and env values;
/// `$$` escapes, unknown references stay as they are.
fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

impl PodWorker {
    async fn run(mut self) {
        let _ = self.lifecycle().await;
        self.finish();
    }

    /// After the pod finished or was stopped: a pod marked for deletion is
    /// removed now that its containers are gone.
    fn finish(&mut self) {
        {
            let mut state = self.shared.store.lock();
            let marked = state.get::<Pod>(&self.key).is_some_and(|p| {
                p.metadata.uid.as_deref() == Some(&self.uid)
                    && p.metadata.deletion_timestamp.is_some()
            });
            if marked {
                state.remove::<Pod>(&self.key, Some(&self.uid), |_| {});
            }
        }
        release_claims(&self.shared);
        lock(&self.shared.kubelet.controls).remove(&self.uid);
    }

    fn current(&self) -> Option<Pod> {
        self.shared
            .store
            .get::<Pod>(&self.key.0, &self.key.1)
            .filter(|p| p.metadata.uid.as_deref() == Some(&self.uid))
    }

    fn update(&self, change: impl FnOnce(&mut Pod)) -> Option<Pod> {
        self.shared
            .store
            .lock()
            .modify::<Pod>(&self.key, Some(&self.uid), change)
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Waits for a stop, the deadline, a change of objects or faults, or `max`.
    async fn wait(&mut self, max: Duration) -> Wake {
        if self.stopped() {
            return Wake::Stop;
        }
        let deadline = self.deadline;
        tokio::select! {
            _ = self.stop.changed() => Wake::Stop,
            _ = self.changes.changed() => Wake::Changed,
            _ = self.faults.changed() => Wake::Changed,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Wake::Deadline,
            _ = tokio::time::sleep(max) => Wake::Changed,
        }
    }

    fn mark_seen(&mut self) {
        self.changes.borrow_and_update();
        self.faults.borrow_and_update();
    }

    async fn lifecycle(&mut self) -> Option<()> {
        // The scheduler, and the cluster autoscaler's view of the pod.
        let mut node_up_at: Option<Instant> = None;
        loop {
            self.mark_seen();
            if self.stopped() {
                return None;
            }
            let pod = self.current()?;
            let Some(message) = self.scheduling_problem(&pod) else {
                break;
            };
            match (self.shared.faults.autoscaler_mode(), node_up_at) {
                (Some(Autoscaler::ScaleUp { .. }), Some(at)) if Instant::now() >= at => break,
                (Some(Autoscaler::ScaleUp { after }), None) => {
                    node_up_at = Some(Instant::now() + after);
                    self.autoscaler_event(
                        &pod,
                        "TriggeredScaleUp",
                        "pod triggered scale-up: [{hype-test-pool 1->2 (max: 3)}]",
                    );
                }
                (Some(Autoscaler::NoScaleUp), None) => {
                    // Marks the event written (no node is coming).
                    node_up_at = Some(Instant::now() + Duration::from_secs(86_400 * 365));
                    self.autoscaler_event(
                        &pod,
                        "NotTriggerScaleUp",
                        "pod didn't trigger scale-up: 1 max node group size reached",
                    );
                }
                (Some(Autoscaler::NoScaleUpBecause(why)), None) => {
                    node_up_at = Some(Instant::now() + Duration::from_secs(86_400 * 365));
                    self.autoscaler_event(
                        &pod,
                        "NotTriggerScaleUp",
                        &format!("pod didn't trigger scale-up: {why}"),
                    );
                }
                _ => {}
            }
            let unchanged = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
                .is_some_and(|c| c.message.as_deref() == Some(&message));
            if !unchanged {
                self.update(|p| {
                    let status = p.status.get_or_insert_with(Default::default);
                    condition(
                        status,
                        "PodScheduled",
                        false,
                        Some("Unschedulable"),
                        Some(&message),
                    );
                })?;
            }
            if let Wake::Stop = self.wait(Duration::from_millis(500)).await {
                return None;
            }
        }
        let node = self.shared.kubelet.node_name.clone();
        self.update(|p| {
            p.spec.get_or_insert_with(Default::default).node_name = Some(node);
            let status = p.status.get_or_insert_with(Default::default);
            condition(status, "PodScheduled", true, None, None);
        })?;

        // The kubelet admits the pod.
        let pod = self.update(|p| {
            let names: Vec<String> = containers(p).iter().map(|c| c.name.clone()).collect();
            let statuses = containers(p)
                .iter()
                .map(|c| {
                    container_status(c, waiting_state("ContainerCreating", None), false, false)
                })
                .collect();
            let status = p.status.get_or_insert_with(Default::default);
            status.start_time = Some(now());
            status.host_ip = Some(POD_IP.into());
            status.host_ips = Some(vec![HostIP { ip: POD_IP.into() }]);
            status.pod_ip = Some(POD_IP.into());
            status.pod_ips = Some(vec![PodIP { ip: POD_IP.into() }]);
            condition(status, "PodReadyToStartContainers", true, None, None);
            condition(status, "Initialized", true, None, None);
            let unready = format!("containers with unready status: [{}]", names.join(" "));
            condition(
                status,
                "Ready",
                false,
                Some("ContainersNotReady"),
                Some(&unready),
            );
            condition(
                status,
                "ContainersReady",
                false,
                Some("ContainersNotReady"),
                Some(&unready),
            );
            status.container_statuses = Some(statuses);
        })?;
        self.deadline = pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)
            .map(|s| Instant::now() + Duration::from_secs(s.max(0) as u64));
        make_dir(&self.dir, 0o755, None).ok()?;

        // Volumes, images, configuration: retried until they work.
        let launches = loop {
            self.mark_seen();
            if self.stopped() {
                return None;
            }
            let pod = self.current()?;
            let found = self.docker_images(&pod).await;
            match self.prepare(&pod, &found) {
                Ok(launches) => break launches,
                Err(blocked) => {
                    self.show_blocked(&pod, &blocked)?;
                    match self.wait(Duration::from_millis(500)).await {
                        Wake::Stop => return None,
                        Wake::Deadline => return self.deadline_exceeded(),
                        Wake::Changed => {}
                    }
                }
            }
        };

        let delay = self.shared.faults.start_delay() + self.shared.kubelet.pod_delays;
        if !delay.is_zero() {
            let until = Instant::now() + delay;
            loop {
                if Instant::now() >= until {
                    break;
                }
                match self.wait(until - Instant::now()).await {
                    Wake::Stop => return None,
                    Wake::Deadline => return self.deadline_exceeded(),
                    Wake::Changed => {}
                }
            }
        }
        if self.stopped() {
            return None;
        }
        self.run_containers(launches).await
    }

    /// Writes an event of the cluster autoscaler about the pod, as it
    /// does: `involvedObject` the pod, source `cluster-autoscaler`, type
    /// Normal.
    fn autoscaler_event(&self, pod: &Pod, reason: &str, message: &str) {
        let time = now();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{}", self.key.1, store::random_u64())),
                namespace: Some(self.key.0.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: Some(self.key.1.clone()),
                namespace: Some(self.key.0.clone()),
                uid: pod.metadata.uid.clone(),
                ..ObjectReference::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            source: Some(EventSource {
                component: Some("cluster-autoscaler".to_owned()),
                host: None,
            }),
            reporting_component: Some("cluster-autoscaler".to_owned()),
            type_: Some("Normal".to_owned()),
            count: Some(1),
            first_timestamp: Some(time.clone()),
            last_timestamp: Some(time),
            ..Event::default()
        };
        self.shared
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    /// Why the scheduler cannot place the pod, if it cannot.
    fn scheduling_problem(&self, pod: &Pod) -> Option<String> {
        if let Some(message) = self.shared.faults.unschedulable_message() {
            return Some(message);
        }
        let state = self.shared.store.lock();
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Some(c) = &v.persistent_volume_claim {
                let key = (self.key.0.clone(), c.claim_name.clone());
                match state.get::<PersistentVolumeClaim>(&key) {
                    None => {
                        return Some(format!(
                            "persistentvolumeclaim {:?} not found",
                            c.claim_name
                        ));
                    }
                    Some(claim) if claim.metadata.deletion_timestamp.is_some() => {
                        return Some(format!(
                            "persistentvolumeclaim {:?} is being deleted",
                            c.claim_name
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        None
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.shared.store.get::<Secret>(&self.key.0, name)
    }

    /// With the Docker executor, looks up each container's image on the
    /// engine: [`KubeletOptions::docker_images`] maps it to a local image,
    /// else its own name (`:latest` added when it has no tag) is looked up.
    /// Empty with other executors.
    async fn docker_images(&self, pod: &Pod) -> DockerImages {
        let Executor::Docker(docker) = &self.shared.kubelet.executor else {
            return DockerImages::new();
        };
        let mut found = DockerImages::new();
        for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            let image = c.image.clone().unwrap_or_default();
            if found.contains_key(&image) || super::validate::image_name_problem(&image).is_some() {
                continue;
            }
            let mapped = &self.shared.kubelet.docker_images;
            let reference = mapped
                .get(&image)
                .or_else(|| mapped.get(&with_latest(&image)))
                .cloned()
                .unwrap_or_else(|| with_latest(&image));
            let result = match docker.image_id(&reference).await {
                Ok(Some(id)) => Ok((reference, id)),
                Ok(None) => Err(format!("failed to pull image {image:?}: not found")),
                Err(err) => Err(format!("failed to pull image {image:?}: {err}")),
            };
            found.insert(image, result);
        }
        found
    }

    /// Mounts volumes, pulls images and resolves configuration; on failure,
    /// says why each blocked container waits.
    fn prepare(&mut self, pod: &Pod, docker_images: &DockerImages) -> Result<Vec<Launch>, Blocked> {
        let spec = pod.spec.clone().unwrap_or_default();
        let kubelet = &self.shared.kubelet;
        let docker = matches!(kubelet.executor, Executor::Docker(_));
        let file_modes = kubelet.read_only == ReadOnlyMounts::FileModes;
        let all = |reason: &'static str, message: String| -> Blocked {
            (0..spec.containers.len())
                .map(|i| (i, reason, message.clone()))
                .collect()
        };

        // Which uid the containers run as (file-mode enforcement only).
        let mut user = None;
        if file_modes {
            let volume_ro: BTreeMap<&str, bool> = spec
                .volumes
                .iter()
                .flatten()
                .map(|v| {
                    let ro = v
                        .persistent_volume_claim
                        .as_ref()
                        .and_then(|c| c.read_only)
                        .unwrap_or(false);
                    (v.name.as_str(), ro)
                })
                .collect();
            let any_ro = spec.containers.iter().any(|c| {
                c.volume_mounts.iter().flatten().any(|m| {
                    let secret = spec
                        .volumes
                        .iter()
                        .flatten()
                        .any(|v| v.name == m.name && v.secret.is_some());
                    !secret
                        && (m.read_only.unwrap_or(false)
                            || volume_ro.get(m.name.as_str()).copied().unwrap_or(false))
                })
            });
            user = Some(if any_ro { RO_UID } else { RW_UID });
        }
        let owner = user;
        let io = |what: &str, err: std::io::Error| -> Blocked {
            all(
                "CreateContainerConfigError",
                format!("the test double could not prepare {what}: {err}"),
            )
        };

        // Volumes.
        let mut volumes: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
        for v in spec.volumes.iter().flatten() {
            let (dir, always_ro) = if let Some(s) = &v.secret {
                let name = s.secret_name.clone().unwrap_or_default();
                let dir = self.dir.join("secrets").join(&v.name);
                let optional = s.optional.unwrap_or(false);
                let secret = self.secret(&name);
                if secret.is_none() && !optional {
                    return Err(all(
                        "CreateContainerConfigError",
                        format!("secret {name:?} not found"),
                    ));
                }
                let _ = std::fs::remove_dir_all(&dir);
                make_dir(&dir, 0o755, None).map_err(|e| io("a secret volume", e))?;
                let data = secret
                    .map(|s| s.data.unwrap_or_default())
                    .unwrap_or_default();
                let mode = s.default_mode.unwrap_or(0o644) as u32 & 0o777;
                let mode = if file_modes { mode & 0o555 } else { mode };
                let items: Vec<(String, String, Option<i32>)> = match &s.items {
                    Some(items) => items
                        .iter()
                        .map(|i| (i.key.clone(), i.path.clone(), i.mode))
                        .collect(),
                    None => data.keys().map(|k| (k.clone(), k.clone(), None)).collect(),
                };
                for (key, path, item_mode) in items {
                    let Some(value) = data.get(&key) else {
                        if optional {
                            continue;
                        }
                        return Err(all(
                            "CreateContainerConfigError",
                            format!("couldn't find key {key} in Secret {}/{name}", self.key.0),
                        ));
                    };
                    let file = dir.join(&path);
                    if let Some(parent) = file.parent() {
                        make_dir(parent, 0o755, None).map_err(|e| io("a secret volume", e))?;
                    }
                    std::fs::write(&file, &value.0).map_err(|e| io("a secret file", e))?;
                    let mode = item_mode.map_or(mode, |m| m as u32 & 0o777);
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
                        .map_err(|e| io("a secret file", e))?;
                }
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555))
                    .map_err(|e| io("a secret volume", e))?;
                (dir, true)
            } else if let Some(c) = &v.persistent_volume_claim {
                let claim: PersistentVolumeClaim = self
                    .shared
                    .store
                    .get(&self.key.0, &c.claim_name)
                    .ok_or_else(|| {
                        all(
                            "CreateContainerConfigError",
                            format!("persistentvolumeclaim {:?} not found", c.claim_name),
                        )
                    })?;
                let dir = kubelet.claim_dir(claim.metadata.uid.as_deref().unwrap_or_default());
                if !dir.exists() {
                    make_dir(&dir, 0o755, file_modes.then_some(RW_UID))
                        .map_err(|e| io("a claim's volume", e))?;
                }
                // The kubelet's volume ownership: the fsGroup's, group
                // writable, set-group-ID (what a container running as a
                // non-root user writes through).
                if docker
                    && let Some(group) = spec.security_context.as_ref().and_then(|s| s.fs_group)
                    && let Ok(group) = u32::try_from(group)
                {
                    std::os::unix::fs::chown(&dir, None, Some(group))
                        .and_then(|()| {
                            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2775))
                        })
                        .map_err(|e| io("a claim's volume", e))?;
                }
                (dir, c.read_only.unwrap_or(false))
            } else if v.empty_dir.is_some() {
                let dir = self.dir.join("volumes").join(&v.name);
                make_dir(&dir, 0o777, owner).map_err(|e| io("an emptyDir volume", e))?;
                (dir, false)
            } else if let Some(h) = &v.host_path {
                (PathBuf::from(&h.path), false)
            } else {
                let ty = serde_json::to_value(v)
                    .ok()
                    .and_then(|j| {
                        j.as_object()
                            .and_then(|m| m.keys().find(|k| *k != "name").cloned())
                    })
                    .unwrap_or_default();
                return Err(all(
                    "CreateContainerConfigError",
                    format!(
                        "volume {:?}: {ty} volumes are not supported by the Kubernetes test double",
                        v.name
                    ),
                ));
            };
            volumes.insert(v.name.clone(), (dir, always_ro));
        }

        // Images.
        let mut blocked = Blocked::new();
        let mut programs = Vec::new();
        let mut locals = Vec::new();
        let in_process = matches!(kubelet.executor, Executor::InProcess(_));
        for (i, c) in spec.containers.iter().enumerate() {
            let image = c.image.clone().unwrap_or_default();
            if let Some(problem) = super::validate::image_name_problem(&image) {
                blocked.push((
                    i,
                    "InvalidImageName",
                    format!("Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: {problem}"),
                ));
                programs.push(None);
                locals.push(None);
                continue;
            }
            let tagged = with_latest(&image);
            let program = kubelet
                .images
                .get(&image)
                .or_else(|| kubelet.images.get(&tagged))
                .cloned();
            let local = docker_images.get(&image).cloned();
            let pull_error = match &local {
                Some(Err(err)) => Some(err.clone()),
                None if docker => Some(format!("failed to pull image {image:?}: not found")),
                _ if docker => None,
                _ if program.is_none() && !(in_process && kubelet.images.is_empty()) => {
                    Some(format!("failed to pull image {image:?}: not found"))
                }
                _ => None,
            };
            locals.push(local.and_then(Result::ok));
            if let Some(pulled) = pull_error {
                let first = *self.pull_failed_at.get_or_insert_with(Instant::now);
                if first.elapsed() < PULL_BACK_OFF {
                    blocked.push((i, "ErrImagePull", pulled));
                } else {
                    blocked.push((
                        i,
                        "ImagePullBackOff",
                        format!("Back-off pulling image {image:?}: ErrImagePull: {pulled}"),
                    ));
                }
            }
            programs.push(program);
        }
        if !blocked.is_empty() {
            return Err(blocked);
        }

        // Configuration: environment and mounts.
        let mut launches = Vec::new();
        for (i, c) in spec.containers.iter().enumerate() {
            let mut env: BTreeMap<String, String> = kubelet.env.clone();
            // In a Docker container, the image and the engine set these.
            if !docker {
                env.insert("PATH".into(), DEFAULT_PATH.into());
                env.insert("HOSTNAME".into(), self.key.1.clone());
                env.insert(
                    "HOME".into(),
                    if user.is_some() {
                        "/nonexistent"
                    } else {
                        "/root"
                    }
                    .into(),
                );
            }
            for from in c.env_from.iter().flatten() {
                if let Some(r) = &from.secret_ref {
                    match self.secret(&r.name) {
                        Some(s) => {
                            for (k, v) in s.data.unwrap_or_default() {
                                let key = format!("{}{k}", from.prefix.clone().unwrap_or_default());
                                env.insert(key, String::from_utf8_lossy(&v.0).into_owned());
                            }
                        }
                        None if r.optional.unwrap_or(false) => {}
                        None => {
                            blocked.push((
                                i,
                                "CreateContainerConfigError",
                                format!("secret {:?} not found", r.name),
                            ));
                        }
                    }
                }
                if let Some(r) = &from.config_map_ref
                    && !r.optional.unwrap_or(false)
                {
                    blocked.push((
                        i,
                        "CreateContainerConfigError",
                        format!("configmap {:?} not found", r.name),
                    ));
                }
            }
            for var in c.env.iter().flatten() {
                let value = if let Some(from) = &var.value_from {
                    if let Some(r) = &from.secret_key_ref {
                        match self.secret(&r.name) {
                            None if r.optional.unwrap_or(false) => continue,
                            None => {
                                blocked.push((
                                    i,
                                    "CreateContainerConfigError",
                                    format!("secret {:?} not found", r.name),
                                ));
                                continue;
                            }
                            Some(s) => match s.data.unwrap_or_default().get(&r.key) {
                                Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                                None if r.optional.unwrap_or(false) => continue,
                                None => {
                                    blocked.push((
                                        i,
                                        "CreateContainerConfigError",
                                        format!(
                                            "couldn't find key {} in Secret {}/{}",
                                            r.key, self.key.0, r.name
                                        ),
                                    ));
                                    continue;
                                }
                            },
                        }
                    } else if let Some(f) = &from.field_ref {
                        match f.field_path.as_str() {
                            "metadata.name" => self.key.1.clone(),
                            "metadata.namespace" => self.key.0.clone(),
                            "metadata.uid" => self.uid.clone(),
                            "spec.nodeName" => kubelet.node_name.clone(),
                            "spec.serviceAccountName" => {
                                spec.service_account_name.clone().unwrap_or_default()
                            }
                            "status.podIP" | "status.hostIP" => POD_IP.into(),
                            path => {
                                let label = path
                                    .strip_prefix("metadata.labels['")
                                    .and_then(|p| p.strip_suffix("']"));
                                label
                                    .and_then(|l| pod.metadata.labels.as_ref()?.get(l).cloned())
                                    .unwrap_or_default()
                            }
                        }
                    } else if let Some(r) = &from.config_map_key_ref {
                        if r.optional.unwrap_or(false) {
                            continue;
                        }
                        blocked.push((
                            i,
                            "CreateContainerConfigError",
                            format!("configmap {:?} not found", r.name),
                        ));
                        continue;
                    } else {
                        blocked.push((
                            i,
                            "CreateContainerConfigError",
                            format!("env {}: this valueFrom is not supported by the Kubernetes test double", var.name),
                        ));
                        continue;
                    }
                } else {
                    expand(var.value.as_deref().unwrap_or_default(), &env)
                };
                env.insert(var.name.clone(), value);
            }

            let mut mounts = Vec::new();
            let mut binds = Vec::new();
            for (m_index, m) in c.volume_mounts.iter().flatten().enumerate() {
                let Some((base, always_ro)) = volumes.get(&m.name) else {
                    continue;
                };
                let read_only = *always_ro || m.read_only.unwrap_or(false);
                let mut source = base.clone();
                if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                    source = source.join(sub);
                    if !source.exists() {
                        make_dir(&source, 0o755, owner).map_err(|e| io("a subPath", e))?;
                    }
                }
                let local = if read_only
                    && kubelet.read_only == ReadOnlyMounts::MountNamespace
                    && !docker
                {
                    let point = self
                        .dir
                        .join("mounts")
                        .join(format!("{}-{m_index}", c.name));
                    make_dir(&point, 0o755, None).map_err(|e| io("a mount point", e))?;
                    binds.push((source, point.clone()));
                    point
                } else {
                    source
                };
                mounts.push(Mount {
                    container_path: m.mount_path.clone(),
                    local,
                    read_only,
                });
            }
            if !docker {
                let mut hype_mounts = String::new();
                for m in &mounts {
                    hype_mounts.push_str(&format!(
                        "{}\t{}\t{}\n",
                        m.container_path,
                        m.local.display(),
                        if m.read_only { "ro" } else { "rw" }
                    ));
                }
                env.insert("HYPE_MOUNTS".into(), hype_mounts);
                env.insert(
                    "HYPE_TERMINATION_MESSAGE_PATH".into(),
                    termination_path(&self.dir, &c.name).display().to_string(),
                );
            }

            let mut argv: Vec<String> =
                c.command.clone().unwrap_or_else(|| vec!["hype-run".into()]);
            argv.extend(c.args.iter().flatten().cloned());
            let argv: Vec<String> = argv.iter().map(|a| expand(a, &env)).collect();
            let docker_launch = locals[i].as_ref().map(|(image, image_id)| {
                let mut launch = self.docker_launch(c, image, image_id, &env, &mounts);
                launch.security = super::docker_security::of(&spec, c);
                launch
            });
            let start_error = match argv.first() {
                // The engine says whether the image has the command.
                _ if docker => None,
                Some(first)
                    if Path::new(first)
                        .file_name()
                        .is_some_and(|n| n == "hype-run") =>
                {
                    None
                }
                first => Some(format!(
                    "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: {:?}: executable file not found in $PATH (the test double's images only contain hype-run)",
                    first.cloned().unwrap_or_default()
                )),
            };
            launches.push(Launch {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                program: programs[i].clone(),
                argv,
                env,
                binds,
                user,
                fallback_to_logs: c.termination_message_policy.as_deref()
                    == Some("FallbackToLogsOnError"),
                start_error,
                stdin: c.stdin.unwrap_or(false),
                stdin_once: c.stdin_once.unwrap_or(false),
                docker: docker_launch,
            });
        }
        if !blocked.is_empty() {
            return Err(blocked);
        }
        Ok(launches)
    }

    /// The Docker container of `c`: `command` replaces the image's
    /// entrypoint and `args` its command (both `$(VAR)`-expanded), every
    /// mount is a bind mount at its path, plus the staging directory at its
    /// own path and the termination message file at the container's
    /// `terminationMessagePath`; cpu and memory from the resources.
    fn docker_launch(
        &self,
        c: &Container,
        image: &str,
        image_id: &str,
        env: &BTreeMap<String, String>,
        mounts: &[Mount],
    ) -> DockerLaunch {
        let kubelet = &self.shared.kubelet;
        let expanded = |args: &Option<Vec<String>>| -> Option<Vec<String>> {
            args.as_ref()
                .map(|args| args.iter().map(|a| expand(a, env)).collect())
        };
        let mut binds = vec![BindMount {
            source: kubelet.staging_dir.clone(),
            target: kubelet.staging_dir.display().to_string(),
            read_only: false,
        }];
        binds.extend(mounts.iter().map(|m| BindMount {
            source: m.local.clone(),
            target: m.container_path.clone(),
            read_only: m.read_only,
        }));
        binds.push(BindMount {
            source: termination_path(&self.dir, &c.name),
            target: c
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
            read_only: false,
        });
        let resources = c.resources.clone().unwrap_or_default();
        let amount = |map: &Option<
            BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        >,
                      name: &str| {
            map.as_ref()
                .and_then(|m| m.get(name))
                .and_then(|q| super::validate::quantity(&q.0))
        };
        DockerLaunch {
            name: format!(
                "k8s_{}_{}_{}_{}_0",
                c.name, self.key.1, self.key.0, self.uid
            ),
            image: image.to_owned(),
            image_id: image_id.to_owned(),
            entrypoint: expanded(&c.command),
            // A `command` without `args` drops the image's CMD too.
            cmd: expanded(&c.args).or_else(|| c.command.as_ref().map(|_| Vec::new())),
            working_dir: c.working_dir.clone().filter(|d| !d.is_empty()),
            hostname: super::docker::hostname(&self.key.1),
            mounts: binds,
            memory: amount(&resources.limits, "memory").map(|b| b.ceil()),
            nano_cpus: amount(&resources.limits, "cpu").map(|c| c.times_rounded(1_000_000_000)),
            cpu_shares: amount(&resources.requests, "cpu").map(|c| c.times_rounded(1024).max(2)),
            stdin: c.stdin.unwrap_or(false),
            stdin_once: c.stdin_once.unwrap_or(false),
            labels: DockerLaunch::labels(
                &kubelet.server_label,
                &self.key.0,
                &self.key.1,
                &self.uid,
                &c.name,
            ),
            security: Default::default(),
        }
    }

    /// Shows why containers wait, when that changed.
    fn show_blocked(&self, pod: &Pod, blocked: &Blocked) -> Option<()> {
        let current: Vec<Option<(String, String)>> = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|cs| {
                let w = cs.state?.waiting?;
                Some((w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
            })
            .collect();
        let changed = blocked.iter().any(|(i, reason, message)| {
            current.get(*i).cloned().flatten() != Some(((*reason).to_owned(), message.clone()))
        });
        if !changed {
            return Some(());
        }
        self.update(|p| {
            let list = containers(p);
            let status = p.status.get_or_insert_with(Default::default);
            let statuses = status.container_statuses.get_or_insert_with(Vec::new);
            for (i, reason, message) in blocked {
                if let (Some(c), Some(s)) = (list.get(*i), statuses.get_mut(*i)) {
                    *s = container_status(
                        c,
                        waiting_state(reason, Some(message.clone())),
                        false,
                        false,
                    );
                }
            }
        })
        .map(|_| ())
    }

    /// Starts the containers, watches them, and records how the pod ends.
    async fn run_containers(&mut self, launches: Vec<Launch>) -> Option<()> {
        let pod_dir = self.dir.clone();
        for dir in ["logs", "termination", "work"] {
            let owner = if dir == "logs" {
                None
            } else {
                launches.first().and_then(|l| l.user)
            };
            make_dir(&pod_dir.join(dir), 0o755, owner).ok()?;
        }
        let mut started = Vec::new();
        let mut ended: BTreeMap<usize, Ended> = BTreeMap::new();
        // In-process calls cannot be killed: killing stops waiting for them.
        let (kill_tx, kill_rx) = watch::channel(false);
        let mut exits: FuturesUnordered<BoxFuture<'static, (usize, Exit)>> =
            FuturesUnordered::new();
        for (index, launch) in launches.iter().enumerate() {
            let termination = termination_path(&pod_dir, &launch.name);
            if std::fs::write(&termination, b"").is_ok() {
                if let Some(uid) = launch.user {
                    let _ = std::os::unix::fs::chown(&termination, Some(uid), Some(uid));
                } else if let Some((uid, gid)) = launch.docker.as_ref().and_then(|d| d.security.ids)
                {
                    // The container's user writes it.
                    let _ = std::os::unix::fs::chown(&termination, Some(uid), gid);
                }
            }
            let started_at = now();
            if let Some(error) = &launch.start_error {
                ended.insert(
                    index,
                    Ended {
                        exit_code: 128,
                        reason: "StartError".into(),
                        message: Some(error.clone()),
                        started_at: None,
                        finished_at: now(),
                        container_id: None,
                    },
                );
                continue;
            }
            match self.start(launch, &pod_dir, kill_rx.clone()).await {
                Ok(running) => {
                    started.push(Started {
                        index,
                        group: running.group,
                        started_at,
                        container_id: running.container_id,
                    });
                    let exit = running.exit;
                    exits.push(Box::pin(async move { (index, exit.await) }));
                }
                Err(err) => {
                    ended.insert(
                        index,
                        Ended {
                            exit_code: 128,
                            reason: "StartError".into(),
                            message: Some(err),
                            started_at: None,
                            finished_at: now(),
                            container_id: None,
                        },
                    );
                }
            }
        }
        let start_times: BTreeMap<usize, Time> = started
            .iter()
            .map(|s| (s.index, s.started_at.clone()))
            .collect();
        let runtime_ids: BTreeMap<usize, String> = started
            .iter()
            .filter_map(|s| Some((s.index, s.container_id.clone()?)))
            .collect();

        // Running.
        let oom = !started.is_empty() && self.shared.faults.take_oom_kill();
        // The pod went away (deleted at once) while containers run: they
        // are killed and waited for before the worker ends, never left.
        let mut gone = false;
        if !started.is_empty() {
            let uid = self.uid.clone();
            let launches_ref = &launches;
            let ended_ref = &ended;
            gone |= self
                .update(|p| {
                    let list = containers(p);
                    let status = p.status.get_or_insert_with(Default::default);
                    status.phase = Some("Running".into());
                    let statuses = status.container_statuses.get_or_insert_with(Vec::new);
                    for (i, c) in list.iter().enumerate() {
                        let Some(s) = statuses.get_mut(i) else {
                            continue;
                        };
                        *s = match (start_times.get(&i), ended_ref.get(&i)) {
                            (_, Some(e)) => terminated_status(c, &uid, e),
                            (Some(at), None) => {
                                let mut s = container_status(
                                    c,
                                    ContainerState {
                                        running: Some(ContainerStateRunning {
                                            started_at: Some(at.clone()),
                                        }),
                                        ..ContainerState::default()
                                    },
                                    true,
                                    true,
                                );
                                s.container_id = Some(
                                    runtime_ids
                                        .get(&i)
                                        .cloned()
                                        .unwrap_or_else(|| container_id(&uid, &c.name)),
                                );
                                s.image_id = image_id(launches_ref.get(i));
                                s
                            }
                            (None, None) => s.clone(),
                        };
                    }
                    if ended_ref.is_empty() {
                        condition(status, "ContainersReady", true, None, None);
                        condition(status, "Ready", true, None, None);
                    }
                })
                .is_none();
        }

        let groups: Vec<i32> = started.iter().filter_map(|s| s.group).collect();
        let kill_all = || {
            for g in &groups {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(-g, libc::SIGKILL) };
            }
            kill_tx.send_replace(true);
        };
        let mut pod_reason: Option<(&str, &str)> = None;
        let mut override_reason: Option<&str> = None;
        let mut killed = false;
        if oom {
            kill_all();
            killed = true;
            override_reason = Some("OOMKilled");
        }
        loop {
            if gone && !killed {
                kill_all();
                killed = true;
            }
            if exits.is_empty() {
                break;
            }
            if self.stopped() && !killed {
                kill_all();
                killed = true;
            }
            if !killed && self.shared.faults.take_eviction() {
                kill_all();
                killed = true;
                pod_reason = Some(("Evicted", "The node was low on resource: memory."));
                continue;
            }
            if !killed && self.shared.faults.take_preemption() {
                kill_all();
                killed = true;
                pod_reason = Some((
                    "Terminated",
                    "Pod was terminated in response to imminent node shutdown.",
                ));
                continue;
            }
            self.faults.borrow_and_update();
            let deadline = self.deadline.filter(|_| !killed);
            let next = tokio::select! {
                next = exits.next() => match next {
                    Some((index, code)) => Next::Exit(index, code),
                    None => break,
                },
                _ = self.stop.changed(), if !killed => Next::Woken,
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Next::Deadline,
                _ = self.faults.changed() => Next::Woken,
            };
            match next {
                Next::Woken => {}
                Next::Deadline => {
                    kill_all();
                    killed = true;
                    pod_reason = Some((
                        "DeadlineExceeded",
                        "Pod was active on the node longer than the specified deadline",
                    ));
                }
                Next::Exit(index, exit) => {
                    // The container is gone: so is everything it started.
                    if let Some(g) = started
                        .iter()
                        .find(|s| s.index == index)
                        .and_then(|s| s.group)
                    {
                        // SAFETY: kill(2) has no memory-safety preconditions.
                        unsafe { libc::kill(-g, libc::SIGKILL) };
                    }
                    // A real OOM kill (Docker), or the simulated one.
                    let reason = if exit.oom_killed {
                        Some("OOMKilled")
                    } else {
                        override_reason
                    };
                    let end = container_ended(
                        &launches[index],
                        &pod_dir,
                        exit.code,
                        reason,
                        started.iter().find(|s| s.index == index),
                    );
                    if !exits.is_empty() {
                        let uid = self.uid.clone();
                        gone |= self
                            .update(|p| {
                                let list = containers(p);
                                let status = p.status.get_or_insert_with(Default::default);
                                let slot = status
                                    .container_statuses
                                    .as_mut()
                                    .and_then(|s| s.get_mut(index));
                                if let (Some(c), Some(s)) = (list.get(index), slot) {
                                    *s = terminated_status(c, &uid, &end);
                                }
                                let unready = format!(
                                    "containers with unready status: [{}]",
                                    list[index].name
                                );
                                for ty in ["Ready", "ContainersReady"] {
                                    condition(
                                        status,
                                        ty,
                                        false,
                                        Some("ContainersNotReady"),
                                        Some(&unready),
                                    );
                                }
                            })
                            .is_none();
                    }
                    ended.insert(index, end);
                }
            }
        }
        self.finish_pod(ended, pod_reason)
    }

    /// Starts one container: a process, a call of the in-process executor
    /// or a Docker container. An error is the `StartError` message.
    async fn start(
        &self,
        launch: &Launch,
        pod_dir: &Path,
        killed: watch::Receiver<bool>,
    ) -> Result<Running, String> {
        if let Executor::Docker(docker) = &self.shared.kubelet.executor {
            let docker_launch = launch
                .docker
                .as_ref()
                .ok_or_else(|| "no Docker image for this container".to_owned())?;
            let processes = self.shared.kubelet.processes.clone();
            // A container with stdin can be attached to: through the
            // engine's attach, registered as the process executor's pipes.
            let attached = launch.stdin.then(|| {
                let io = Arc::new(ContainerIo::new(true, launch.stdin_once, None));
                let key = (self.uid.clone(), launch.name.clone());
                lock(&self.shared.kubelet.streams).insert(key.clone(), io.clone());
                (io, key)
            });
            let started = docker
                .start(
                    docker_launch,
                    &launch.env,
                    log_path(pod_dir, &launch.name),
                    killed,
                    move || lock(&processes).closing,
                    attached.as_ref().map(|(io, _)| io.clone()),
                )
                .await;
            let registry = self.shared.kubelet.streams.clone();
            let unregister = move || {
                if let Some((io, key)) = &attached {
                    streams::unregister(&registry, key, io);
                }
            };
            let (id, exit) = match started {
                Ok(started) => started,
                Err(err) => {
                    unregister();
                    return Err(err);
                }
            };
            return Ok(Running {
                group: None,
                container_id: Some(format!("docker://{id}")),
                exit: Box::pin(async move {
                    let exit = exit.await;
                    unregister();
                    exit
                }),
            });
        }
        self.start_here(launch, pod_dir, killed)
            .await
            .map(|(group, exit)| Running {
                group,
                container_id: None,
                exit: Box::pin(async move {
                    Exit {
                        code: exit.await,
                        oom_killed: false,
                    }
                }),
            })
            .map_err(|err| format!("failed to start {:?}: {err}", launch.program))
    }

    /// Starts one container on this machine: a process, or a call of the
    /// in-process executor.
    async fn start_here(
        &self,
        launch: &Launch,
        pod_dir: &Path,
        mut killed: watch::Receiver<bool>,
    ) -> std::io::Result<(Option<i32>, BoxFuture<'static, i32>)> {
        let termination = termination_path(pod_dir, &launch.name);
        match &self.shared.kubelet.executor {
            Executor::Docker(_) => Err(std::io::Error::other("a Docker container")),
            Executor::InProcess(run) => {
                let run = run.clone();
                let mut argv = launch.argv.clone();
                let command = vec![argv.remove(0)];
                let pod = InProcessPod {
                    namespace: self.key.0.clone(),
                    name: self.key.1.clone(),
                    container: launch.name.clone(),
                    image: launch.image.clone(),
                    command,
                    args: argv,
                    env: launch.env.clone(),
                };
                let (tx, rx) = oneshot::channel();
                std::thread::Builder::new()
                    .name(format!("kube-double-{}", self.key.1))
                    .spawn(move || {
                        let result =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(pod)))
                                .unwrap_or(InProcessResult {
                                    exit_code: 101,
                                    termination_message: None,
                                });
                        let _ = tx.send(result);
                    })?;
                Ok((
                    None,
                    Box::pin(async move {
                        let result = tokio::select! {
                            result = rx => result,
                            _ = killed.wait_for(|k| *k) => return 137,
                        };
                        match result {
                            Ok(result) => {
                                let _ = std::fs::write(
                                    &termination,
                                    result.termination_message.unwrap_or_default(),
                                );
                                result.exit_code
                            }
                            Err(_) => 137,
                        }
                    }),
                ))
            }
            Executor::Process => {
                let program = launch
                    .program
                    .clone()
                    .ok_or_else(|| std::io::Error::other("no executable for this image"))?;
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log_path(pod_dir, &launch.name))?;
                let mut command = std::process::Command::new(&program);
                command
                    .args(&launch.argv)
                    .env_clear()
                    .envs(&launch.env)
                    .current_dir(pod_dir.join("work"))
                    .process_group(0);
                // A container with stdin has pipes: its output goes to the
                // log and to attached clients. Others write the log
                // directly.
                if launch.stdin {
                    command
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped());
                } else {
                    command
                        .stdin(Stdio::null())
                        .stdout(log.try_clone()?)
                        .stderr(log.try_clone()?);
                }
                if let Some(uid) = launch.user {
                    command.uid(uid).gid(uid);
                }
                let binds = launch
                    .binds
                    .iter()
                    .map(|(source, target)| Bind::new(source, target))
                    .collect::<std::io::Result<Vec<_>>>()?;
                // SAFETY: child_setup only makes async-signal-safe system calls.
                unsafe { command.pre_exec(move || child_setup(&binds)) };
                let io = Arc::new(ContainerIo::new(
                    launch.stdin,
                    launch.stdin_once,
                    Some(ExecContext {
                        program: program.clone(),
                        env: launch.env.clone(),
                        cwd: pod_dir.join("work"),
                        user: launch.user,
                    }),
                ));
                let io_key = (self.uid.clone(), launch.name.clone());
                let registry = self.shared.kubelet.streams.clone();
                lock(&registry).insert(io_key.clone(), io.clone());
                let processes = self.shared.kubelet.processes.clone();
                let (started_tx, started_rx) = oneshot::channel();
                let (exit_tx, exit_rx) = oneshot::channel();
                let thread_io = io.clone();
                let thread_registry = registry.clone();
                let thread_key = io_key.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("kube-double-{}", self.key.1))
                    .spawn(move || match command.spawn() {
                        Err(err) => {
                            let _ = started_tx.send(Err(err));
                        }
                        Ok(mut child) => {
                            let pid = child.id() as i32;
                            {
                                let mut processes = lock(&processes);
                                processes.groups.insert(pid);
                                if processes.closing {
                                    let _ = child.kill();
                                }
                            }
                            let mut copiers = Vec::new();
                            for (channel, pipe) in [
                                (
                                    1u8,
                                    child
                                        .stdout
                                        .take()
                                        .map(|p| Box::new(p) as Box<dyn Read + Send>),
                                ),
                                (
                                    2u8,
                                    child
                                        .stderr
                                        .take()
                                        .map(|p| Box::new(p) as Box<dyn Read + Send>),
                                ),
                            ] {
                                if let (Some(pipe), Ok(log)) = (pipe, log.try_clone()) {
                                    match streams::copy_output(
                                        thread_io.clone(),
                                        channel,
                                        pipe,
                                        log,
                                    ) {
                                        Ok(done) => copiers.push(done),
                                        Err(_) => {
                                            let _ = child.kill();
                                        }
                                    }
                                }
                            }
                            let _ = started_tx.send(Ok((pid, child.stdin.take())));
                            let code = match child.wait() {
                                Ok(status) => status
                                    .code()
                                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                                Err(_) => 255,
                            };
                            // The container is gone: so is everything it
                            // started (the group outlives its leader).
                            // SAFETY: kill(2) has no memory-safety preconditions.
                            unsafe { libc::kill(-pid, libc::SIGKILL) };
                            // Its output is in the log before it counts as ended.
                            streams::join_copiers(copiers);
                            thread_io.ended(code);
                            streams::unregister(&thread_registry, &thread_key, &thread_io);
                            let _ = exit_tx.send(code);
                            forget_when_empty(&processes, pid);
                        }
                    });
                if let Err(err) = spawned {
                    streams::unregister(&registry, &io_key, &io);
                    return Err(err);
                }
                let started = started_rx
                    .await
                    .map_err(|_| std::io::Error::other("the spawning thread died"));
                let (pid, stdin) = match started.and_then(|r| r) {
                    Ok(started) => started,
                    Err(err) => {
                        streams::unregister(&registry, &io_key, &io);
                        return Err(err);
                    }
                };
                io.started(pid, stdin);
                Ok((
                    Some(pid),
                    Box::pin(async move { exit_rx.await.unwrap_or(137) }),
                ))
            }
        }
    }

    /// Fails the pod as DeadlineExceeded before any container started.
    fn deadline_exceeded(&mut self) -> Option<()> {
        self.finish_pod(
            BTreeMap::new(),
            Some((
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
            )),
        )
    }

    /// Writes the terminal status: every container terminated, phase
    /// Succeeded or Failed, the pod's reason if the node ended it.
    fn finish_pod(
        &mut self,
        ended: BTreeMap<usize, Ended>,
        pod_reason: Option<(&str, &str)>,
    ) -> Option<()> {
        let uid = self.uid.clone();
        self.update(|p| {
            let list = containers(p);
            let status = p.status.get_or_insert_with(Default::default);
            let mut statuses = Vec::new();
            let mut all_zero = true;
            for (i, c) in list.iter().enumerate() {
                let e = ended.get(&i).cloned().unwrap_or_else(|| Ended {
                    exit_code: 137,
                    reason: "ContainerStatusUnknown".into(),
                    message: Some(
                        "The container could not be located when the pod was terminated".into(),
                    ),
                    started_at: None,
                    finished_at: now(),
                    container_id: None,
                });
                all_zero &= e.exit_code == 0;
                statuses.push(terminated_status(c, &uid, &e));
            }
            status.container_statuses = Some(statuses);
            let failed = !all_zero || pod_reason.is_some();
            status.phase = Some(if failed { "Failed" } else { "Succeeded" }.into());
            if let Some((reason, message)) = pod_reason {
                status.reason = Some(reason.into());
                status.message = Some(message.into());
                let disruption = match reason {
                    "Evicted" | "Terminated" => Some("TerminationByKubelet"),
                    "DeadlineExceeded" => Some("DeadlineExceeded"),
                    _ => None,
                };
                if let Some(disruption) = disruption {
                    condition(
                        status,
                        "DisruptionTarget",
                        true,
                        Some(disruption),
                        Some(message),
                    );
                }
            }
            condition(status, "PodReadyToStartContainers", false, None, None);
            condition(status, "ContainersReady", false, Some("PodCompleted"), None);
            condition(status, "Ready", false, Some("PodCompleted"), None);
        })?;
        release_claims(&self.shared);
        Some(())
    }
}

fn image_id(launch: Option<&Launch>) -> String {
    if let Some(docker) = launch.and_then(|l| l.docker.as_ref()) {
        return format!("docker://{}", docker.image_id);
    }
    launch
        .and_then(|l| l.program.as_ref())
        .map(|p| format!("hype-test-double://{}", p.display()))
        .unwrap_or_default()
}

fn terminated_status(c: &Container, pod_uid: &str, e: &Ended) -> ContainerStatus {
    let id = e.started_at.as_ref().map(|_| {
        e.container_id
            .clone()
            .unwrap_or_else(|| container_id(pod_uid, &c.name))
    });
    let mut s = container_status(
        c,
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: e.exit_code,
                reason: Some(e.reason.clone()),
                message: e.message.clone(),
                started_at: e.started_at.clone(),
                finished_at: Some(e.finished_at.clone()),
                container_id: id.clone(),
                signal: None,
            }),
            ..ContainerState::default()
        },
        false,
        false,
    );
    if id.is_some() {
        s.container_id = id;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_and_expansion() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(tail_lines("a\nb\n", 5), "a\nb\n");
        assert_eq!(tail_lines("a\n", 0), "");
        let env: BTreeMap<String, String> = [("A".to_owned(), "1".to_owned())].into();
        assert_eq!(expand("x$(A)y$(B)$$(A)$", &env), "x1y$(B)$(A)$");
    }
}
