//! The labels and annotations everything hype creates carries (pods,
//! claims, containers, volumes), and the selectors that find one session's
//! objects. One set for every backend, so the same selectors work on pods
//! and containers alike. Public (hidden) for the `hype` command, which
//! finds and removes what dead sessions left.

/// Label of warm worker pods: their role ([`ROLE_WORKER`]).
pub const LABEL_ROLE: &str = "hype.dev/role";
/// [`LABEL_ROLE`] on warm worker pods.
pub const ROLE_WORKER: &str = "worker";
/// Annotation of warm worker pods, written by their submitter: the
/// worker's state, `starting`, `idle` or `busy`.
pub const ANNOTATION_WORKER_STATE: &str = "hype.dev/worker-state";
/// Annotation of warm worker pods: the calls running on the worker.
pub const ANNOTATION_WORKER_BUSY: &str = "hype.dev/worker-busy";
/// Annotation of warm worker pods: the calls the worker has run.
pub const ANNOTATION_WORKER_CALLS: &str = "hype.dev/worker-calls";
/// Label: who manages the object (`hype`).
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label: the submitter session that created the object.
pub const LABEL_SESSION: &str = "hype.dev/session";
/// Label: the function (its last path segment, label-safe).
pub const LABEL_FUNCTION: &str = "hype.dev/function";
/// Label (containers) or annotation (pods): the function's full ID.
pub const LABEL_FUNCTION_ID: &str = "hype.dev/function-id";
/// Label: the execution ID (the container's name).
pub const LABEL_EXECUTION_ID: &str = "hype.dev/execution-id";
/// Label of volumes: `transient` or `persistent`.
pub const LABEL_LIFETIME: &str = "hype.dev/lifetime";
/// Label of volumes: the requested storage class.
pub const LABEL_STORAGE_CLASS: &str = "hype.dev/storage-class";
/// Label of volumes: the requested size.
pub const LABEL_SIZE: &str = "hype.dev/size";
/// Label: the process that created the object and keeps it alive, as
/// [`crate::owner::Owner`]'s text form (`<pid>.<start>.<boot>@<host>`), so
/// that the next submitter or `hype gc` can tell a dead session's objects.
pub const LABEL_OWNER: &str = "hype.dev/owner";
/// The value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "hype";

pub use crate::ids::label_value;

/// The labels of everything a session creates, as any map type.
pub(crate) fn session_labels<M: FromIterator<(String, String)>>(session: &str) -> M {
    [
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
        (LABEL_SESSION.to_owned(), label_value(session)),
    ]
    .into_iter()
    .collect()
}

/// The labels of an object that outlives its session (a persistent volume).
pub(crate) fn managed_labels<M: FromIterator<(String, String)>>() -> M {
    [(LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned())]
        .into_iter()
        .collect()
}

/// The selector terms of a session's objects: `key=value` each.
pub(crate) fn session_selector_terms(session: &str) -> [String; 2] {
    [
        format!("{LABEL_MANAGED_BY}={MANAGED_BY}"),
        format!("{LABEL_SESSION}={}", label_value(session)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::RunEnvironment;

    /// A user's label or annotation may not set any key hype sets: the
    /// environment's rule covers them all.
    #[test]
    fn users_cannot_set_hypes_keys() {
        for key in [
            LABEL_MANAGED_BY,
            LABEL_SESSION,
            LABEL_FUNCTION,
            LABEL_FUNCTION_ID,
            LABEL_EXECUTION_ID,
            LABEL_LIFETIME,
            LABEL_STORAGE_CLASS,
            LABEL_SIZE,
            LABEL_OWNER,
            "hype.dev/execution-marker",
        ] {
            let env = RunEnvironment::local()
                .with_labels([(key, "x")])
                .with_annotations([(key, "x")]);
            let err = env.validate().unwrap_err().to_string();
            assert!(
                err.contains(&format!("label {key} is hype's own"))
                    && err.contains(&format!("annotation {key} is hype's own")),
                "{key}: {err}"
            );
        }
    }
}
