//! The runtime of [hype](https://docs.rs/hype): everything that runs.
//! Use it through the `hype` crate, which re-exports what users name.
//!
//! The modules follow the path of a call, in order:
//!
//! 1. [`remote`]: `#[hype::remote]` makes a function return a lazy
//!    [`Call`] of its generated `{Name}Args` ([`RemoteFn`]).
//! 2. [`registry`]: every remote function of the binary, by ID
//!    (`Registration`), collected at link time.
//! 3. `invoke`: one registered function run on encoded arguments: decode,
//!    call, catch the panic, encode the outcome.
//! 4. [`entry`]: `hype-run` itself: its command line, the termination
//!    message, its exit codes.
//! 5. [`wire`]: envelopes, values, failures and references: the protocol
//!    both sides speak (`docs/protocol.md`).
//! 6. [`staging`]: where payloads too large to travel inline wait
//!    (`file://`, `gs://`); `google` holds the credentials and REST
//!    helpers Cloud Storage and GKE share.
//! 7. [`backend`]: where a call runs ([`Cluster`], one folder per backend:
//!    `local`, `docker`, `kubernetes`); each runner starts `hype-run` there
//!    in the call's [`RunEnvironment`].
//! 8. [`submitter`]: [`Submitter::run`] encodes the call, stages it when
//!    large, hands it to its runner, and turns the outcome into the typed
//!    result or an [`Error`]; [`Call::run_on_cluster`] uses the default
//!    submitter.
//!
//! Below them, used by all: [`config`] (every `HYPE_*` variable),
//! [`environment`] and [`mounts`] (what a call runs with), [`error`],
//! [`ids`] (names), [`bytes`] (large binary payloads), [`owner`] (this
//! process as the owner of what it creates, and whether an owner lives),
//! [`interrupt`] (Ctrl-C and SIGTERM close every submitter).
//!
//! ## Naming options
//!
//! One convention everywhere:
//!
//! - A value built up and shared by many calls, [`RunEnvironment`], adds
//!   or replaces one part with `with_*` and returns a new value:
//!   `env.with_env("RUST_LOG", "info")`, `.with_secret(…)`,
//!   `.with_timeout(…)`.
//! - Every other option, on a builder or a description consumed to make
//!   something (`KubeCluster`, `DockerCluster`, [`LocalCluster`],
//!   [`submitter::SubmitterBuilder`], `GcsStaging::builder`,
//!   [`VolumeRequest`]), is named after its setting and takes its value:
//!   `.namespace("batch")`, `.pending_timeout(d)`, `.staging(uri)`.
//! - A switch takes a `bool`, never nothing: `.keep_pods(true)`,
//!   `.keep_on_exit(true)`; what it reads back is `is_*`
//!   ([`VolumeRequest::is_kept_on_exit`]).

pub mod backend;
pub mod bytes;
pub mod config;
pub mod entry;
pub mod environment;
pub mod error;
pub mod executable;
pub mod fanout;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "gcs")]
pub(crate) mod google;
pub mod ids;
pub mod interrupt;
pub(crate) mod invoke;
pub(crate) mod launch;
pub mod logs;
#[doc(hidden)]
pub mod macro_support;
pub mod mounts;
pub mod owner;
mod process;
pub mod registry;
pub mod remote;
#[cfg(any(feature = "kubernetes", feature = "docker", feature = "gcs"))]
pub(crate) mod retry;
pub(crate) mod sha256;
pub mod staging;
pub mod submitter;
pub mod wire;

mod cleanup;
mod clock;

#[cfg(feature = "docker")]
pub use backend::docker::DockerCluster;
#[cfg(feature = "gke")]
pub use backend::kubernetes::ContainerEngineCluster;
#[cfg(feature = "kubernetes")]
pub use backend::kubernetes::KubeCluster;
pub use backend::{Cluster, LocalCluster};
pub use bytes::Bytes;
pub use entry::dispatch_if_hype_run;
pub use environment::{
    BasePod, DEFAULT_RETRY_BACKOFF, DEFAULT_TIMEOUT, MAX_RETRY_BACKOFF, RunEnvironment, Secret,
    VolumeLifetime, VolumeMount, VolumeRequest,
};
pub use error::{Attempt, Error, ErrorKind, ErrorSource, Result};
pub use fanout::{DEFAULT_CONCURRENCY, Map, TryMap};
/// `google-cloud-auth`, for credentials given in code.
#[cfg(feature = "gcs")]
pub use google_cloud_auth;
pub use logs::LogMode;
pub use mounts::mount_path;
pub use remote::{Call, Invoke, RemoteFn, Wire};
pub use staging::LocalStaging;
pub use staging::Staging;
#[cfg(feature = "gcs")]
pub use staging::{GcsStaging, GcsStagingBuilder};
pub use submitter::{IntoStaging, Submitter, SubmitterBuilder};
