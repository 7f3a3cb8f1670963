//! What an [`Error`] names (the function, the execution) and says about
//! itself in one line, and the constructors the crate shares.

use super::Error;

impl Error {
    /// The ID of the remote function this error is about, where it names
    /// one.
    pub fn function(&self) -> Option<&str> {
        match self {
            Error::RemotePanic { function, .. }
            | Error::UnknownFunction { function, .. }
            | Error::SignatureMismatch { function, .. }
            | Error::Encode { function, .. }
            | Error::Decode { function, .. }
            | Error::Timeout { function, .. }
            | Error::Cancelled { function, .. }
            | Error::RunnerFailed { function, .. }
            | Error::ImageUnavailable { function, .. }
            | Error::ContainerConfig { function, .. }
            | Error::Unschedulable { function, .. }
            | Error::OutOfMemory { function, .. }
            | Error::Evicted { function, .. }
            | Error::Preempted { function, .. }
            | Error::RetriesExhausted { function, .. }
            | Error::DeletedExternally { function, .. } => Some(function),
            _ => None,
        }
    }

    /// The execution this error is about, where it names one: the pod,
    /// container or child process of one attempt (for
    /// [`Error::RetriesExhausted`], the last attempt's).
    pub fn execution_id(&self) -> Option<&str> {
        match self {
            Error::RemotePanic { execution_id, .. }
            | Error::UnknownFunction { execution_id, .. }
            | Error::SignatureMismatch { execution_id, .. }
            | Error::Timeout { execution_id, .. }
            | Error::Cancelled { execution_id, .. }
            | Error::RunnerFailed { execution_id, .. }
            | Error::ImageUnavailable { execution_id, .. }
            | Error::ContainerConfig { execution_id, .. }
            | Error::Unschedulable { execution_id, .. }
            | Error::OutOfMemory { execution_id, .. }
            | Error::Evicted { execution_id, .. }
            | Error::Preempted { execution_id, .. }
            | Error::DeletedExternally { execution_id, .. }
            | Error::ExecutableMissing { execution_id, .. }
            | Error::ExecutableCorrupt { execution_id, .. }
            | Error::ExecutableCannotStart { execution_id, .. } => Some(execution_id),
            Error::RetriesExhausted { attempts, .. } => {
                attempts.last().map(|a| a.execution_id.as_str())
            }
            _ => None,
        }
    }

    /// A staging failure caused by an I/O error: the message names the
    /// kind of failure, the I/O error itself is the source.
    pub(crate) fn staging_io(
        operation: &'static str,
        uri: impl Into<String>,
        err: std::io::Error,
    ) -> Error {
        Error::Staging {
            operation,
            uri: uri.into(),
            message: err.kind().to_string(),
            source: Some(err.into()),
        }
    }

    /// The error's text followed by the text of each of its sources, for
    /// where only one line travels (a `hype-run:` line, a failure outcome).
    pub fn full_text(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        text
    }

    pub(crate) fn malformed(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::MalformedEnvelope {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
