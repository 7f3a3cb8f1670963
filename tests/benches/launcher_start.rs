//! How long the generic launcher `hype-run` takes from its start until the
//! executable a call names runs, when that executable is already in the
//! launcher's cache and recorded as verified: what every call after the
//! first pays on a pod of the generic env image.
//!
//! Each sample starts a process and reads `CLOCK_MONOTONIC` just before
//! the spawn; the executable the call names (a copy of this benchmark,
//! staged in `file://` staging) reads the same clock as the first thing its
//! `main` does, writes it to a file and exits. Sides, interleaved and
//! rotating which runs first:
//!
//! - **direct** (the baseline): the executable started by hand as the
//!   launcher would start it (`hype-run <call>`, `HYPE_LAUNCHED` set), so
//!   the kernel's exec and the executable's own loading are measured alone;
//! - **each launcher**: `<launcher> hype-run <call>` with a warm cache
//!   (`HYPE_CACHE_DIR` of its own, filled in the warm-up rounds). By
//!   default the tests' `hype-launcher` (a dev build with every feature);
//!   `HYPE_BENCH_LAUNCHERS=name=/path,name=/path` names others instead, for
//!   instance two release builds to compare (docs/benchmarks.md).
//!
//! Reported per launcher: the start-to-exec time, its share over the
//! direct start, and the whole run (until the launcher exits). Target: the
//! launcher's share over the direct start is at most 10 ms (a call's
//! overhead on a pod; the Kubernetes runner's own costs per call are of
//! that order). With two or more launchers, the ratio of each one's
//! start-to-exec (and share) to the first's is printed too.
//!
//! `cargo bench --bench launcher_start` (`-- --quick` or
//! `HYPE_BENCH_QUICK=1` for fewer samples).

mod measure;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hype::wire::{self, BlobRef, BuildInfo, CallEnvelope, Payload, Reference};
use hype::{LocalStaging, RemoteFn, Staging};
use hype_runtime::__tools::hash_file;
use hype_tests::math::AddArgs;
use measure::{Samples, order, quick, verdict};

/// Set for the executable the call names: where it writes the clock's
/// reading at the start of its `main`.
const STAMP: &str = "HYPE_BENCH_STAMP";

const ADD: &str = "hype_tests::math::add";

/// The launcher's share over the direct start that the target allows.
const TARGET_SHARE: Duration = Duration::from_millis(10);

fn main() {
    // First, before anything else runs: this process may be the executable
    // a launcher started.
    if let Some(path) = std::env::var_os(STAMP) {
        let now = monotonic_nanos();
        std::fs::write(path, now.to_string()).expect("write the stamp");
        return;
    }
    bench();
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of the
/// machine, unlike `Instant`, which cannot cross a process boundary.
fn monotonic_nanos() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists on
    // every Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// A launcher to measure: its name in the report and its path.
struct Launcher {
    name: &'static str,
    path: PathBuf,
}

/// The launchers of `HYPE_BENCH_LAUNCHERS` (`name=/path,…`), else the
/// tests' own.
fn launchers() -> Vec<Launcher> {
    match std::env::var("HYPE_BENCH_LAUNCHERS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|item| {
                let (name, path) = item
                    .split_once('=')
                    .unwrap_or_else(|| panic!("HYPE_BENCH_LAUNCHERS: {item:?} is not name=/path"));
                let path = PathBuf::from(path);
                assert!(path.is_file(), "HYPE_BENCH_LAUNCHERS: no file {path:?}");
                Launcher {
                    name: Box::leak(name.to_owned().into_boxed_str()),
                    path,
                }
            })
            .collect(),
        _ => vec![Launcher {
            name: "hype-launcher (tests, dev build)",
            path: PathBuf::from(env!("CARGO_BIN_EXE_hype-launcher")),
        }],
    }
}

/// A call of `add(1, 2)` naming `blob` as its executable, staged at
/// `location`.
fn call_naming(blob: &BlobRef, location: &str) -> String {
    let payload = Payload::Inline(wire::Bytes::from(
        wire::encode_value(ADD, "arguments", &AddArgs { a: 1, b: 2 }).unwrap(),
    ));
    let envelope = CallEnvelope::new(ADD, AddArgs::SIGNATURE, payload)
        .with_build(BuildInfo::current())
        .with_staging(location)
        .with_executable(blob.clone());
    Reference::Inline(wire::encode_call(&envelope).unwrap()).to_string()
}

/// One process run: how long from the spawn until the executable's
/// `main` ran, and until the process ended.
struct Run {
    to_exec: Duration,
    whole: Duration,
}

/// Runs `program hype-run <call>` with `vars`, the stamp file `stamp`, and
/// times it.
fn run(program: &Path, call: &str, dir: &Path, vars: &[(&str, OsString)], stamp: &Path) -> Run {
    let _ = std::fs::remove_file(stamp);
    let mut command = Command::new(program);
    command
        .arg("hype-run")
        .arg(call)
        .env("HYPE_EXECUTION_ID", "hype-bench-1")
        .env("HYPE_TERMINATION_MESSAGE_PATH", dir.join("termination-log"))
        .env(STAMP, stamp)
        .envs(vars.iter().map(|(k, v)| (k, v)));
    let start = monotonic_nanos();
    let status = command.status().expect("start");
    let end = monotonic_nanos();
    assert!(status.success(), "{program:?} failed: {status}");
    let stamped: u128 = std::fs::read_to_string(stamp)
        .unwrap_or_else(|err| panic!("{program:?} did not start the executable: {err}"))
        .parse()
        .unwrap();
    Run {
        to_exec: Duration::from_nanos((stamped - start) as u64),
        whole: Duration::from_nanos((end - start) as u64),
    }
}

fn bench() {
    let dir = tempfile::tempdir().unwrap();
    let staging = LocalStaging::new(dir.path().join("staging")).unwrap();
    let exe = std::env::current_exe().unwrap();
    let digest = hash_file(&exe).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let blob = runtime.block_on(staging.put_file(&exe, &digest)).unwrap();
    let call = call_naming(&blob, staging.location());
    let stamp = dir.path().join("stamp");
    let launchers = launchers();

    let (warmup, samples) = if quick() { (3, 20) } else { (10, 200) };
    // Side 0 is the direct start; side k is launcher k - 1, each with a
    // cache of its own (filled by its first run, a warm-up round).
    let sides = launchers.len() + 1;
    let mut to_exec: Vec<Samples> = std::iter::once("direct start of the executable")
        .chain(launchers.iter().map(|l| l.name))
        .map(Samples::new)
        .collect();
    let mut whole: Vec<Samples> = to_exec.iter().map(|s| Samples::new(s.name)).collect();
    let direct_vars = vec![("HYPE_LAUNCHED", OsString::from(&blob.sha256))];
    let launcher_vars: Vec<Vec<(&str, OsString)>> = (0..launchers.len())
        .map(|i| {
            vec![(
                "HYPE_CACHE_DIR",
                dir.path().join(format!("cache-{i}")).into_os_string(),
            )]
        })
        .collect();
    for round in 0..warmup + samples {
        for side in order(round, sides) {
            let measured = if side == 0 {
                // The copy the launchers run is the staged blob: start
                // that same file.
                let copy = staging.root().join("blobs/sha256").join(&blob.sha256);
                std::fs::set_permissions(
                    &copy,
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                )
                .unwrap();
                run(&copy, &call, dir.path(), &direct_vars, &stamp)
            } else {
                let launcher = &launchers[side - 1];
                run(
                    &launcher.path,
                    &call,
                    dir.path(),
                    &launcher_vars[side - 1],
                    &stamp,
                )
            };
            if round >= warmup {
                to_exec[side].times.push(measured.to_exec);
                whole[side].times.push(measured.whole);
            }
        }
    }

    println!(
        "launcher start to exec of a cached, verified {} MiB executable ({samples} samples per side, \
         interleaved, rotating which side runs first, after {warmup} warm-up rounds)",
        digest.len / (1024 * 1024)
    );
    println!(" start to exec:");
    for s in &to_exec {
        println!("  {}", s.line());
    }
    println!(" whole run (until the process ended):");
    for s in &whole {
        println!("  {}", s.line());
    }
    let direct = to_exec[0].median();
    let share = |s: &Samples| s.median().saturating_sub(direct);
    let mut met = true;
    let mut summary = Vec::new();
    for s in &to_exec[1..] {
        let own = share(s);
        println!(
            " {}: start to exec {:.3?}, {:.3?} over the direct start (target <= {TARGET_SHARE:?})",
            s.name,
            s.median(),
            own
        );
        met &= own <= TARGET_SHARE;
        summary.push(format!("{} +{own:.3?}", s.name));
    }
    for i in 2..sides {
        println!(
            " {} / {}: start to exec {:.2}x, share over the direct start {:.2}x, whole run {:.2}x",
            to_exec[i].name,
            to_exec[1].name,
            measure::ratio(&to_exec[i], &to_exec[1]),
            share(&to_exec[i]).as_secs_f64() / share(&to_exec[1]).as_secs_f64(),
            measure::ratio(&whole[i], &whole[1]),
        );
    }
    verdict(
        met,
        &format!(
            "launcher share over the direct start (<= {TARGET_SHARE:?}): {}",
            summary.join(", ")
        ),
    );
}
