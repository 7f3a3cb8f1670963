//! Backends: the places a call can run, one folder (or file) each, and the
//! two traits they implement.
//!
//! | backend | cluster type | module | feature |
//! |---|---|---|---|
//! | child processes of this binary (the embedded default) | [`LocalCluster`] | [`local`] | none |
//! | containers on a Docker engine | `DockerCluster` | `docker` | `docker` |
//! | pods on Kubernetes | `KubeCluster` | `kubernetes` | `kubernetes` |
//! | pods on Google Kubernetes Engine | `ContainerEngineCluster` | `kubernetes::gke` | `gke` |
//!
//! A [`Cluster`] is a description of where calls go, built in code or from
//! `HYPE_CLUSTER` ([`crate::config`]). [`Cluster::connect`] is the one way
//! to connect, for every backend: the submitter calls it once, with its
//! [`Connection`] (staging store and session), and gets a [`Runner`]. A
//! runner takes a [`Job`] (the call as `hype-run`'s argument) and a
//! [`RunEnvironment`], runs `hype-run` somewhere, and returns its
//! termination message: the outcome envelope as a
//! [`crate::wire::Reference`]. The submitter does the rest (staging,
//! decoding, typed errors), so runners only start, wait and clean up.

#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
// Each container backend uses its part of the one set of labels.
#[cfg(any(feature = "docker", feature = "kubernetes"))]
#[cfg_attr(not(all(feature = "docker", feature = "kubernetes")), allow(dead_code))]
pub mod labels;
pub mod local;

use std::sync::Arc;

pub use self::local::LocalCluster;
use crate::environment::RunEnvironment;
use crate::error::Error;
pub use crate::executable::Arch;
use crate::logs::{LogMode, LogSink};
use crate::phases::PhaseRecorder;
use futures::future::BoxFuture;

use crate::staging::Staging;

/// What a cluster is connected for: the submitter's staging store and
/// session. Everything a runner creates carries the session in its labels
/// (`hype.dev/session`), so one submitter's objects can be found and removed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Connection {
    staging: Arc<dyn Staging>,
    session: String,
}

impl Connection {
    /// A connection for the submitter of `session` staging in `staging`.
    pub fn new(staging: Arc<dyn Staging>, session: impl Into<String>) -> Connection {
        Connection {
            staging,
            session: session.into(),
        }
    }

    /// The submitter's staging store.
    pub fn staging(&self) -> &Arc<dyn Staging> {
        &self.staging
    }

    /// The submitter's session ID: 10 characters of `[0-9a-z]`, a valid
    /// label value. The submitter reports the same one
    /// ([`crate::Submitter::session`]).
    pub fn session(&self) -> &str {
        &self.session
    }
}

/// Where calls can be sent: [`LocalCluster`], `DockerCluster`,
/// `KubeCluster`, `ContainerEngineCluster`. Give one to
/// [`crate::Submitter::builder`] or [`crate::Submitter::new`].
///
/// The trait is sealed: only these backends implement it. Its runner side
/// is not a stable interface yet, so a backend outside hype's crates
/// cannot be written against it.
pub trait Cluster: sealed::Sealed + Send + 'static {
    /// Connects for one submitter and gives the runner its calls go to.
    #[doc(hidden)]
    fn connect(self, connection: Connection) -> BoxFuture<'static, Result<Arc<dyn Runner>, Error>>;

    /// Why this cluster cannot use a temporary staging directory on this
    /// machine, when it cannot: a submitter built without a staging store
    /// then fails with this reason instead of staging where its executions
    /// cannot read.
    #[doc(hidden)]
    fn needs_shared_staging(&self) -> Option<&'static str> {
        None
    }
}

/// The seal of [`Cluster`]: a public trait in a private module, so that
/// nothing outside this crate can implement it.
mod sealed {
    /// Implemented by every [`super::Cluster`] of this crate, and only them.
    pub trait Sealed {}

    impl Sealed for super::LocalCluster {}
    #[cfg(feature = "docker")]
    impl Sealed for super::docker::DockerCluster {}
    #[cfg(feature = "kubernetes")]
    impl Sealed for super::kubernetes::KubeCluster {}
    #[cfg(feature = "gke")]
    impl Sealed for super::kubernetes::ContainerEngineCluster {}
}

/// One call, ready to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Job {
    /// The function's ID.
    pub function: &'static str,
    /// The execution's name (pod, container, process): a DNS-1123 label.
    pub execution_id: String,
    /// The argument to give `hype-run`: `inline:<base64>` or a staging URI.
    pub call: String,
    /// The executable the call runs with, when the submitter ships one
    /// ([`Runner::delivery`] is not [`Delivery::Native`]).
    pub executable: Option<JobExecutable>,
    /// Where the execution's output goes, line by line: the runner reads
    /// its stdout and stderr into it while it runs, to their end.
    pub logs: Arc<LogSink>,
    /// Environment variables of this execution alone, after the
    /// environment's: the caller's trace context (`TRACEPARENT`,
    /// `TRACESTATE`).
    pub env: Vec<(String, String)>,
    /// Where the runner stamps what it sees of the execution (sent,
    /// scheduled, started, ended, outcome read, removed): its phases.
    pub phases: PhaseRecorder,
}

impl Job {
    /// A job of `function` as execution `execution_id`, with `call` as
    /// `hype-run`'s argument, shipping no executable, its output streamed
    /// ([`LogMode::Stream`]).
    pub fn new(function: &'static str, execution_id: impl Into<String>, call: String) -> Job {
        let execution_id = execution_id.into();
        Job {
            function,
            logs: LogSink::new(&execution_id, LogMode::Stream),
            execution_id,
            call,
            executable: None,
            env: Vec::new(),
            phases: PhaseRecorder::default(),
        }
    }
}

/// The executable a job ships: the file, and the machine it runs on.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobExecutable {
    /// The file on this machine.
    pub path: std::path::PathBuf,
    /// Its machine type.
    pub arch: Arch,
    /// The staged blob of the file (its URI, length and SHA-256), when it
    /// travels staged ([`Delivery::Staged`]): warm workers fetch it once
    /// and are keyed by its digest.
    pub blob: Option<crate::wire::BlobRef>,
}

/// How a runner's executions get the program's executable
/// ([`Runner::delivery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// They run this binary itself (child processes): nothing travels.
    Native,
    /// The runner puts the file into each execution and runs it there
    /// (a bind mount on a local Docker engine), which runs on `arch` when
    /// known.
    Mount {
        /// The machine type of where executions run.
        arch: Option<Arch>,
    },
    /// The executable travels as a staged blob that each call names, and a
    /// launcher `hype-run` fetches it (Kubernetes).
    Staged,
}

/// A place calls run, connected for one submitter.
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

    /// How the runner's executions get the program's executable when the
    /// submitter ships it. The default, [`Delivery::Native`], ships nothing.
    fn delivery(&self) -> Delivery {
        Delivery::Native
    }
}

/// How an execution ended when it wrote no outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It exited with this code. Containers report a death by signal `n`
    /// as code `128 + n`, and are described as such.
    Code(i64),
    /// A signal killed it (a child process, whose signal is known).
    Signal(i32),
}

/// The one description of an execution that ended without writing an
/// outcome, for every backend: `"{subject} exited with code 66 (unknown
/// function) without writing an outcome"`, `"{subject} was killed by signal
/// 9 (SIGKILL: …)"`.
pub(crate) fn describe_end(subject: &str, ended: Ended) -> String {
    match ended {
        Ended::Code(code) => {
            let meaning = i32::try_from(code).ok().and_then(|code| {
                crate::wire::describe_exit_code(code).or_else(|| {
                    code.checked_sub(128)
                        .filter(|signal| (1..=64).contains(signal))
                        .and_then(signal_name)
                })
            });
            match meaning {
                Some(meaning) => {
                    format!(
                        "{subject} exited with code {code} ({meaning}) without writing an outcome"
                    )
                }
                None => format!("{subject} exited with code {code} without writing an outcome"),
            }
        }
        Ended::Signal(signal) => match signal_name(signal) {
            Some(name) => format!("{subject} was killed by signal {signal} ({name})"),
            None => format!("{subject} was killed by signal {signal}"),
        },
    }
}

/// The signal an execution that wrote no outcome died of: a child's own,
/// or `n` for a container's exit code 128 + n.
#[cfg_attr(not(any(feature = "docker", feature = "kubernetes")), allow(dead_code))]
pub(crate) fn signal_of(ended: Ended) -> Option<i32> {
    match ended {
        Ended::Signal(signal) => Some(signal),
        Ended::Code(code) => i32::try_from(code - 128)
            .ok()
            .filter(|signal| (1..=64).contains(signal)),
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    use rustix::process::Signal;
    Some(match Signal::from_named_raw(signal)? {
        Signal::KILL => "SIGKILL: killed from outside, or out of memory",
        Signal::TERM => "SIGTERM",
        Signal::SEGV => "SIGSEGV",
        Signal::ABORT => "SIGABRT: aborted",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_described_once_for_every_backend() {
        assert!(describe_end("the container", Ended::Code(137)).contains("SIGKILL"));
        assert!(describe_end("the container", Ended::Code(101)).contains("panicked"));
        assert!(describe_end("the container", Ended::Code(66)).contains("unknown function"));
        assert_eq!(
            describe_end("the container", Ended::Code(3)),
            "the container exited with code 3 without writing an outcome"
        );
        assert_eq!(
            describe_end(
                "the process",
                Ended::Signal(rustix::process::Signal::KILL.as_raw())
            ),
            "the process was killed by signal 9 (SIGKILL: killed from outside, or out of memory)"
        );
        assert_eq!(
            describe_end("the process", Ended::Signal(64)),
            "the process was killed by signal 64"
        );
    }
}
