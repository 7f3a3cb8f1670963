//! The runtime of [hype](https://docs.rs/hype): everything that runs.
//! Use it through the `hype` crate, which re-exports what users need.
//!
//! A call's path through the modules:
//!
//! 1. [`remote`]: `#[hype::remote]` makes a function return a [`Call`].
//! 2. [`submitter`]: [`Submitter::run`] encodes the arguments ([`wire`]),
//!    stages them when large ([`staging`]), and hands the call to a runner.
//! 3. [`runner`]: a runner ([`runner::local`], later Docker and Kubernetes)
//!    starts `hype-run` where the call should run, in the
//!    [`RunEnvironment`] it was given ([`environment`], [`mounts`]).
//! 4. [`entry`]: `hype-run` finds the function in the [`registry`], runs it
//!    and writes the outcome.
//! 5. Back in the submitter, the outcome becomes the typed result or an
//!    [`Error`].

pub mod bytes;
pub mod cluster;
pub mod entry;
pub mod environment;
pub mod error;
pub mod ids;
#[doc(hidden)]
pub mod macro_support;
pub mod mounts;
pub mod registry;
pub mod remote;
pub mod runner;
pub mod staging;
pub mod submitter;
pub mod wire;

mod cleanup;

pub use bytes::Bytes;
#[cfg(feature = "gcs")]
pub use cluster::ContainerEngineCluster;
#[cfg(feature = "docker")]
pub use cluster::DockerCluster;
#[cfg(feature = "kubernetes")]
pub use cluster::KubeCluster;
pub use cluster::{Cluster, ClusterSpec, Connection, LocalCluster};
pub use entry::dispatch_if_hype_run;
pub use environment::{
    BasePod, DEFAULT_TIMEOUT, RunEnvironment, Secret, VolumeLifetime, VolumeMount, VolumeRequest,
};
pub use error::{Error, Result};
/// `google-cloud-auth`, for credentials given in code.
#[cfg(feature = "gcs")]
pub use google_cloud_auth;
pub use mounts::mount_path;
pub use registry::{Registration, Registry};
pub use remote::{Call, Invoke, RemoteFn, Wire};
pub use runner::Runner;
#[cfg(feature = "gcs")]
pub use staging::GcsStaging;
pub use staging::Staging;
pub use submitter::Submitter;
