//! hype's command-line programs.
//!
//! - `hype-run` (`src/bin/hype-run.rs`) is the generic launcher of env
//!   images: hype-runtime's entry with no remote functions of its own, and
//!   `gs://` staging.
//! - `hype` (`src/bin/hype.rs`) looks after what hype runs: `hype gc`
//!   removes what dead sessions left (Kubernetes Leases, pods and claims;
//!   Docker containers and volumes; old staged blobs), `hype ps` lists
//!   executions, `hype logs` prints one's log. [`cli`] reads its command
//!   line and runs it; [`kube`], [`docker`] and [`staging`] do the work
//!   for each place; [`report`] and [`table`] write what it found;
//!   [`duration`] reads and writes `30s`, `10m`, `2h`, `7d`.

pub mod cli;
pub mod docker;
pub mod duration;
pub mod kube;
pub mod report;
pub mod staging;
pub mod table;
