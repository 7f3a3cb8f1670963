//! What hype's own tools need of the runtime, in one place: the `hype`
//! command (`hype ps`, `logs`, `gc`), the `hype-run` launcher, the tests
//! and their doubles, the benchmarks and the fuzz targets. The crate
//! exposes it as the hidden `hype_runtime::__tools`; it is not a public
//! API and may change with any release.

/// `hype-run`'s entry points: the launcher's `main`, and one call run in
/// this process (for test doubles that play a pod).
pub use crate::hype_run::{InProcessRun, execute_in_process, launcher_main};

/// The labels every container backend puts on what it creates.
#[cfg(any(feature = "docker", feature = "kubernetes"))]
pub use crate::backend::labels;

/// The Docker engine connection and what dead sessions left there.
#[cfg(feature = "docker")]
pub use crate::backend::docker::{engine, reap};

/// The name of the container that runs `hype-run` in every pod.
#[cfg(feature = "kubernetes")]
pub use crate::backend::kubernetes::CONTAINER;

/// What a staging store holds, for `hype gc --staging`.
pub use crate::staging::listing;

/// The executable shipped with calls: its digest.
pub use crate::executable::{Digest, hash_file};

/// This process as the owner of what it creates, and whether an owner
/// still runs.
pub use crate::owner::{Liveness, Owner};

/// What `HYPE_CLUSTER` names.
pub use crate::config::ClusterSpec;

/// Parsers that are not public, for the fuzz targets.
pub mod fuzzing {
    pub use crate::fuzzing::*;
}
