//! Runners: the places a call can run. Each takes a [`Job`] (the call as
//! `hype-run`'s argument) and a [`RunEnvironment`], runs `hype-run`
//! somewhere, and returns its termination message: the outcome envelope as
//! a [`crate::wire::Reference`]. The [`crate::Submitter`] does the rest
//! (staging, decoding, typed errors), so runners only start, wait and
//! clean up.
//!
//! | runner | module | feature |
//! |---|---|---|
//! | child process of this binary (the embedded default) | [`local`] | none |
//! | container on a Docker engine | `docker` | `docker` |
//! | pod on Kubernetes | `kubernetes` | `kubernetes` |

#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod local;

use crate::environment::RunEnvironment;
use crate::error::Error;
use crate::staging::BoxFuture;

/// One call, ready to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// The function's ID.
    pub function: &'static str,
    /// The execution's name (pod, container, process): a DNS-1123 label.
    pub execution_id: String,
    /// The argument to give `hype-run`: `inline:<base64>` or a staging URI.
    pub call: String,
}

/// A place calls run.
///
/// Dropping the future of [`Runner::run`] must stop the execution and
/// remove what it created (process, container, pod): that is how callers
/// cancel. Every wait inside has a bound: the environment's timeout, or a
/// shorter one for start-up.
pub trait Runner: Send + Sync + std::fmt::Debug {
    /// Runs `hype-run` for `job` in `env` and returns its termination
    /// message. Fails with [`Error::Timeout`] after `env.timeout()`, and with
    /// [`Error::RunnerFailed`] when the execution ended without a message.
    fn run<'a>(&'a self, job: Job, env: &'a RunEnvironment)
    -> BoxFuture<'a, Result<String, Error>>;

    /// Releases what the runner holds for its submitter (transient
    /// volumes). Calls in flight have already been cancelled.
    fn close(&self) -> BoxFuture<'_, Result<(), Error>>;
}
