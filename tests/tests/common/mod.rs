//! Shared setup of the integration tests: submitters whose calls run in
//! the `hype-test-worker` binary, in throw-away directories.

#![allow(dead_code)]

pub mod backend;

use std::path::{Path, PathBuf};

use hype::{LocalCluster, Submitter};

/// The worker binary Cargo built for these tests.
pub fn worker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hype-test-worker"))
}

/// A submitter running calls in the worker, with its own staging, secrets
/// and volumes directories under one temporary directory.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub submitter: Submitter,
}

impl Setup {
    pub async fn new() -> Setup {
        Setup::with_program(worker()).await
    }

    pub async fn with_program(program: PathBuf) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = LocalCluster::new()
            .program(program)
            .secrets_dir(dir.path().join("secrets"))
            .volumes_dir(dir.path().join("volumes"));
        let staging = format!("file://{}", dir.path().join("staging").display());
        let submitter = Submitter::new(staging, cluster).await.expect("submitter");
        Setup { dir, submitter }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn staging_dir(&self) -> PathBuf {
        self.path("staging")
    }

    /// Files under `dir`, recursively.
    pub fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            if let Ok(entries) = std::fs::read_dir(&d) {
                for e in entries.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else {
                        out.push(p);
                    }
                }
            }
        }
        out.sort();
        out
    }
}
