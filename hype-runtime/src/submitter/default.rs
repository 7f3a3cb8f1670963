//! The process-wide default submitter behind [`Call::run_on_cluster`]:
//! the one set with [`Submitter::set_default`], else one made from the
//! environment ([`Submitter::from_env`]) for each tokio runtime.
//!
//! A submitter lives on the runtime it was built on: its watch, its Lease
//! renewal and its store's client are tasks there, and they end with that
//! runtime. So a default made from the environment belongs to one
//! runtime: a second runtime (a second `#[tokio::test]`, a `block_on` after
//! the first runtime ended) gets one of its own, and the entry of a runtime
//! that ended is dropped at the next look-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::runtime::{Handle, Id};
use tokio::sync::OnceCell;

use super::Submitter;
use crate::backend::LocalCluster;
use crate::config::{self, ClusterSpec};
use crate::environment::RunEnvironment;
use crate::error::Error;
use crate::remote::{Call, RemoteFn};

impl Submitter {
    /// The submitter `HYPE_CLUSTER` and `HYPE_STAGING` describe; local
    /// child processes with temporary staging when neither is set.
    pub async fn from_env() -> Result<Submitter, Error> {
        let spec = ClusterSpec::from_env()?;
        let staging = config::staging()?;
        match (&spec, staging) {
            (ClusterSpec::Local, None) => Submitter::builder(LocalCluster::new()).build().await,
            (ClusterSpec::Local, Some(staging)) => {
                Submitter::new(staging, LocalCluster::new()).await
            }
            #[cfg(feature = "docker")]
            (ClusterSpec::Docker, Some(staging)) => {
                Submitter::new(staging, crate::backend::docker::DockerCluster::new()).await
            }
            #[cfg(feature = "docker")]
            (ClusterSpec::Docker, None) => {
                Submitter::builder(crate::backend::docker::DockerCluster::new())
                    .build()
                    .await
            }
            #[cfg(feature = "kubernetes")]
            (ClusterSpec::Kube { context }, Some(staging)) => {
                let cluster = match context {
                    Some(context) => {
                        crate::backend::kubernetes::KubeCluster::new().context(context.clone())
                    }
                    None => crate::backend::kubernetes::KubeCluster::new(),
                };
                Submitter::new(staging, cluster).await
            }
            #[cfg(feature = "kubernetes")]
            (ClusterSpec::Kube { .. }, None) => Err(Error::Config {
                message: "HYPE_CLUSTER=kube needs HYPE_STAGING=gs://bucket/prefix (or another store the pods can read): pods cannot read this machine's temporary files".to_owned(),
            }),
            #[cfg(feature = "gke")]
            (
                ClusterSpec::Gke {
                    project,
                    location,
                    cluster,
                },
                Some(staging),
            ) if staging.starts_with("gs://") => {
                let cluster = crate::backend::kubernetes::gke::ContainerEngineCluster::new(
                    project, location, cluster,
                );
                Submitter::new(staging, cluster).await
            }
            #[cfg(feature = "gke")]
            (ClusterSpec::Gke { .. }, staging) => Err(Error::Config {
                message: format!(
                    "HYPE_CLUSTER=gke:... needs HYPE_STAGING=gs://bucket/prefix, a bucket the pods can read and write{}",
                    staging
                        .map(|s| format!(" (it is {s:?})"))
                        .unwrap_or_else(|| " (it is not set)".to_owned())
                ),
            }),
            // Unreachable when every backend feature is on.
            #[allow(unreachable_patterns)]
            (other, _) => Err(Error::Config {
                message: format!(
                    "HYPE_CLUSTER asks for {other:?}, which needs hype's `{}` feature; this build of hype does not have that runner yet",
                    other.feature().unwrap_or_default()
                ),
            }),
        }
    }

    /// Sets the process-wide default submitter used by
    /// [`Call::run_on_cluster`]. Fails if a default is already set, or was
    /// already created from the environment by an earlier call.
    ///
    /// The submitter keeps running on the runtime it was built on: set one
    /// built on the runtime that lives as long as the program (the one of
    /// `#[hype::main]`).
    pub fn set_default(submitter: Submitter) -> Result<(), Error> {
        set(submitter)
    }

    /// The default submitter: the one set with [`Submitter::set_default`],
    /// else one made with [`Submitter::from_env`] once for each tokio
    /// runtime (a submitter's tasks end with the runtime it was built on,
    /// so a second runtime, such as a second `#[tokio::test]`, gets a
    /// working one of its own).
    pub async fn default_submitter() -> Result<Submitter, Error> {
        get().await
    }
}

impl<A: RemoteFn> Call<A> {
    /// Runs the call with the process-wide default submitter (set by
    /// [`Submitter::set_default`], else read once from `HYPE_CLUSTER` and
    /// `HYPE_STAGING`, else local child processes).
    ///
    /// An environment that names no image ([`RunEnvironment::local`]) runs
    /// in the image `HYPE_IMAGE` names, if set: so
    /// `HYPE_CLUSTER=docker HYPE_IMAGE=hype-env:1` sends a program written
    /// for the embedded default to containers unchanged. An image the
    /// environment names wins.
    pub async fn run_on_cluster(self, env: &RunEnvironment) -> Result<A::Output, Error> {
        let submitter = Submitter::default_submitter().await?;
        match with_default_image(env, config::default_image()?) {
            Some(env) => submitter.run(self, &env).await,
            None => submitter.run(self, env).await,
        }
    }
}

/// `env` with `image` when it names none; `None` when it stays as it is.
fn with_default_image(env: &RunEnvironment, image: Option<String>) -> Option<RunEnvironment> {
    match (env.image(), image) {
        (None, Some(image)) => Some(env.clone().with_image(image)),
        _ => None,
    }
}

/// The default set with [`Submitter::set_default`].
static SET: OnceLock<Submitter> = OnceLock::new();

/// Whether a default was made from the environment (then
/// [`Submitter::set_default`] is refused, as the first call already chose).
static MADE: AtomicBool = AtomicBool::new(false);

/// The defaults made from the environment, one per live runtime.
static PER_RUNTIME: Mutex<Vec<PerRuntime>> = Mutex::new(Vec::new());

struct PerRuntime {
    runtime: Id,
    submitter: Arc<OnceCell<Submitter>>,
    /// Cleared when the runtime shuts down (it drops its tasks, and with
    /// them [`Alive`]).
    alive: Arc<AtomicBool>,
}

/// Held by a task on the runtime, which is dropped when the runtime ends.
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<PerRuntime>> {
    PER_RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sets the default; see [`Submitter::set_default`].
fn set(submitter: Submitter) -> Result<(), Error> {
    let refused = || {
        Error::Config {
        message: "a default submitter is already set (or was created from HYPE_CLUSTER by an earlier run_on_cluster): set it once, before the first call".to_owned(),
    }
    };
    if MADE.load(Ordering::SeqCst) {
        return Err(refused());
    }
    SET.set(submitter).map_err(|_| refused())
}

/// The default of the current runtime; see [`Submitter::default_submitter`].
async fn get() -> Result<Submitter, Error> {
    if let Some(submitter) = SET.get() {
        return Ok(submitter.clone());
    }
    let handle = Handle::try_current().map_err(|_| Error::Config {
        message: "the default submitter needs a tokio runtime: call run_on_cluster from async code on one (#[hype::main] or #[tokio::main])".to_owned(),
    })?;
    let cell = cell_of(&handle);
    let submitter = cell
        .get_or_try_init(|| async {
            MADE.store(true, Ordering::SeqCst);
            Submitter::from_env().await
        })
        .await?;
    Ok(submitter.clone())
}

/// The cell of `handle`'s runtime, made (with its liveness task) at the
/// first look-up; entries of runtimes that ended go.
fn cell_of(handle: &Handle) -> Arc<OnceCell<Submitter>> {
    let runtime = handle.id();
    let mut entries = lock();
    // Dropped outside the lock: a submitter's drop does work of its own.
    let ended: Vec<PerRuntime> = {
        let (live, ended) = std::mem::take(&mut *entries)
            .into_iter()
            .partition(|e| e.alive.load(Ordering::SeqCst));
        *entries = live;
        ended
    };
    let cell = match entries.iter().find(|e| e.runtime == runtime) {
        Some(entry) => Arc::clone(&entry.submitter),
        None => {
            let alive = Arc::new(AtomicBool::new(true));
            let guard = Alive(Arc::clone(&alive));
            handle.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
            let submitter = Arc::new(OnceCell::new());
            entries.push(PerRuntime {
                runtime,
                submitter: Arc::clone(&submitter),
                alive,
            });
            submitter
        }
    };
    drop(entries);
    drop(ended);
    cell
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hype_image_is_the_image_of_an_environment_without_one() {
        let local = RunEnvironment::local().with_env("K", "v");
        let given = with_default_image(&local, Some("hype-env:1".into())).expect("an image");
        assert_eq!(given.image(), Some("hype-env:1"));
        assert_eq!(given.env_vars(), local.env_vars());
        assert!(with_default_image(&local, None).is_none());
        let named = RunEnvironment::new("mine:2");
        assert!(
            with_default_image(&named, Some("hype-env:1".into())).is_none(),
            "the environment's own image wins"
        );
    }
}
