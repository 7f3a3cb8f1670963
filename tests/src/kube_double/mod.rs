//! A Kubernetes API server and kubelet for tests: **a test double, not a
//! Kubernetes**.
//!
//! No real apiserver, kind, k3s or kwok can run on the development and CI
//! machines, so the Kubernetes runner is tested against this double. It
//! speaks real HTTP (plain, on 127.0.0.1) so an unmodified `kube::Client`
//! talks to it, and it executes every pod for real:
//!
//! - **API** ([`KubeTestServer`]): the core/v1 subset a pod runner uses —
//!   pods (create, get, list, watch, delete, delete collection, logs),
//!   persistent volume claims and secrets (create, get, list, watch, delete)
//!   — with the apiserver's JSON: objects carry `uid`, `creationTimestamp`,
//!   a `resourceVersion` from one global counter (rising numbers, or with
//!   [`KubeletOptions::opaque_resource_versions`] strings that are neither
//!   numbers nor in order) and their namespace;
//!   failures are `Status` objects (400 BadRequest, 404 NotFound, 409
//!   AlreadyExists/Conflict, 422 Invalid with the apiserver's messages such
//!   as `Pod "x" is invalid: spec.containers[0].image: Required value`).
//!   Bodies are decoded into `k8s_openapi` types; `generateName`, label
//!   selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and field
//!   selectors (`metadata.name`, `status.phase`, …) work; watches replay
//!   from a resourceVersion, send bookmarks, answer a too-old
//!   resourceVersion with an ERROR event holding a 410 Expired Status, and
//!   turn an object entering or leaving a selector into ADDED or DELETED.
//! - **Kubelet**: each pod is scheduled (or held Pending, PodScheduled False,
//!   Unschedulable), its volumes are prepared, its image is looked up in
//!   [`KubeletOptions::images`] (unknown: `ErrImagePull`, then
//!   `ImagePullBackOff`; malformed: `InvalidImageName`), its configuration
//!   resolved (a missing secret: `CreateContainerConfigError`), and each
//!   container runs the image's executable as `<exe> hype-run <args…>` with
//!   the container's environment. Statuses follow the kubelet: Pending →
//!   Running → Succeeded (exit 0, `Completed`) or Failed (`Error` and the
//!   exit code), the termination message from the file named by
//!   `HYPE_TERMINATION_MESSAGE_PATH` (last 4096 bytes; with
//!   `FallbackToLogsOnError`, the last 80 lines / 2048 bytes of the log when
//!   the file is empty and the container failed), `activeDeadlineSeconds`
//!   (`DeadlineExceeded`), conditions and timestamps. Each change is one
//!   MODIFIED event.
//! - **Mounts**: `HYPE_MOUNTS` maps each container mount path to a local
//!   directory (`<mountPath>\t<dir>\t<ro|rw>` per line, what
//!   `hype::mount_path` reads). Secret volumes are per-pod copies of the
//!   Secret's data; claims are directories shared by every pod that mounts
//!   them and kept while the claim exists; `emptyDir` is per pod. Read-only
//!   mounts really refuse writes (see [`ReadOnlyMounts`]).
//! - **Streams**: `pods/attach` and `pods/exec` as a real API server
//!   serves them to WebSocket clients (kube's `ws` feature): an upgraded
//!   `GET`, subprotocol `v5.channel.k8s.io` or `v4.channel.k8s.io` (the
//!   first the client offers), one channel byte per binary message (0
//!   stdin, 1 stdout, 2 stderr, 3 the final `Status` with the exit code,
//!   255 close). Attach (process and Docker executors; with Docker, the
//!   engine's attach of the container underneath) reaches the main
//!   process of a container with `stdin: true` (its stdin, and its stdout
//!   and stderr from the moment of attaching, which also go to the log;
//!   `stdinOnce` honoured); exec starts `<exe> <command…>` (the command
//!   naming `hype-run` first) in the container's process group,
//!   environment and working directory (process executor only). See
//!   `streams.rs`.
//! - **Faults** ([`Faults`]): refused creates (429/500), an unschedulable
//!   cluster (with or without a cluster autoscaler that adds a node, its
//!   events served read-only), OOM kills, evictions, node preemptions, dropped watches, slow starts, an expired
//!   watch history (410 in the stream or on the request), failing
//!   `pods/log` requests, forbidden `pods/attach` and `pods/exec`, no
//!   `deletecollection`.
//!
//! # Docker executor
//!
//! With [`Executor::Docker`] each container is a real Docker container,
//! created, started, waited for (the engine's wait API), and removed once
//! it has ended, every engine call bounded. The rest of the kubelet
//! (scheduling, volumes, secrets, environment, statuses, faults) is the
//! same as with processes. Differences:
//!
//! - **Image**: the pod's image maps to a local image through
//!   [`KubeletOptions::docker_images`] ([`KubeletOptions::docker_image`]);
//!   an image not in the map is looked up on the engine under its own name
//!   (`:latest` added if it has no tag). Images are never pulled, whatever
//!   `imagePullPolicy` says: an image the engine lacks gives `ErrImagePull`,
//!   then `ImagePullBackOff`. `imageID` is `docker://<image ID>`,
//!   `containerID` `docker://<container ID>`.
//! - **Command**: `command` replaces the image's `ENTRYPOINT` and `args` its
//!   `CMD`, as on Kubernetes (`$(VAR)` expanded); any program of the image
//!   may run. One the image lacks ends the container with `StartError`
//!   (exit code 128) and the engine's message; so does a container the
//!   engine refuses to create. `workingDir` is honoured.
//! - **Environment**: [`KubeletOptions::env`] then the pod's; `PATH`, `HOME`
//!   and `HOSTNAME` come from the image and the engine (the hostname is the
//!   pod's name). No `HYPE_MOUNTS` and no `HYPE_TERMINATION_MESSAGE_PATH`:
//!   paths are real inside the container.
//! - **Mounts**: bind mounts at each `mountPath` (with `subPath`), read-only
//!   when the mount or the claim says so or for secrets (writes fail with
//!   EROFS; [`KubeTestServer::read_only_mounts`] says `MountNamespace`). The
//!   server's [`staging directory`](KubeTestServer::staging_dir) is
//!   bind-mounted read-write at its own path, so `file://` staging URIs
//!   mean the same inside and out. The host file holding the termination
//!   message is bind-mounted at the container's `terminationMessagePath`
//!   (default `/dev/termination-log`), which is where `hype-run` writes when
//!   `HYPE_TERMINATION_MESSAGE_PATH` is unset. The engine must see this
//!   machine's files (a local engine).
//! - **Resources**: `limits.memory` is the container's memory limit, with
//!   no swap; a container the kernel's OOM killer kills (the engine's
//!   `State.OOMKilled`) terminates with `OOMKilled`, exit code 137.
//!   `limits.cpu` sets `NanoCpus`, `requests.cpu` the CPU shares.
//! - **Stopping**: a deadline, deletion, eviction or simulated OOM kill
//!   sends SIGKILL through the engine (exit code 137); the log is the
//!   container's output (followed while it runs, complete once it ended).
//! - **Cleanup**: containers are labelled (`dev.hype.kube-double.server`,
//!   `dev.hype.kube-double.pid` and the dockershim's `io.kubernetes.*`), so
//!   [`KubeTestServer::pod_containers`] lists those left,
//!   [`KubeTestServer::shutdown`] (or dropping the server) removes them, and
//!   [`DockerExecutor::connect`] removes those of test processes that died.
//!
//! # What it does not model
//!
//! - Other kinds and verbs: no PUT, no PATCH but of Leases and pods (a
//!   merge patch of a pod may change what a real apiserver keeps
//!   immutable), no server-side apply, no subresources
//!   other than `pods/log`, `pods/attach` and `pods/exec` (WebSocket only:
//!   no SPDY, no TTYs; not with the in-process executor, exec not with Docker; attach
//!   only to containers with `stdin: true`, and it reports the main
//!   process's exit status, which a real kubelet does not), no namespaces as objects (every namespace
//!   exists; creating one is answered and keeps its labels, deleting one
//!   deletes the pods, claims, secrets and Leases in it), no RBAC,
//!   authentication, admission webhooks, quotas, limit
//!   ranges or API discovery beyond `/version`, `/api`, `/api/v1`, `/apis`
//!   (a test answers a create as RBAC or admission would with
//!   [`Faults::refuse_next_create`]). Of admission control, only Pod
//!   Security is modelled: a namespace labelled
//!   `pod-security.kubernetes.io/enforce: baseline` or `restricted`
//!   ([`KubeTestServer::label_namespace`], or labels given when it is
//!   created) refuses pods that break that level with 403, as the API
//!   server words it (`pod_security.rs`, from the Pod Security Standards).
//! - Lists ignore `limit` and `continue` (everything in one page) and
//!   `resourceVersion` (always the latest state). Of a log's parameters,
//!   `follow=true` (the bytes as they are written, until the container
//!   ends), `container`, `tailLines` and `limitBytes` are honoured;
//!   `previous`, `sinceSeconds` and `timestamps` are ignored.
//! - Validation is the subset in `validate.rs`; the real apiserver refuses
//!   more.
//! - One node, no resources: requests and limits are validated (and give
//!   the QoS class) but not enforced (except by the Docker executor's
//!   containers); no memory limit kills with processes — use
//!   [`Faults::oom_kill_next`]. No probes, init containers, sidecars,
//!   ephemeral containers, image pull secrets or security contexts for
//!   processes (they run as root in the mount-namespace mode, see
//!   [`ReadOnlyMounts`]; the Docker executor applies them).
//! - `restartPolicy` `Always` and `OnFailure` are accepted but containers are
//!   never restarted (as with `Never`).
//! - A deleted pod's processes get SIGKILL at once, whatever the grace
//!   period; a running pod deleted gracefully goes MODIFIED (deletionTimestamp)
//!   → MODIFIED (containers terminated with 137, phase Failed, as kubelets
//!   since 1.27 do) → DELETED. An unscheduled or finished pod, or a delete
//!   with `gracePeriodSeconds: 0`, is removed at once (DELETED only).
//! - A secret volume whose Secret is missing makes the container wait with
//!   `CreateContainerConfigError` (`secret "x" not found`); a real kubelet
//!   leaves it in `ContainerCreating` with a FailedMount event. Secret
//!   volumes are written once, not kept in sync. Only `secret`,
//!   `persistentVolumeClaim`, `emptyDir` and `hostPath` volumes are
//!   supported; `env` supports `value`, `secretKeyRef` and `fieldRef`,
//!   `envFrom` supports `secretRef`; config maps do not exist.
//! - Processes: a container's `command` must name `hype-run` (the only
//!   program in the images); `workingDir` is ignored. Containers get a
//!   clean environment (`PATH`, `HOSTNAME`, `HOME`,
//!   [`KubeletOptions::env`], the pod's own).
//! - Docker containers: no pod sandbox (each container has its own network
//!   namespace on the engine's default bridge, the pod IP stays
//!   `127.0.0.1`), no graceful stop (no SIGTERM first), no seccomp
//!   profile or `runAsNonRoot` check from the pod (its user, groups,
//!   `fsGroup`, read-only root, capabilities, `privileged` and
//!   `allowPrivilegeEscalation` apply: `docker_security.rs`), no image pulls, no
//!   ephemeral-storage limits, and `pod_processes` does not see container
//!   processes. A finished container is removed at once (a kubelet keeps
//!   it until garbage collection), so `previous` logs do not exist either.
//! - Claims bind at once (phase Bound in the create response) to a
//!   directory; storage classes, sizes and access modes are not enforced;
//!   `kubernetes.io/pvc-protection` is: a claim in use stays Terminating
//!   until no unfinished pod uses it. No events (the `Event` kind).
//! - In-process executor calls ([`Executor::InProcess`]) cannot be killed:
//!   a deleted, evicted or timed-out pod stops waiting for its call, which
//!   runs on to its end in its thread. They get no log and no enforced
//!   read-only mounts.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() {
//! use hype_tests::kube_double::{KubeTestServer, KubeletOptions};
//! use k8s_openapi::api::core::v1::Pod;
//!
//! let options = KubeletOptions::new().image("hype-test-worker:latest", "/path/to/worker");
//! let server = KubeTestServer::start(options);
//! let pods: kube::Api<Pod> = kube::Api::default_namespaced(server.client());
//! // … create pods, watch them run …
//! server.shutdown().await;
//! # }
//! ```

mod api;
mod docker;
mod docker_security;
mod faults;
mod gc;
mod kubelet;
mod pod_security;
mod store;
mod streams;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use docker::DockerExecutor;
pub use faults::{Autoscaler, Faults};

/// The namespace of [`KubeTestServer::client`] and the helpers.
pub const NAMESPACE: &str = "default";

/// The node every pod is scheduled on, unless [`KubeletOptions::node_name`] says.
pub const NODE_NAME: &str = "hype-test-node";

/// Runs one container without a process: gets the pod's command line and
/// environment, returns the exit code and termination message.
pub type InProcessFn = Arc<dyn Fn(InProcessPod) -> InProcessResult + Send + Sync>;

/// How the kubelet runs containers.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Executor {
    /// Each container is a child process: the image's executable, run as
    /// `<exe> hype-run <args…>` (the default).
    #[default]
    Process,
    /// "Instant pods", for benchmarks: the function is called on a plain
    /// std thread (not in async context) with the container's command line
    /// and environment; no process is spawned. Pods otherwise go through
    /// the same statuses. If [`KubeletOptions::images`] is empty, every
    /// well-formed image exists.
    InProcess(InProcessFn),
    /// Each container is a real Docker container of its image, on the
    /// engine of the [`DockerExecutor`]; see "Docker executor" in the
    /// [module documentation](self).
    Docker(DockerExecutor),
}

impl Executor {
    /// The in-process executor calling `run`.
    pub fn in_process(
        run: impl Fn(InProcessPod) -> InProcessResult + Send + Sync + 'static,
    ) -> Executor {
        Executor::InProcess(Arc::new(run))
    }
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Executor::Process => f.write_str("Process"),
            Executor::InProcess(_) => f.write_str("InProcess(..)"),
            Executor::Docker(docker) => f.debug_tuple("Docker").field(docker).finish(),
        }
    }
}

/// One container, as the in-process executor sees it.
#[derive(Debug, Clone)]
pub struct InProcessPod {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The container's name.
    pub container: String,
    /// The container's image.
    pub image: String,
    /// The entrypoint: the container's `command`, or `["hype-run"]`.
    pub command: Vec<String>,
    /// The container's `args` (for hype: the call).
    pub args: Vec<String>,
    /// The container's environment, as a process would get it (with
    /// `HYPE_MOUNTS` and `HYPE_TERMINATION_MESSAGE_PATH`).
    pub env: BTreeMap<String, String>,
}

/// What an in-process container gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InProcessResult {
    /// The exit code (0: Succeeded).
    pub exit_code: i32,
    /// The termination message, as the container would have written it.
    pub termination_message: Option<String>,
}

/// How the kubelet makes read-only mounts refuse writes, detected at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnlyMounts {
    /// Each container with a read-only mount runs in its own mount
    /// namespace where the mount is a read-only bind mount: writes fail
    /// with EROFS, as in a container. Processes run as the server's user
    /// (root). Needs root and mount namespaces.
    MountNamespace,
    /// Processes run as uid 65534, or 65533 in pods with a read-only claim
    /// mount; claim directories belong to 65534 (mode 0755) and secret
    /// directories are 0555, so writes fail with EACCES. A pod mounting one
    /// claim read-only and another read-write cannot write either. Files a
    /// pod writes into directories the test created need modes that let
    /// those uids write, and image executables must be readable and
    /// executable by them. Used as root when mount namespaces are
    /// unavailable.
    FileModes,
    /// Not running as root: read-only mounts are not enforced.
    NotEnforced,
}

/// What the kubelet runs, and how the server behaves.
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    /// Image name (as pods name it, e.g. `hype-test-worker:latest`; a name
    /// without a tag also matches `:latest`) → the executable standing in
    /// for the image's `hype-run` entrypoint.
    pub images: BTreeMap<String, PathBuf>,
    /// With [`Executor::Docker`]: image name (as pods name it; a name
    /// without a tag also matches `:latest`) → the local Docker image to
    /// run instead (e.g. the tag [`crate::docker_image::worker_image`]
    /// gives). An image not in this map runs as itself if the engine has
    /// it. Images are never pulled.
    pub docker_images: BTreeMap<String, String>,
    /// How containers run.
    pub executor: Executor,
    /// Environment every container gets first, like an image's `ENV`.
    pub env: BTreeMap<String, String>,
    /// The node's name.
    pub node_name: String,
    /// How long an idle watch waits before sending a BOOKMARK (when the
    /// client allows bookmarks).
    pub bookmark_interval: Duration,
    /// How many events the watch history keeps; resuming from an older
    /// resourceVersion gives 410 Gone.
    pub watch_history: usize,
    /// How to enforce read-only mounts; `None` (the default) detects the
    /// best way this machine allows. Forcing a way the machine does not
    /// allow makes containers fail to start (`StartError`). Ignored by
    /// [`Executor::Docker`].
    pub read_only_mounts: Option<ReadOnlyMounts>,
    /// Whether the garbage collector runs (default on): it deletes pods
    /// and claims whose owners (by `ownerReferences`) are all gone.
    pub garbage_collector: bool,
    /// Whether resourceVersions are opaque strings (neither numbers nor in
    /// order, as Kubernetes allows) instead of rising decimal numbers.
    /// Default: on when the environment variable
    /// [`OPAQUE_VERSIONS_VAR`] is `1`, so a whole test run can use them.
    pub opaque_resource_versions: bool,
    /// How long each pod takes to start ([`PodDelays`]); default instant.
    pub pod_delays: PodDelays,
}

/// The "realistic pods" setting: how long a pod takes between its create
/// and its containers' start, as a real cluster's scheduler, image pull
/// and container runtime take (for benchmarks; the tests keep instant
/// pods). The three are waited one after the other while the pod is
/// Pending (ContainerCreating).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodDelays {
    /// Placing the pod on a node.
    pub scheduling: Duration,
    /// Pulling its image.
    pub image_pull: Duration,
    /// Creating and starting its containers.
    pub container_start: Duration,
}

impl PodDelays {
    /// `total` split as a warm node spends it: a fifth scheduling, half
    /// pulling (a cached layer check), the rest starting the container.
    pub fn realistic(total: Duration) -> PodDelays {
        let scheduling = total / 5;
        let image_pull = total / 2;
        PodDelays {
            scheduling,
            image_pull,
            container_start: total.saturating_sub(scheduling + image_pull),
        }
    }

    /// The whole delay.
    pub fn total(&self) -> Duration {
        self.scheduling + self.image_pull + self.container_start
    }
}

/// The environment variable that turns on
/// [`KubeletOptions::opaque_resource_versions`] by default: `1`.
pub const OPAQUE_VERSIONS_VAR: &str = "HYPE_KUBE_DOUBLE_OPAQUE_VERSIONS";

impl Default for KubeletOptions {
    fn default() -> Self {
        KubeletOptions {
            images: BTreeMap::new(),
            docker_images: BTreeMap::new(),
            executor: Executor::Process,
            env: BTreeMap::new(),
            node_name: NODE_NAME.to_owned(),
            bookmark_interval: Duration::from_secs(5),
            watch_history: 10_000,
            read_only_mounts: None,
            garbage_collector: true,
            opaque_resource_versions: std::env::var(OPAQUE_VERSIONS_VAR).is_ok_and(|v| v == "1"),
            pod_delays: PodDelays::default(),
        }
    }
}

impl KubeletOptions {
    /// The defaults: no images, process executor.
    pub fn new() -> KubeletOptions {
        KubeletOptions::default()
    }

    /// Maps an image to an executable.
    pub fn image(mut self, name: impl Into<String>, executable: impl Into<PathBuf>) -> Self {
        self.images.insert(name.into(), executable.into());
        self
    }

    /// Maps an image, as pods name it, to a local Docker image
    /// ([`Executor::Docker`]).
    pub fn docker_image(mut self, name: impl Into<String>, local: impl Into<String>) -> Self {
        self.docker_images.insert(name.into(), local.into());
        self
    }

    /// Sets the executor.
    pub fn executor(mut self, executor: Executor) -> Self {
        self.executor = executor;
        self
    }

    /// Turns the garbage collector on or off (an API server without
    /// kube-controller-manager has none).
    pub fn garbage_collector(mut self, on: bool) -> Self {
        self.garbage_collector = on;
        self
    }

    /// Makes resourceVersions opaque strings (`o` and 16 hex digits, not
    /// in the order of the changes) or rising decimal numbers.
    pub fn opaque_resource_versions(mut self, on: bool) -> Self {
        self.opaque_resource_versions = on;
        self
    }

    /// Every pod takes `delays` to start ("realistic pods").
    pub fn pod_delays(mut self, delays: PodDelays) -> Self {
        self.pod_delays = delays;
        self
    }

    /// Adds an environment variable every container gets.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
}

/// State shared by the routes, the kubelet and the handle.
pub(crate) struct Shared {
    store: Arc<store::Store>,
    faults: Faults,
    kubelet: kubelet::Kubelet,
    requests: Mutex<Vec<(String, String)>>,
    watch_connections: AtomicUsize,
    /// Bytes sent on watch streams, and bytes of pod create bodies.
    traffic: Traffic,
    closing: AtomicBool,
    /// Whether [`KubeTestServer::shutdown`] removed every Docker container.
    containers_removed: AtomicBool,
    bookmark_interval: Duration,
    /// The events written (only the cluster autoscaler's, for now).
    events: Mutex<Vec<k8s_openapi::api::core::v1::Event>>,
    /// Each namespace's labels (Pod Security admission reads them).
    namespace_labels: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl Shared {
    /// The labels of `namespace` (none for one never labelled).
    pub(crate) fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self.namespace_labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }

    /// Sets label `key` of `namespace` to `value`.
    pub(crate) fn label_namespace(&self, namespace: &str, key: &str, value: &str) {
        self.namespace_labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(namespace.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
    }
}

/// The Kubernetes API test double with its kubelet simulator, serving on
/// `127.0.0.1` on the current tokio runtime. Dropping it (or
/// [`shutdown`](Self::shutdown)) stops the server and kills every pod
/// process.
pub struct KubeTestServer {
    shared: Arc<Shared>,
    url: String,
    stop_serving: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
    garbage_collector: Option<JoinHandle<()>>,
    staging: PathBuf,
    // Last: removed after the processes are gone.
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for KubeTestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeTestServer")
            .field("url", &self.url)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl KubeTestServer {
    /// Starts a server on `127.0.0.1` (a free port) on the current tokio
    /// runtime. Panics outside a runtime or if it cannot bind or create its
    /// temporary directory: it is test code.
    pub fn start(options: KubeletOptions) -> KubeTestServer {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("hype-kube-double-")
            .tempdir()
            .expect("a temporary directory for the Kubernetes test double");
        // Pod processes may run as other uids: they must reach their files.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the test double's directory");
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).expect("create the staging directory");
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o777))
            .expect("chmod the staging directory");
        // Pods running as another user than the submitter's write blobs
        // and outcomes there too.
        for sub in ["blobs", "blobs/sha256", "outcomes"] {
            let dir = staging.join(sub);
            std::fs::create_dir_all(&dir).expect("create a staging subdirectory");
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                .expect("chmod a staging subdirectory");
        }

        let versions = if options.opaque_resource_versions {
            store::Versions::Opaque
        } else {
            store::Versions::Numeric
        };
        let store = Arc::new(store::Store::new(options.watch_history, versions));
        let shared = Arc::new(Shared {
            faults: Faults::new(store.clone()),
            kubelet: kubelet::Kubelet::new(&options, dir.path()),
            store,
            requests: Mutex::new(Vec::new()),
            watch_connections: AtomicUsize::new(0),
            traffic: Traffic::default(),
            closing: AtomicBool::new(false),
            containers_removed: AtomicBool::new(false),
            bookmark_interval: options.bookmark_interval,
            events: Mutex::new(Vec::new()),
            namespace_labels: Mutex::new(BTreeMap::new()),
        });

        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the test double to 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let address = listener.local_addr().expect("the listener's address");
        // TCP_NODELAY on every connection, as Go's net package (so a real
        // API server) sets it: a stream's small messages go out at once.
        let listener = axum::serve::ListenerExt::tap_io(
            tokio::net::TcpListener::from_std(listener)
                .expect("KubeTestServer::start must run inside a tokio runtime"),
            |stream: &mut tokio::net::TcpStream| {
                let _ = stream.set_nodelay(true);
            },
        );
        let (stop_serving, mut stopped) = watch::channel(false);
        let router = api::router(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
        let garbage_collector = options
            .garbage_collector
            .then(|| tokio::spawn(gc::run(shared.clone())));
        KubeTestServer {
            shared,
            url: format!("http://{address}"),
            stop_serving,
            server: Mutex::new(Some(server)),
            garbage_collector,
            staging,
            dir,
        }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A `kube::Client` for this server, default namespace `default`.
    ///
    /// kube builds a TLS configuration even for plain HTTP, so this installs
    /// rustls's `ring` provider as the process default if none is set.
    pub fn client(&self) -> kube::Client {
        self.client_via(&self.url)
    }

    /// A `kube::Client` reaching this server through `url` (a
    /// [`FaultProxy`](crate::fault_proxy::FaultProxy) in front of it),
    /// default namespace `default`.
    pub fn client_via(&self, url: &str) -> kube::Client {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut config = kube::Config::new(url.parse().expect("the URL is a URI"));
        config.default_namespace = NAMESPACE.to_owned();
        kube::Client::try_from(config).expect("a client for the test double")
    }

    /// A kubeconfig file content whose one context (`double`, current)
    /// reaches `url` (this server's, or a proxy's) with namespace
    /// `default`, for programs that read `KUBECONFIG`.
    pub fn kubeconfig(&self, url: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: {url}\ncontexts:\n- name: double\n  context:\n    cluster: double\n    user: double\n    namespace: {NAMESPACE}\ncurrent-context: double\nusers:\n- name: double\n  user:\n    token: test-double\n"
        )
    }

    /// Every Lease, in every namespace.
    pub fn leases(&self) -> Vec<k8s_openapi::api::coordination::v1::Lease> {
        self.shared.store.all()
    }

    /// The namespace the helpers use: `default`.
    pub fn namespace(&self) -> &str {
        NAMESPACE
    }

    /// The fault injection handle.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// How read-only mounts are enforced on this machine
    /// (`MountNamespace` with [`Executor::Docker`]: the containers'
    /// read-only bind mounts).
    pub fn read_only_mounts(&self) -> ReadOnlyMounts {
        self.shared.kubelet.read_only
    }

    /// Every request served so far: (method, path and query).
    pub fn request_log(&self) -> Vec<(String, String)> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets the request log.
    pub fn clear_request_log(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Bytes sent on every watch stream so far, and bytes of the bodies of
    /// every pod create request so far: what each call costs the API
    /// server and every watcher (the benchmarks' measure of pod size).
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.shared.traffic.watch_bytes.load(Ordering::SeqCst),
            self.shared.traffic.pod_create_bytes.load(Ordering::SeqCst),
        )
    }

    /// How many watch requests were opened so far.
    pub fn watch_connections(&self) -> usize {
        self.shared.watch_connections.load(Ordering::SeqCst)
    }

    /// Every pod, in every namespace.
    pub fn pods(&self) -> Vec<Pod> {
        self.shared.store.all()
    }

    /// A pod of the `default` namespace.
    pub fn pod(&self, name: &str) -> Option<Pod> {
        self.shared.store.get(NAMESPACE, name)
    }

    /// Every persistent volume claim, in every namespace.
    pub fn pvcs(&self) -> Vec<PersistentVolumeClaim> {
        self.shared.store.all()
    }

    /// Every secret, in every namespace.
    pub fn secrets(&self) -> Vec<Secret> {
        self.shared.store.all()
    }

    /// Labels namespace `namespace` as `kubectl label namespace` would:
    /// `pod-security.kubernetes.io/enforce=restricted` (or `baseline`)
    /// makes Pod Security admission refuse pods that do not meet that
    /// level (see `pod_security.rs`).
    pub fn label_namespace(&self, namespace: &str, key: &str, value: &str) {
        self.shared.label_namespace(namespace, key, value);
    }

    /// Creates a secret in `default` with `data`, as `kubectl create secret
    /// generic` would. Panics if it exists or is invalid.
    pub fn create_secret(&self, name: &str, data: BTreeMap<String, Vec<u8>>) -> Secret {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
            ..Secret::default()
        };
        api::create_object(&self.shared, NAMESPACE, secret, false)
            .unwrap_or_else(|err| panic!("cannot create secret {name}: {err:?}"))
    }

    /// Deletes a pod of `default` as another client would (`kubectl delete
    /// pod`): the same as an API DELETE with no options. False if there
    /// was no such pod.
    pub fn delete_pod_as_someone_else(&self, name: &str) -> bool {
        kubelet::delete_pod(
            &self.shared,
            &(NAMESPACE.to_owned(), name.to_owned()),
            &DeleteOptions::default(),
        )
        .is_ok()
    }

    /// The directory holding a claim's data (claim in `default`), while the
    /// claim exists.
    pub fn volume_dir(&self, claim: &str) -> Option<PathBuf> {
        let claim: PersistentVolumeClaim = self.shared.store.get(NAMESPACE, claim)?;
        Some(
            self.shared
                .kubelet
                .claim_dir(claim.metadata.uid.as_deref()?),
        )
    }

    /// A directory (mode 0777) for `file://` staging that pod processes can
    /// write to, whatever uid they run as.
    pub fn staging_dir(&self) -> &Path {
        &self.staging
    }

    /// The PIDs of live processes of any pod's containers (including what
    /// they started), for asserting that nothing leaks. Empty with
    /// [`Executor::Docker`]: see [`pod_containers`](Self::pod_containers).
    pub fn pod_processes(&self) -> Vec<u32> {
        self.shared.kubelet.live_processes()
    }

    /// The names of the Docker containers of this server's pods that the
    /// engine still has, running or stopped ([`Executor::Docker`]; empty
    /// with other executors), for asserting that nothing leaks. A finished
    /// pod's container is removed once its status is written.
    pub async fn pod_containers(&self) -> Vec<String> {
        self.shared.kubelet.live_containers().await
    }

    /// Stops serving, closes every watch, kills every pod process (removes
    /// every Docker container) and waits (up to 10 s) until they are gone
    /// and the server has stopped. Objects stay readable through the
    /// helpers.
    pub async fn shutdown(&self) {
        self.stop_now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.pod_processes().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if self
            .shared
            .kubelet
            .remove_containers(remaining.max(Duration::from_secs(1)))
            .await
        {
            self.shared.containers_removed.store(true, Ordering::SeqCst);
        }
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut server) = server {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if tokio::time::timeout(remaining.max(Duration::from_millis(100)), &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
    }

    fn stop_now(&self) {
        if let Some(collector) = &self.garbage_collector {
            collector.abort();
        }
        self.shared.closing.store(true, Ordering::SeqCst);
        self.stop_serving.send_replace(true);
        self.shared.store.drop_watches();
        self.shared.kubelet.kill_everything();
    }
}

impl Drop for KubeTestServer {
    fn drop(&mut self) {
        self.stop_now();
        if let Some(server) = self.server.lock().unwrap_or_else(|p| p.into_inner()).take() {
            server.abort();
        }
        // SIGKILL is delivered at once, but give the kernel a moment so
        // nothing outlives the test.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !self.pod_processes().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.shared.containers_removed.load(Ordering::SeqCst) {
            self.shared
                .kubelet
                .remove_containers_blocking(Duration::from_secs(10));
        }
    }
}

/// Byte counters of [`KubeTestServer::traffic`].
#[derive(Debug, Default)]
struct Traffic {
    watch_bytes: std::sync::atomic::AtomicU64,
    pod_create_bytes: std::sync::atomic::AtomicU64,
}
