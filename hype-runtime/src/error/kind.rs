//! What kind of failure an [`Error`] is ([`ErrorKind`]), for retry
//! policies, with the table of every variant's kind (`error_table.md`,
//! which the README holds too), and one [`Attempt`] of a retried call.

use std::time::Duration;

use super::Error;

/// One attempt of a call that was retried ([`Error::RetriesExhausted`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Attempt {
    /// The attempt's execution (each attempt has its own).
    pub execution_id: String,
    /// What happened to it.
    pub error: Error,
    /// How long it ran before it failed.
    pub took: Duration,
}

/// What kind of failure an [`Error`] is, for retry policies
/// ([`RunEnvironment::with_retry_on`]).
///
/// Every variant of [`Error`], its kind, and whether
/// [`RunEnvironment::with_retries`] runs the call again (a request to a
/// cluster's API is retried on its own, a bounded number of times, only
/// for the transient answers 5xx, 408 and 429 and for lost connections):
///
#[doc = include_str!("error_table.md")]
///
/// [`RunEnvironment::with_retry_on`]: crate::RunEnvironment::with_retry_on
/// [`RunEnvironment::with_retries`]: crate::RunEnvironment::with_retries
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The execution was lost to the infrastructure: evicted, its node
    /// preempted or lost, deleted by someone else, killed by a signal
    /// without writing an outcome, its container gone, the cluster's API
    /// failing after its bounded retries, or the staging store failing for
    /// a reason that passes. Retried by `RunEnvironment::with_retries`.
    Lost,
    /// The function panicked.
    Panicked,
    /// The execution ran out of memory.
    OutOfMemory,
    /// The call ran past its timeout.
    Timeout,
    /// Anything else: bad input, configuration, version skew, the image,
    /// a request the cluster's API rejected, a store that refused, a
    /// cancelled call. Retrying these rarely helps.
    Other,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Evicted { .. }
            | Error::Preempted { .. }
            | Error::DeletedExternally { .. }
            | Error::Cluster { .. }
            | Error::StagingUnavailable { .. }
            // Signals sent from outside (the kernel, a kubelet, someone):
            // not SIGABRT or SIGSEGV, which the program brought on itself.
            | Error::RunnerFailed {
                signal: Some(1 | 2 | 9 | 15),
                ..
            } => ErrorKind::Lost,
            Error::RetriesExhausted { .. } => ErrorKind::Lost,
            Error::RemotePanic { .. } => ErrorKind::Panicked,
            Error::OutOfMemory { .. } => ErrorKind::OutOfMemory,
            Error::Timeout { .. } => ErrorKind::Timeout,
            _ => ErrorKind::Other,
        }
    }
}
