//! hype's command, `hype` (`src/bin/hype.rs`), which looks after what
//! hype runs: `hype gc` removes what dead sessions left (Kubernetes Leases,
//! pods and claims; Docker containers and volumes; old staged blobs),
//! `hype ps` lists executions, `hype logs` prints one's log, `hype
//! timeline` draws a fan-out's trace file. [`cli`] reads
//! its command line and runs it; [`kube`], [`docker`] and [`staging`] do
//! the work for each place; [`report`] and [`table`] write what it found;
//! [`timeline`] reads and draws trace files;
//! [`duration`] reads and writes `30s`, `10m`, `2h`, `7d`.
//!
//! The generic launcher of env images, `hype-run`, is not here: it is the
//! package `hype-run`, which links none of this command's clients (Docker,
//! Kubernetes, clap).

pub mod cli;
pub mod docker;
pub mod duration;
pub mod kube;
pub mod report;
pub mod staging;
pub mod table;
pub mod timeline;

/// What is left of an execution's log once its pod or container is gone:
/// `hype logs` says it when it finds none, and in its `--help`.
pub const LOGS_GONE: &str = "\
Once a call ends, hype deletes its pod (or removes its container, unless
DockerCluster::keep_containers) and the log goes with it: hype keeps no
copy. What is left: the submitter's stderr and its `tracing` events
(target hype::remote), which carried each line of the output prefixed
with the execution ID (every call's under LogMode::Stream, the default
for one call; failed calls' only under LogMode::OnFailure, the default
for fan-outs; none under LogMode::Off); the error of a call whose
execution wrote no outcome, which ends with the last lines of its
stderr; and the cluster's own log collection if it has one (Cloud
Logging on GKE).";
