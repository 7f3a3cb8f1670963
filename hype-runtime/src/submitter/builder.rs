//! Building a [`Submitter`]: [`SubmitterBuilder`] and its options, the
//! staging store it is given or makes ([`IntoStaging`], a temporary
//! directory when none), and the decision whether (and how) to ship the
//! executable with the calls.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Inner, Submitter};
use crate::backend::{Cluster, Connection, Delivery};
use crate::cleanup;
use crate::config;
use crate::error::Error;
use crate::executable::Executable;
use crate::ids;
use crate::logs::LogMode;
use crate::staging::{self, LocalStaging, Staging};
use crate::wire::{BuildInfo, INLINE_ARGUMENTS_LIMIT, MAX_INLINE_ARGUMENTS};

/// A staging store for [`SubmitterBuilder::staging`]: a location
/// (`"file:///dir"`, `"gs://bucket/prefix"`) or a store built in code
/// ([`crate::staging::LocalStaging`], `GcsStaging`, any
/// `Arc<dyn Staging>`).
pub trait IntoStaging {
    /// The store, or the location to open.
    #[doc(hidden)]
    fn into_staging(self) -> StagingChoice;
}

/// What [`IntoStaging`] gives: a location to open, or a store.
#[derive(Debug)]
pub enum StagingChoice {
    /// A location, opened by [`SubmitterBuilder::build`].
    Location(String),
    /// A store built in code.
    Store(Arc<dyn Staging>),
}

impl IntoStaging for &str {
    fn into_staging(self) -> StagingChoice {
        StagingChoice::Location(self.to_owned())
    }
}

impl IntoStaging for String {
    fn into_staging(self) -> StagingChoice {
        StagingChoice::Location(self)
    }
}

impl IntoStaging for &String {
    fn into_staging(self) -> StagingChoice {
        StagingChoice::Location(self.clone())
    }
}

impl IntoStaging for Arc<dyn Staging> {
    fn into_staging(self) -> StagingChoice {
        StagingChoice::Store(self)
    }
}

/// Any store built in code: [`LocalStaging`], `GcsStaging`, or one of
/// your own.
impl<S: Staging + 'static> IntoStaging for S {
    fn into_staging(self) -> StagingChoice {
        StagingChoice::Store(Arc::new(self))
    }
}

/// Builds a [`Submitter`]: [`Submitter::builder`], then options, then
/// [`SubmitterBuilder::build`], which connects.
#[derive(Debug)]
#[must_use = "a SubmitterBuilder does nothing until .build().await"]
pub struct SubmitterBuilder<C> {
    cluster: C,
    staging: Option<StagingChoice>,
    executable: Option<PathBuf>,
    ship_executable: Option<bool>,
    log_mode: Option<LogMode>,
    inline_arguments_limit: usize,
}

impl<C: Cluster> SubmitterBuilder<C> {
    /// Where large payloads and outcomes are staged: a location
    /// (`"file:///dir"`, `"gs://bucket/prefix"`) or a store built in code.
    /// Without one, a temporary directory on this machine is used and
    /// removed with the submitter, where the cluster can read it (local
    /// processes, local Docker); Kubernetes clusters need a store their
    /// pods can read.
    pub fn staging(mut self, staging: impl IntoStaging) -> Self {
        self.staging = Some(staging.into_staging());
        self
    }

    /// The executable to ship with the calls instead of this one
    /// (`std::env::current_exe()`), e.g. a binary cross-built for the
    /// cluster's machines from the same source. Overrides `HYPE_EXECUTABLE`.
    pub fn executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.executable = Some(path.into());
        self
    }

    /// Whether to ship the executable with the calls (default: yes, unless
    /// `HYPE_SHIP_EXECUTABLE=0`). Shipping applies where calls run outside
    /// this process tree (Docker, Kubernetes); turn it off for images with
    /// the binary baked in.
    pub fn ship_executable(mut self, ship: bool) -> Self {
        self.ship_executable = Some(ship);
        self
    }

    /// What happens to the output of this submitter's calls, unless their
    /// environment says
    /// ([`RunEnvironment::with_log_mode`](crate::RunEnvironment::with_log_mode)).
    /// Unset, a single call streams ([`LogMode::Stream`]) and a fan-out
    /// shows a call's output only when it fails ([`LogMode::OnFailure`]).
    pub fn log_mode(mut self, mode: LogMode) -> Self {
        self.log_mode = Some(mode);
        self
    }

    /// Arguments up to this many encoded bytes travel inside the call (in
    /// a pod's spec on Kubernetes); larger ones are staged. Default
    /// [`INLINE_ARGUMENTS_LIMIT`] (16 KiB): every watch event and list of
    /// a pod resends its spec to every watcher, and whoever may read pods
    /// reads what is inline. At most [`MAX_INLINE_ARGUMENTS`] (64 KiB, so
    /// the `hype-run` argument stays under Linux's limit for one argument);
    /// 0 stages every argument. [`SubmitterBuilder::build`] refuses more.
    pub fn inline_arguments_limit(mut self, bytes: usize) -> Self {
        self.inline_arguments_limit = bytes;
        self
    }

    /// Connects to the cluster ([`Cluster::connect`], the one way every
    /// backend connects) and gives the submitter. The submitter and its
    /// runner share one session ID.
    pub async fn build(self) -> Result<Submitter, Error> {
        if self.inline_arguments_limit > MAX_INLINE_ARGUMENTS {
            return Err(Error::Config {
                message: format!(
                    "inline_arguments_limit({}) is more than {MAX_INLINE_ARGUMENTS} bytes, the most a call can carry inline; larger arguments are staged",
                    self.inline_arguments_limit
                ),
            });
        }
        BuildInfo::start_hashing();
        let (staging, owned) = match self.staging {
            Some(StagingChoice::Location(location)) => (staging::open(&location)?, None),
            Some(StagingChoice::Store(store)) => (store, None),
            None => {
                if let Some(reason) = self.cluster.needs_shared_staging() {
                    return Err(Error::Config {
                        message: format!(
                            "this cluster needs a staging store its executions can read: {reason}; pass one with Submitter::builder(cluster).staging(\"gs://bucket/prefix\")"
                        ),
                    });
                }
                let dir = cleanup::blocking(|| cleanup::temp_dir("hype-staging-"))
                    .await
                    .map_err(|err| Error::Config {
                        message: format!("cannot create a temporary staging directory: {err}"),
                    })?;
                let store: Arc<dyn Staging> = Arc::new(LocalStaging::new(dir.clone())?);
                (store, Some(dir))
            }
        };
        let session = ids::random_suffix(10);
        let connected = self
            .cluster
            .connect(Connection::new(staging.clone(), session.clone()))
            .await;
        let shipped = connected.and_then(|runner| {
            let shipped = shipping(
                runner.delivery(),
                self.ship_executable,
                self.executable.as_deref(),
            )?;
            Ok((runner, shipped))
        });
        let (runner, shipped) = match shipped {
            Ok(connected) => connected,
            Err(err) => {
                if let Some(dir) = owned {
                    let _ = cleanup::remove(dir).await;
                }
                return Err(err);
            }
        };
        let submitter = Submitter {
            inner: Arc::new(Inner {
                runner,
                staging,
                owned_staging_dir: owned,
                session,
                closed: CancellationToken::new(),
                calls: TaskTracker::new(),
                shipped,
                log_mode: self.log_mode,
                inline_arguments_limit: self.inline_arguments_limit,
                recent: Default::default(),
            }),
        };
        let registered: std::sync::Weak<dyn crate::interrupt::Close> =
            Arc::downgrade(&submitter.inner) as _;
        crate::interrupt::register(registered);
        Ok(submitter)
    }
}

/// The executable to ship for a runner that gets it by `delivery`, checked
/// (and its hash started) now: `None` when the runner runs this binary
/// itself or shipping is off.
fn shipping(
    delivery: Delivery,
    ship: Option<bool>,
    path: Option<&std::path::Path>,
) -> Result<Option<(Executable, Delivery)>, Error> {
    if delivery == Delivery::Native || !ship.map_or_else(config::ship_executable, Ok)? {
        return Ok(None);
    }
    let path = match path.map(PathBuf::from).or_else(config::executable) {
        Some(path) => path,
        None => {
            let own = std::env::current_exe().map_err(|err| Error::Config {
                message: format!(
                    "cannot find this program's executable to ship with the calls ({err}); pass one with HYPE_EXECUTABLE=/path or SubmitterBuilder::executable(path)"
                ),
            })?;
            if !crate::hype_run::dispatches() {
                return Err(Error::ExecutableNotShippable {
                    path: own,
                    reason: "this program cannot run calls: its main does not dispatch hype-run (it is not #[hype::main] and does not call hype::dispatch_if_hype_run() first), as a test harness (cargo test) does not. Ship a program of yours that does".to_owned(),
                });
            }
            own
        }
    };
    let executable = Executable::inspect(path)?;
    if let Delivery::Mount { arch: Some(arch) } = delivery
        && arch != executable.arch()
    {
        return Err(Error::ExecutableNotShippable {
            path: executable.path().to_owned(),
            reason: format!(
                "it is an {} executable, but the Docker engine runs {} ({}); build it with --target {}",
                executable.arch(),
                arch,
                arch.go_name(),
                arch.rust_target()
            ),
        });
    }
    Ok(Some((executable, delivery)))
}

impl Submitter {
    /// Starts building a submitter for `cluster`.
    pub fn builder<C: Cluster>(cluster: C) -> SubmitterBuilder<C> {
        SubmitterBuilder {
            cluster,
            staging: None,
            executable: None,
            ship_executable: None,
            log_mode: None,
            inline_arguments_limit: INLINE_ARGUMENTS_LIMIT,
        }
    }

    /// Connects to `cluster`, staging in `staging` (`file:///dir`,
    /// `gs://bucket/prefix`): the shortcut of
    /// `Submitter::builder(cluster).staging(staging).build()`.
    pub async fn new(staging: impl AsRef<str>, cluster: impl Cluster) -> Result<Submitter, Error> {
        Submitter::builder(cluster)
            .staging(staging.as_ref())
            .build()
            .await
    }
}
