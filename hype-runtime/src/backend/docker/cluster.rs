//! [`DockerCluster`]: which engine, and how calls use it; connecting it
//! for a submitter checks the staging, negotiates the API version, removes
//! what dead sessions left ([`super::reap`]) and builds the runner.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::task::TaskTracker;

use super::engine::{self, CONNECT_BOUND};
use super::{DockerRunner, Shared, reap, spec};
use crate::backend::{Arch, Cluster, Connection, Runner};
use crate::cleanup;
use crate::config;
use crate::error::Error;
use futures::future::BoxFuture;

/// How long a missing image may take to pull, unless set with
/// [`DockerCluster::pull_timeout`].
pub const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// A Docker engine to run calls on: `DOCKER_HOST`, else the default socket.
/// `HYPE_CLUSTER=docker` selects it for the default submitter.
///
/// ```no_run
/// # async fn demo() -> Result<(), hype_runtime::Error> {
/// use hype_runtime::{DockerCluster, RunEnvironment, Submitter};
/// let cluster = DockerCluster::new().secrets_dir("/etc/hype/secrets");
/// let submitter = Submitter::new("file:///var/tmp/hype-staging", cluster).await?;
/// let env = RunEnvironment::new("my-env-image:1").with_limit("memory", "512Mi");
/// // submitter.run(word_count("a b".into()), &env).await?;
/// submitter.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DockerCluster {
    keep_containers: bool,
    keep_volumes: bool,
    secrets_dir: Option<PathBuf>,
    pull_timeout: Duration,
    command_prefix: Vec<String>,
}

impl Default for DockerCluster {
    fn default() -> Self {
        DockerCluster {
            keep_containers: false,
            keep_volumes: false,
            secrets_dir: None,
            pull_timeout: DEFAULT_PULL_TIMEOUT,
            command_prefix: Vec::new(),
        }
    }
}

impl DockerCluster {
    /// The engine `DOCKER_HOST` names, else the default socket; containers
    /// removed after each call, transient volumes when the submitter closes.
    pub fn new() -> Self {
        DockerCluster::default()
    }

    /// Keeps each call's container (stopped, with its termination message
    /// directory) instead of removing it, for debugging.
    pub fn keep_containers(mut self, keep: bool) -> Self {
        self.keep_containers = keep;
        self
    }

    /// Keeps transient volumes when the submitter closes.
    pub fn keep_volumes(mut self, keep: bool) -> Self {
        self.keep_volumes = keep;
        self
    }

    /// Where secrets are: secret `NAME` is the directory `dir/NAME`,
    /// mounted read-only (default `$HYPE_LOCAL_SECRETS`, else
    /// `~/.config/hype/secrets`, as for the local runner).
    pub fn secrets_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.secrets_dir = Some(dir.into());
        self
    }

    /// How long pulling a missing image may take before the call fails
    /// with [`Error::ImageUnavailable`] (default five minutes).
    pub fn pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    /// Arguments put before the call in the container's command. Empty by
    /// default: the image's `ENTRYPOINT` is `hype-run`. For an image whose
    /// entrypoint is your binary under another name, use `["hype-run"]`:
    /// `#[hype::main]` dispatches when `hype-run` is the first argument.
    pub fn command_prefix<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.command_prefix = args.into_iter().map(Into::into).collect();
        self
    }

    /// Connects to the engine for one submitter: checks that the staging
    /// is local (`file://`), negotiates the API version, removes the
    /// containers and transient volumes of dead owners, and builds the
    /// runner.
    async fn runner(self, connection: Connection) -> Result<DockerRunner, Error> {
        let staging_dir = spec::staging_dir(connection.staging().location())?;
        // Created here, by this user, so that containers running as root
        // do not create them root-owned.
        for sub in ["blobs/sha256", "outcomes"] {
            let dir = staging_dir.join(sub);
            let created = {
                let dir = dir.clone();
                // Containers run as another user (65532 by default) and
                // write their outcomes and large results there (a blob is
                // checked against its SHA-256 when read).
                cleanup::blocking(move || {
                    use std::os::unix::fs::PermissionsExt as _;
                    std::fs::create_dir_all(&dir)?;
                    let mode = std::fs::metadata(&dir)?.permissions().mode();
                    if mode & 0o777 != 0o777 {
                        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
                    }
                    Ok(())
                })
                .await
            };
            created.map_err(|err| Error::Config {
                message: format!("cannot create staging directory {}: {err}", dir.display()),
            })?;
        }
        let host = engine::host();
        let docker = engine::connect().await?;
        // What killed submitters left: removed before this one adds its own.
        reap::reap_quietly(&docker).await;
        // The engine's machine type: a shipped executable must run on it.
        let arch = match tokio::time::timeout(CONNECT_BOUND, docker.version()).await {
            Ok(Ok(version)) => version.arch.as_deref().and_then(Arch::from_name),
            _ => None,
        };
        let secrets_dir = match self.secrets_dir {
            Some(dir) => dir,
            None => config::local_secrets_dir(),
        };
        let secrets_dir = std::path::absolute(&secrets_dir).unwrap_or(secrets_dir);
        let work_dir = cleanup::blocking(|| cleanup::temp_dir("hype-docker-"))
            .await
            .map_err(|err| Error::Config {
                message: format!("cannot create a temporary directory for Docker calls: {err}"),
            })?;
        tracing::debug!(%host, version = ?docker.client_version(), session = %connection.session(), "connected to the Docker engine");
        Ok(DockerRunner {
            shared: Arc::new(Shared {
                docker,
                session: connection.session().to_owned(),
                staging_dir,
                secrets_dir,
                work_dir,
                keep_containers: self.keep_containers,
                keep_volumes: self.keep_volumes,
                pull_timeout: self.pull_timeout,
                command_prefix: self.command_prefix,
                arch,
                volumes: Mutex::new(HashMap::new()),
                transient: Mutex::new(BTreeSet::new()),
                tasks: TaskTracker::new(),
            }),
        })
    }
}

impl Cluster for DockerCluster {
    fn connect(self, connection: Connection) -> BoxFuture<'static, Result<Arc<dyn Runner>, Error>> {
        Box::pin(async move { Ok(Arc::new(self.runner(connection).await?) as Arc<dyn Runner>) })
    }
}
