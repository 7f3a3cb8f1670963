//! hype's command, `hype` (`src/bin/hype.rs`), which looks after what
//! hype runs: `hype gc` removes what dead sessions left (Kubernetes Leases,
//! pods and claims; Docker containers and volumes; old staged blobs),
//! `hype ps` lists executions, `hype logs` prints one's log. [`cli`] reads
//! its command line and runs it; [`kube`], [`docker`] and [`staging`] do
//! the work for each place; [`report`] and [`table`] write what it found;
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
