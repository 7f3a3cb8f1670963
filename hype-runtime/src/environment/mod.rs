//! Where and with what a call runs: [`RunEnvironment`] (image, secrets,
//! volumes, resources, env vars, timeout, base pod), [`Secret`],
//! [`VolumeRequest`] and [`VolumeMount`]; the pod-only options in
//! scheduling ([`Gpu`], Spot, node selectors, [`Toleration`]s, priority
//! class) and identity (service account, labels, annotations); the
//! user a call runs as and its read-only root filesystem (security); warm
//! [`Workers`].
//!
//! Environments are values: every builder returns a new one, and clones
//! are cheap (one `Arc`), so one environment can be shared by many calls.
//! Runners read what applies to them: the local runner maps secrets and
//! volumes to local directories (see [`crate::mounts`]) and ignores the
//! image and resource settings; the Kubernetes runner uses all of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorKind};
use crate::logs::LogMode;
use crate::retry::Doubling;

mod defaults;
// The conversions to engine numbers are for the Docker runner.
mod identity;
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
pub(crate) mod quantity;
mod scheduling;
mod secrets;
mod security;
mod validation;
mod volumes;
mod workers;

pub use defaults::FunctionDefaults;
#[cfg(feature = "kubernetes")]
pub(crate) use scheduling::{GKE_ACCELERATOR, GKE_SPOT, NVIDIA_GPU, SPOT_GRACE_PERIOD_SECONDS};
pub use scheduling::{Gpu, TaintEffect, Toleration};
pub use secrets::Secret;
pub use security::DEFAULT_RUN_AS_USER;
pub use volumes::{VolumeLifetime, VolumeMount, VolumeRequest};
pub use workers::{DEFAULT_IDLE_FOR, MAX_IDLE_FOR, MIN_IDLE_FOR, Workers};

/// The timeout of an environment that sets none: one hour. Every call has
/// a bound; raise it with [`RunEnvironment::with_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Where and with what a call runs.
///
/// ```
/// use std::time::Duration;
/// use hype_runtime::{RunEnvironment, Secret, VolumeRequest};
///
/// let ssd = VolumeRequest::new("gce-ssd-pd", "10Gi");
/// let env = RunEnvironment::new("europe-docker.pkg.dev/my-project/hype/env-image:1")
///     .with_secret(Secret::new("gcp-key", "/etc/gcloud"))
///     .with_mount(ssd.mount_read_only("/data"))
///     .with_request("cpu", "750m")
///     .with_limit("memory", "2Gi")
///     .with_env("RUST_LOG", "info")
///     .with_timeout(Duration::from_secs(600));
/// assert_eq!(env.image(), Some("europe-docker.pkg.dev/my-project/hype/env-image:1"));
/// assert_eq!(env.requests().get("cpu").map(String::as_str), Some("750m"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct RunEnvironment {
    inner: Arc<Settings>,
}

#[derive(Debug, Clone, Default)]
struct Settings {
    image: Option<String>,
    secrets: Vec<Secret>,
    mounts: Vec<VolumeMount>,
    requests: BTreeMap<String, String>,
    limits: BTreeMap<String, String>,
    /// The resources whose request or limit was set by `with_request` /
    /// `with_limit`, which `with_cpu` / `with_memory` leave alone.
    explicit_requests: BTreeSet<String>,
    explicit_limits: BTreeSet<String>,
    env: Vec<(String, String)>,
    timeout: Option<Duration>,
    base_pod: Option<BasePod>,
    /// Unset: 0, or [`SPOT_DEFAULT_RETRIES`] with Spot.
    retries: Option<u32>,
    gpu: Option<Gpu>,
    /// Unset (not off) until `with_spot`, so a function's `spot` default
    /// can tell the two apart.
    spot: Option<bool>,
    node_selector: BTreeMap<String, String>,
    tolerations: Vec<Toleration>,
    priority_class: Option<String>,
    service_account: Option<String>,
    service_account_token: Option<bool>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    retry_on: Vec<ErrorKind>,
    retry_backoff: Option<Duration>,
    log_mode: Option<LogMode>,
    run_as_user: Option<u32>,
    read_only_root: Option<bool>,
    workers: Option<Workers>,
}

/// The first wait before a retry when not set
/// ([`RunEnvironment::with_retry_backoff`]); each later wait doubles, up
/// to [`MAX_RETRY_BACKOFF`], with jitter.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// The retries of a call on Spot VMs ([`RunEnvironment::with_spot`])
/// without [`RunEnvironment::with_retries`]: a preempted call
/// ([`ErrorKind::Lost`]) runs again up to twice.
pub const SPOT_DEFAULT_RETRIES: u32 = 2;

/// The longest wait between two attempts of a call.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);

/// A base pod read by [`RunEnvironment::from_yaml`]: the YAML text, kept as
/// written; the Kubernetes runner parses and merges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasePod {
    path: PathBuf,
    yaml: Arc<str>,
}

impl BasePod {
    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's contents.
    pub fn yaml(&self) -> &str {
        &self.yaml
    }
}

impl RunEnvironment {
    /// An environment whose calls run in containers of `image` (Docker and
    /// Kubernetes runners; the local runner ignores the image).
    pub fn new(image: impl Into<String>) -> Self {
        let mut env = RunEnvironment::default();
        Arc::make_mut(&mut env.inner).image = Some(image.into());
        env
    }

    /// An environment without an image: for the local runner, where calls
    /// run as child processes of this binary.
    pub fn local() -> Self {
        RunEnvironment::default()
    }

    /// An environment from a base pod in a YAML file, as spotify/hype's
    /// `RunEnvironment.fromYaml`: the pod must have a container named
    /// `hype-run` without an image (checked by the Kubernetes runner, which
    /// takes the image from [`RunEnvironment::with_image`]).
    pub fn from_yaml(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let yaml = std::fs::read_to_string(path).map_err(|err| Error::Config {
            message: format!("cannot read base pod YAML {}: {err}", path.display()),
        })?;
        let mut env = RunEnvironment::default();
        Arc::make_mut(&mut env.inner).base_pod = Some(BasePod {
            path: path.to_owned(),
            yaml: yaml.into(),
        });
        Ok(env)
    }

    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.inner));
        self
    }

    /// The same environment with another image.
    pub fn with_image(self, image: impl Into<String>) -> Self {
        let image = image.into();
        self.with(|s| s.image = Some(image))
    }

    /// Mounts a secret read-only (Kubernetes: a secret volume; local: a
    /// directory, see [`crate::mount_path`]).
    pub fn with_secret(self, secret: Secret) -> Self {
        self.with(|s| s.secrets.push(secret))
    }

    /// Mounts a volume read-write or read-only.
    pub fn with_mount(self, mount: VolumeMount) -> Self {
        self.with(|s| s.mounts.push(mount))
    }

    /// Gives the call `amount` of cpu (`"2"`, `"750m"`): its request and
    /// its limit, so the pod is guaranteed what it may use. A request or
    /// limit of cpu set with [`RunEnvironment::with_request`] or
    /// [`RunEnvironment::with_limit`] wins over this, in any order: set both
    /// there for a request below the limit.
    pub fn with_cpu(self, amount: impl Into<String>) -> Self {
        self.with_request_and_limit("cpu", amount.into())
    }

    /// Gives the call `amount` of memory (`"4Gi"`, `"512Mi"`): its request
    /// and its limit, as [`RunEnvironment::with_cpu`] does for cpu.
    pub fn with_memory(self, amount: impl Into<String>) -> Self {
        self.with_request_and_limit("memory", amount.into())
    }

    fn with_request_and_limit(self, resource: &str, amount: String) -> Self {
        self.with(|s| {
            if !s.explicit_requests.contains(resource) {
                s.requests.insert(resource.to_owned(), amount.clone());
            }
            if !s.explicit_limits.contains(resource) {
                s.limits.insert(resource.to_owned(), amount);
            }
        })
    }

    /// Requests an amount of a resource (`"cpu"`, `"750m"`), as in a
    /// container's `resources.requests`. A later request of the same
    /// resource replaces the earlier one. For cpu and memory with the
    /// request equal to the limit, [`RunEnvironment::with_cpu`] and
    /// [`RunEnvironment::with_memory`] say it once; this is for a request
    /// below its limit and for other resources (`ephemeral-storage`,
    /// extended resources).
    pub fn with_request(self, resource: impl Into<String>, amount: impl Into<String>) -> Self {
        let (resource, amount) = (resource.into(), amount.into());
        self.with(|s| {
            s.explicit_requests.insert(resource.clone());
            s.requests.insert(resource, amount);
        })
    }

    /// Limits a resource (`"memory"`, `"2Gi"`), as in `resources.limits`
    /// (see [`RunEnvironment::with_request`] for when to use which).
    pub fn with_limit(self, resource: impl Into<String>, amount: impl Into<String>) -> Self {
        let (resource, amount) = (resource.into(), amount.into());
        self.with(|s| {
            s.explicit_limits.insert(resource.clone());
            s.limits.insert(resource, amount);
        })
    }

    /// Sets an environment variable for the call. A later value of the same
    /// key replaces the earlier one.
    pub fn with_env(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        self.with(|s| {
            s.env.retain(|(k, _)| *k != key);
            s.env.push((key, value));
        })
    }

    /// Stops the call and fails it with [`Error::Timeout`] when it has not
    /// finished after `timeout` ([`DEFAULT_TIMEOUT`] when not set).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.timeout = Some(timeout))
    }

    /// Runs a call again, up to `n` more times, when its execution is lost
    /// to the infrastructure ([`ErrorKind::Lost`]: an eviction, a node
    /// preempted or lost, a pod deleted by someone else, a container
    /// killed by a signal without an outcome or gone, the cluster's API
    /// failing after its own bounded retries). Each attempt is a new
    /// execution with its own ID, after an exponential backoff with
    /// jitter. A user's `Err`, a panic, running out of memory, a timeout
    /// and bad input are not retried unless asked for with
    /// [`RunEnvironment::with_retry_on`]. When the retries run out the call
    /// fails with [`Error::RetriesExhausted`], which lists every attempt.
    /// Default: 0 (no retries), or [`SPOT_DEFAULT_RETRIES`] with
    /// [`RunEnvironment::with_spot`], where preemption is expected.
    pub fn with_retries(self, n: u32) -> Self {
        self.with(|s| s.retries = Some(n))
    }

    /// Also retries failures of `kind` (with [`RunEnvironment::with_retries`]
    /// giving how many times): [`ErrorKind::Panicked`] for a flaky
    /// function, [`ErrorKind::OutOfMemory`], [`ErrorKind::Timeout`]. Each
    /// call adds a kind.
    pub fn with_retry_on(self, kind: ErrorKind) -> Self {
        self.with(|s| {
            if !s.retry_on.contains(&kind) {
                s.retry_on.push(kind);
            }
        })
    }

    /// The old name of [`RunEnvironment::with_retry_on`], which it calls:
    /// `RunEnvironment` adds a part with `with_*`.
    #[deprecated(
        note = "use RunEnvironment::with_retry_on: RunEnvironment's options are named with_*"
    )]
    pub fn retry_on(self, kind: ErrorKind) -> Self {
        self.with_retry_on(kind)
    }

    /// The first wait before a retry (default [`DEFAULT_RETRY_BACKOFF`]);
    /// each later one doubles, up to [`MAX_RETRY_BACKOFF`], with jitter.
    pub fn with_retry_backoff(self, first: Duration) -> Self {
        self.with(|s| s.retry_backoff = Some(first))
    }

    /// What happens to the output of this environment's calls (see
    /// [`LogMode`]); overrides the submitter's
    /// ([`SubmitterBuilder::log_mode`](crate::SubmitterBuilder::log_mode)).
    /// Unset, a single call streams ([`LogMode::Stream`]) and a fan-out
    /// shows a call's output only when it fails ([`LogMode::OnFailure`]).
    pub fn with_log_mode(self, mode: LogMode) -> Self {
        self.with(|s| s.log_mode = Some(mode))
    }

    /// The log mode set with [`RunEnvironment::with_log_mode`], if any.
    pub fn log_mode(&self) -> Option<LogMode> {
        self.inner.log_mode
    }

    /// How many times a lost call is run again: as set, else
    /// [`SPOT_DEFAULT_RETRIES`] on Spot, else 0.
    pub fn retries(&self) -> u32 {
        self.inner.retries.unwrap_or(if self.is_spot() {
            SPOT_DEFAULT_RETRIES
        } else {
            0
        })
    }

    /// Whether a call that failed with `error` is run again (while
    /// retries are left): a loss, or a kind asked for with
    /// [`RunEnvironment::with_retry_on`].
    pub fn is_retried(&self, error: &Error) -> bool {
        let kind = error.kind();
        // Never a call the caller cancelled or closed.
        !matches!(error, Error::Cancelled { .. })
            && (kind == ErrorKind::Lost || self.inner.retry_on.contains(&kind))
    }

    /// The wait before attempt `attempt` + 1 (`attempt` from 1): the
    /// backoff doubled per attempt, capped, and then drawn uniformly from
    /// its upper half (jitter, so that calls lost together do not come
    /// back together).
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let first = self.inner.retry_backoff.unwrap_or(DEFAULT_RETRY_BACKOFF);
        Doubling::new(first, MAX_RETRY_BACKOFF)
            .with_jitter()
            .delay(attempt)
    }

    /// The image, if any.
    pub fn image(&self) -> Option<&str> {
        self.inner.image.as_deref()
    }

    /// The secrets to mount.
    pub fn secrets(&self) -> &[Secret] {
        &self.inner.secrets
    }

    /// The volumes to mount.
    pub fn mounts(&self) -> &[VolumeMount] {
        &self.inner.mounts
    }

    /// Resource requests by resource name.
    pub fn requests(&self) -> &BTreeMap<String, String> {
        &self.inner.requests
    }

    /// Resource limits by resource name.
    pub fn limits(&self) -> &BTreeMap<String, String> {
        &self.inner.limits
    }

    /// Environment variables, in the order they were set.
    pub fn env_vars(&self) -> &[(String, String)] {
        &self.inner.env
    }

    /// The timeout of each call.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// The base pod, if the environment came from YAML.
    pub fn base_pod(&self) -> Option<&BasePod> {
        self.inner.base_pod.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_with_jitter_up_to_the_cap() {
        let env = RunEnvironment::local().with_retry_backoff(Duration::from_millis(100));
        for attempt in 1..=12u32 {
            let full = Duration::from_millis(100)
                .saturating_mul(1 << (attempt - 1))
                .min(MAX_RETRY_BACKOFF);
            for _ in 0..50 {
                let delay = env.retry_delay(attempt);
                assert!(
                    delay >= full / 2 && delay <= full,
                    "attempt {attempt}: {delay:?}"
                );
            }
        }
        assert!(RunEnvironment::local().retry_delay(1) <= DEFAULT_RETRY_BACKOFF);
    }

    #[test]
    fn losses_are_retried_and_other_kinds_only_when_asked() {
        let lost = Error::Evicted {
            function: "f".into(),
            execution_id: "e".into(),
            message: "m".into(),
        };
        let panic = Error::RemotePanic {
            function: "f".into(),
            message: "m".into(),
            location: None,
            execution_id: "e".into(),
        };
        let cancelled = Error::Cancelled {
            function: "f".into(),
            execution_id: "e".into(),
            reason: "closed".into(),
        };
        let env = RunEnvironment::local().with_retries(1);
        assert!(env.is_retried(&lost));
        assert!(!env.is_retried(&panic));
        assert!(!env.is_retried(&cancelled));
        let env = env
            .with_retry_on(ErrorKind::Panicked)
            .with_retry_on(ErrorKind::Other);
        #[allow(deprecated)]
        let old_name = RunEnvironment::local()
            .with_retries(1)
            .retry_on(ErrorKind::Panicked);
        assert!(old_name.is_retried(&panic), "retry_on still works");
        assert!(env.is_retried(&panic));
        assert!(
            !env.is_retried(&cancelled),
            "a cancelled call never runs again"
        );
    }

    #[test]
    fn builders_return_new_values_and_share_nothing_mutable() {
        let base = RunEnvironment::new("img").with_env("A", "1");
        let derived = base.clone().with_env("A", "2").with_request("cpu", "1");
        assert_eq!(base.env_vars(), &[("A".to_owned(), "1".to_owned())]);
        assert_eq!(derived.env_vars(), &[("A".to_owned(), "2".to_owned())]);
        assert!(base.requests().is_empty());
        assert_eq!(base.timeout(), DEFAULT_TIMEOUT);
    }

    #[test]
    fn from_yaml_names_the_missing_file() {
        let err = RunEnvironment::from_yaml("/nonexistent/pod.yaml").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pod.yaml"), "{err}");
    }

    #[test]
    fn from_yaml_keeps_the_file_and_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pod.yaml");
        let yaml = "apiVersion: v1\nkind: Pod\n";
        std::fs::write(&path, yaml).unwrap();
        let env = RunEnvironment::from_yaml(&path).unwrap();
        let pod = env.base_pod().expect("a base pod");
        assert_eq!(pod.path(), path);
        assert_eq!(pod.yaml(), yaml);
        assert_eq!(env.image(), None);
        let with_image = env.clone().with_image("img:1");
        assert_eq!(with_image.image(), Some("img:1"));
        assert_eq!(with_image.base_pod(), env.base_pod());
        assert_eq!(RunEnvironment::new("img:1").base_pod(), None);
    }

    #[test]
    fn spot_calls_retry_twice_unless_told_otherwise() {
        assert_eq!(RunEnvironment::local().retries(), 0);
        assert_eq!(RunEnvironment::local().with_spot(true).retries(), 2);
        assert_eq!(
            RunEnvironment::local()
                .with_spot(true)
                .with_retries(0)
                .retries(),
            0,
            "an explicit with_retries wins"
        );
        assert_eq!(
            RunEnvironment::local()
                .with_retries(5)
                .with_spot(true)
                .retries(),
            5
        );
    }

    #[test]
    fn cpu_and_memory_leave_explicit_requests_and_limits_alone() {
        let env = RunEnvironment::local()
            .with_cpu("2")
            .with_memory("4Gi")
            .with_limit("memory", "8Gi");
        assert_eq!(env.requests()["cpu"], "2");
        assert_eq!(env.limits()["cpu"], "2");
        assert_eq!(env.requests()["memory"], "4Gi");
        assert_eq!(env.limits()["memory"], "8Gi");
        let both = RunEnvironment::local()
            .with_request("cpu", "1")
            .with_limit("cpu", "3")
            .with_cpu("2");
        assert_eq!(
            (
                both.requests()["cpu"].as_str(),
                both.limits()["cpu"].as_str()
            ),
            ("1", "3")
        );
        let bad = RunEnvironment::local().with_memory("lots");
        let Err(Error::InvalidEnvironment { problems }) = bad.validate() else {
            panic!("expected InvalidEnvironment");
        };
        assert_eq!(problems.len(), 2, "request and limit: {problems:#?}");
    }

    #[test]
    fn the_default_timeout_is_one_hour() {
        assert_eq!(DEFAULT_TIMEOUT, Duration::from_secs(3600));
        assert_eq!(RunEnvironment::local().timeout(), Duration::from_secs(3600));
        let short = RunEnvironment::local().with_timeout(Duration::from_secs(5));
        assert_eq!(short.timeout(), Duration::from_secs(5));
    }

    #[test]
    fn accessors_return_what_the_builders_set() {
        let secret = Secret::new("gcp-key", "/etc/gcloud");
        let volume = VolumeRequest::persistent("data", "ssd", "10Gi");
        let env = RunEnvironment::local()
            .with_image("img:1")
            .with_secret(secret.clone())
            .with_mount(volume.mount_read_write("/data"))
            .with_request("cpu", "750m")
            .with_limit("memory", "2Gi")
            .with_limit("memory", "3Gi");
        assert_eq!(RunEnvironment::local().image(), None);
        assert_eq!(env.image(), Some("img:1"));
        assert_eq!(env.clone().with_image("img:2").image(), Some("img:2"));
        assert_eq!(env.secrets(), std::slice::from_ref(&secret));
        assert_eq!(env.mounts(), &[volume.mount_read_write("/data")]);
        assert_eq!(
            env.requests(),
            &BTreeMap::from([("cpu".to_owned(), "750m".to_owned())])
        );
        assert_eq!(
            env.limits(),
            &BTreeMap::from([("memory".to_owned(), "3Gi".to_owned())])
        );
        assert!(RunEnvironment::local().secrets().is_empty());
        assert!(RunEnvironment::local().mounts().is_empty());
        assert!(RunEnvironment::local().limits().is_empty());
    }
}
