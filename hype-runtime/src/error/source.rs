//! [`ErrorSource`]: the underlying error of an [`Error`](super::Error),
//! shared so that `Error` stays `Clone`.

use std::sync::Arc;

/// The underlying error of an [`Error`](super::Error) (a `kube::Error`, a
/// `bollard::errors::Error`, the Cloud Storage client's, an I/O error),
/// shared so that `Error` stays `Clone`. It is what
/// [`std::error::Error::source`] returns, unwrapped, so it downcasts to its
/// own type:
///
/// ```
/// # fn demo(err: &hype_runtime::Error) {
/// if let Some(io) = std::error::Error::source(err).and_then(|s| s.downcast_ref::<std::io::Error>()) {
///     eprintln!("I/O: {io}");
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct ErrorSource(Arc<dyn std::error::Error + Send + Sync>);

impl ErrorSource {
    /// The underlying error.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

// Not `Error` itself: thiserror's `#[source]` then reaches the error
// inside through `Deref`, and `source()` is that error, not this wrapper.
impl std::ops::Deref for ErrorSource {
    type Target = dyn std::error::Error + Send + Sync;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Debug for ErrorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for ErrorSource {
    fn from(err: E) -> ErrorSource {
        ErrorSource(Arc::new(err))
    }
}
