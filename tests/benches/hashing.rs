//! What a big debug build pays for being shipped: SHA-256 of a ≥150 MB
//! executable, and the first and later calls of a program that large on
//! the Kubernetes double (pods as processes), each against a baseline
//! measured in the same run.
//!
//! 1. **Hashing** `hype::executable::hash_file` (the code path of the
//!    submitter and of the launcher's "is this me?") over a 160 MiB
//!    executable, against reading the same file (page-cached) in the same
//!    chunks. Target: a 188 MB executable (the size of the issue's debug
//!    build) hashes within 0.5 s.
//! 2. **Calls** as the issue's user ran them: the pods' image runs the
//!    program itself as `hype-run`, so every pod asks "is this me?"
//!    (length, then SHA-256) and the first call also hashes and stages it.
//!    The 160 MiB executable (the dev-profile test worker padded to that
//!    size: the same code, only bigger) against the unpadded worker
//!    (51 MiB, standing in for a small release build), a fresh copy (a
//!    new digest) each round. Targets: the first call's overhead within
//!    2 s of the small one's, a later call's within 0.5 s.
//!
//! Built in the dev profile (`cargo bench --profile dev --bench hashing`)
//! this is a debug build's code path; to see what a user's debug build of
//! hype paid before (their profile has no opt-level override for `sha2`),
//! add `--config 'profile.dev.package.sha2.opt-level=0'`.
//! `HYPE_BENCH_QUICK=1` for fewer samples.

mod measure;

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hype::{RunEnvironment, Submitter};
use hype_runtime::__tools::hash_file;
use hype_tests::IMAGE;
use hype_tests::backends::KubeCluster;
use hype_tests::kube_double::{KubeTestServer, KubeletOptions};
use hype_tests::math;
use measure::{interleave, interleave_blocking, quick, ratio, rounds_text, verdict};

const MIB: u64 = 1024 * 1024;
/// The padded executable's size.
const BIG: u64 = 160 * MIB;
/// The issue's debug build, in bytes.
const ISSUE_BUILD: f64 = 188e6;

fn worker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hype-test-worker"))
}

/// A copy of the worker, padded with bytes the loader ignores to `len`
/// (at least its own length), with `seed` in its last bytes so that each
/// copy has its own digest.
fn copy_of_worker(dir: &Path, len: u64, seed: u64) -> PathBuf {
    let mut bytes = std::fs::read(worker()).unwrap();
    let target = (len as usize).max(bytes.len() + 8);
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    while bytes.len() < target - 8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.push(x as u8);
    }
    bytes.extend_from_slice(&seed.to_le_bytes());
    let path = dir.join(format!("worker-{len}-{seed}"));
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().unwrap();
    let (hash_ok, hash_line) = hashing(dir.path());
    let (calls_ok, calls_line) = runtime.block_on(calls(dir.path()));
    verdict(hash_ok && calls_ok, &format!("{hash_line}; {calls_line}"));
}

fn hashing(dir: &Path) -> (bool, String) {
    let big = copy_of_worker(dir, BIG, 0);
    let (warmup, samples) = if quick() { (1, 3) } else { (1, 7) };
    let [hashed, read] = interleave_blocking(
        ["hash_file (SHA-256)", "read the same file"],
        warmup,
        samples,
        |turn| {
            let start = Instant::now();
            if turn.side == 0 {
                let digest = hash_file(&big).unwrap();
                assert_eq!(digest.len, BIG);
            } else {
                let mut file = std::fs::File::open(&big).unwrap();
                let mut buf = vec![0u8; 256 * 1024];
                while file.read(&mut buf).unwrap() > 0 {}
            }
            start.elapsed()
        },
    );
    let _ = std::fs::remove_file(&big);
    let rate = BIG as f64 / hashed.median().as_secs_f64();
    let issue = ISSUE_BUILD / rate;
    println!(
        "1. hashing a {} MiB executable ({}; built with opt-level {})",
        BIG / MIB,
        rounds_text(2, warmup, samples),
        if cfg!(debug_assertions) {
            "0 (dev)"
        } else {
            "3 (release)"
        }
    );
    println!("  {}", hashed.line());
    println!("  {}", read.line());
    println!(
        "  SHA-256 {:.0} MB/s, {:.2}x the time of a read; a 188 MB executable: {issue:.2} s (target <= 0.5 s)",
        rate / 1e6,
        ratio(&hashed, &read)
    );
    (
        issue <= 0.5,
        format!(
            "SHA-256 {:.0} MB/s, 188 MB in {issue:.2} s (<= 0.5 s)",
            rate / 1e6
        ),
    )
}

async fn calls(dir: &Path) -> (bool, String) {
    let (warmup, samples) = if quick() { (0, 3) } else { (1, 5) };
    let mut firsts = [
        measure::Samples::new("first call, 160 MiB executable"),
        measure::Samples::new("first call, 51 MiB executable"),
    ];
    let [big_later, small_later] = interleave(
        [
            "later call, 160 MiB executable",
            "later call, 51 MiB executable",
        ],
        warmup,
        samples,
        async |turn| {
            let len = if turn.side == 0 { BIG } else { 0 };
            let exe = copy_of_worker(dir, len, 1 + turn.round as u64);
            // The pods' image runs the program itself as `hype-run`.
            let server = KubeTestServer::start(KubeletOptions::new().image(IMAGE, exe.clone()));
            let cache = dir.join(format!("cache-{}-{}", turn.round, turn.side));
            let env =
                RunEnvironment::new(IMAGE).with_env("HYPE_CACHE_DIR", cache.display().to_string());
            let start = Instant::now();
            let submitter = Submitter::builder(KubeCluster::from_client(server.client()))
                .staging(format!("file://{}", server.staging_dir().display()))
                .executable(&exe)
                .build()
                .await
                .expect("submitter");
            assert_eq!(submitter.run(math::add(1, 2), &env).await.unwrap(), 3);
            let first = start.elapsed();
            let start = Instant::now();
            assert_eq!(submitter.run(math::add(2, 2), &env).await.unwrap(), 4);
            let later = start.elapsed();
            submitter.close().await.unwrap();
            drop(server);
            let _ = std::fs::remove_file(&exe);
            let _ = std::fs::remove_dir_all(&cache);
            if turn.recorded {
                firsts[turn.side].times.push(first);
            }
            later
        },
    )
    .await;
    let first_over = firsts[0].median().as_secs_f64() - firsts[1].median().as_secs_f64();
    let later_over = big_later.median().as_secs_f64() - small_later.median().as_secs_f64();
    println!(
        "2. calls on the Kubernetes double, the image running the program itself ({})",
        rounds_text(2, warmup, samples)
    );
    for samples in [&firsts[0], &firsts[1], &big_later, &small_later] {
        println!("  {}", samples.line());
    }
    println!(
        "  the big executable's overhead: first call +{first_over:.3} s (target <= 2 s), later call +{later_over:.3} s (target <= 0.5 s)"
    );
    (
        first_over <= 2.0 && later_over <= 0.5,
        format!("first call +{first_over:.2} s (<= 2 s), later call +{later_over:.2} s (<= 0.5 s)"),
    )
}
