//! # hype: run Rust functions in containers on Kubernetes
//!
//! Mark a function with [`remote`], call it to get a lazy [`Call`], and send
//! the call somewhere: a pod on a Kubernetes cluster, a container on a local
//! Docker engine, or — the embedded default, with nothing configured — a
//! child process of the same binary. The typed result, or a precise
//! [`Error`], comes back.
//!
//! ```no_run
//! use hype::RunEnvironment;
//!
//! #[hype::remote]
//! fn word_count(text: String) -> usize {
//!     text.split_whitespace().count()
//! }
//!
//! #[hype::main]
//! async fn main() -> Result<(), hype::Error> {
//!     let n = word_count("a b c".into())
//!         .run_on_cluster(&RunEnvironment::local())
//!         .await?;
//!     assert_eq!(n, 3);
//!     Ok(())
//! }
//! ```
//!
//! The binary is also its own container entrypoint: invoked as `hype-run`
//! (argv\[0\] basename or first argument), [`main`] executes the call it is
//! given instead of the program.
//!
//! ## Macro options
//!
//! - `#[hype::remote(name = "jobs::word_count")]`: a stable ID instead of
//!   `module_path::fn_name`.
//! - `#[hype::remote(crate = "my_crate::hype")]` and
//!   `#[hype::main(crate = "my_crate::hype")]`: the path to hype for a
//!   crate that re-exports it, as `tokio::main`'s `crate` option; generated
//!   code names that path instead of `::hype`.
//! - `#[hype::main(interrupts = false)]`: leave SIGINT and SIGTERM to the
//!   program; [`main`] then installs no [`interrupt`] handling (and nothing
//!   else in hype installs it unasked).
//!
//! ## Where calls run
//!
//! [`Call::run_on_cluster`] uses the process-wide default [`Submitter`]: the
//! one given to [`Submitter::set_default`], else the one `HYPE_CLUSTER` and
//! `HYPE_STAGING` describe, else local child processes with temporary
//! staging. [`Submitter::run`] sends a call to a submitter of your own, and
//! [`Call::run_here`] runs it in this process after the same serialisation
//! round trip (for unit tests).
//!
//! ## Features
//!
//! - `kubernetes`: pods on Kubernetes (`KubeCluster`).
//! - `gcs`: Google Cloud Storage staging (`gs://bucket/prefix`, `GcsStaging`),
//!   with any runner; no Kubernetes crates of its own.
//! - `gke`: pods on GKE clusters (`ContainerEngineCluster`); implies
//!   `kubernetes` and `gcs`.
//! - `docker`: containers on a local Docker engine (`DockerCluster`).
//!
//! ## The wire
//!
//! Arguments and results are MessagePack (`rmp-serde`) inside versioned
//! envelopes; see [`wire`] and `docs/protocol.md` in the repository.
//!
//! ## Naming options
//!
//! One convention everywhere: [`RunEnvironment`], a value shared by many
//! calls, adds or replaces a part with `with_*` (`with_env`, `with_secret`,
//! `with_timeout`) and returns a new value. Every other option, on a
//! builder or description (`KubeCluster`, `DockerCluster`, [`LocalCluster`],
//! [`SubmitterBuilder`], `GcsStaging::builder`, [`VolumeRequest`], [`Gpu`]), is named
//! after its setting and takes its value: `.namespace("batch")`,
//! `.staging(uri)`. A switch takes a `bool`: `.keep_pods(true)`,
//! `.keep_on_exit(true)`.

#[doc(inline)]
pub use hype_macros::{main, remote};

#[doc(inline)]
pub use hype_runtime::{
    Admission, Attempt, AttemptPhases, BasePod, Bytes, Call, Cluster, DEFAULT_CONCURRENCY,
    DEFAULT_RUN_AS_USER, DEFAULT_TIMEOUT, Error, ErrorKind, ErrorSource, FunctionDefaults, Gpu,
    Interval, IntoStaging, LocalCluster, LocalStaging, LogMode, Map, Phase, Phases, RemoteFn,
    Result, RunEnvironment, SPOT_DEFAULT_RETRIES, Secret, Staging, Submitter, SubmitterBuilder,
    Summary, TaintEffect, Toleration, TryMap, VolumeLifetime, VolumeMount, VolumeRequest, Wire,
    Workers, dispatch_if_hype_run, mount_path,
};

/// Fan-out's parts: [`Map`], [`TryMap`] and the future an awaited
/// `TryMap` is.
pub use hype_runtime::fanout;

/// The remote output streamed back: [`LogMode`] and its limits.
pub use hype_runtime::logs;

#[cfg(feature = "kubernetes")]
#[doc(inline)]
pub use hype_runtime::KubeCluster;

#[cfg(feature = "docker")]
#[doc(inline)]
pub use hype_runtime::DockerCluster;

#[cfg(feature = "gke")]
#[doc(inline)]
pub use hype_runtime::ContainerEngineCluster;

#[cfg(feature = "gcs")]
#[doc(inline)]
pub use hype_runtime::{GcsStaging, GcsStagingBuilder};

/// `google-cloud-auth`, for credentials given in code
/// (`ContainerEngineCluster::credentials`, `GcsStaging::builder`).
#[cfg(feature = "gcs")]
pub use hype_runtime::google_cloud_auth;

/// The protocol between a submitter and `hype-run`: envelopes, values,
/// failures, references, exit codes. What tools need of the wire format;
/// `docs/protocol.md` specifies it.
#[doc(inline)]
pub use hype_runtime::wire;

/// Ctrl-C and SIGTERM: `#[hype::main]` installs the handling that cancels
/// calls in flight and closes every submitter before exiting (unless given
/// `interrupts = false`); programs without the attribute call
/// [`interrupt::install`] first thing in `main`.
pub use hype_runtime::interrupt;

/// `serde_bytes::ByteBuf`: bytes that travel as one MessagePack `bin`.
/// [`Bytes`] does the same with buffers tuned for large payloads.
pub use serde_bytes::ByteBuf;

/// The `serde` hype was built with, for deriving `Serialize` and
/// `Deserialize` on argument and result types without a direct dependency:
/// `#[derive(hype::serde::Serialize, hype::serde::Deserialize)]` with
/// `#[serde(crate = "hype::serde")]`.
pub use hype_runtime::__private::serde;

/// What the code `#[hype::remote]` and `#[hype::main]` generate names. Not
/// a public API.
#[doc(hidden)]
pub use hype_runtime::__private;
