//! Shipping the program with its calls: images that hold only a generic
//! launcher (`hype-launcher`, the same `main` as the `hype-run` package's,
//! with none of the test functions) run functions they do not contain, on
//! the Docker runner and on the Kubernetes double in both of its modes;
//! the launcher's own failures (a missing, corrupt or unstartable
//! executable) come back as their own errors; unshippable executables are
//! refused when the submitter is built; and the executable is staged once.
//!
//! Without a Docker engine the Docker tests skip with a loud message,
//! unless `HYPE_REQUIRE_DOCKER=1` (as `.ci/run` sets).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use hype::wire::{self, BlobRef, BuildInfo, CallEnvelope, Payload, Reference};
use hype::{Error, LocalCluster, LocalStaging, RemoteFn, RunEnvironment, Staging, Submitter};
use hype_tests::LAUNCHER_IMAGE;
use hype_tests::backends::{DockerCluster, KubeCluster};
use hype_tests::docker_image;
use hype_tests::kube_double::{KubeTestServer, KubeletOptions};
use hype_tests::math::{self, AddArgs};

const ADD: &str = "hype_tests::math::add";

fn launcher() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hype-launcher"))
}

/// The premise of every test here: the launcher has no functions.
#[test]
fn the_launcher_holds_no_remote_functions() {
    let output = std::process::Command::new(launcher())
        .args(["hype-run", "--list"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    let worker = std::process::Command::new(common::worker())
        .args(["hype-run", "--list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&worker.stdout).contains(ADD));
}

/// A call of `add(a, b)` naming the staged executable `executable`.
fn call_naming(executable: BlobRef, staging: &Path, a: i64, b: i64) -> String {
    let payload = Payload::Inline(wire::Bytes::from(
        wire::encode_value(ADD, "arguments", &AddArgs { a, b }).unwrap(),
    ));
    let envelope = CallEnvelope::new(ADD, AddArgs::SIGNATURE, payload)
        .with_build(BuildInfo::current())
        .with_staging(format!("file://{}", staging.display()))
        .with_executable(executable);
    Reference::Inline(wire::encode_call(&envelope).unwrap()).to_string()
}

/// A local submitter whose child processes are the launcher.
async fn launcher_setup() -> (tempfile::TempDir, Submitter, LocalStaging) {
    let dir = tempfile::tempdir().unwrap();
    let staging = LocalStaging::new(dir.path().join("staging")).unwrap();
    let submitter = Submitter::builder(
        LocalCluster::new()
            .program(launcher())
            .secrets_dir(dir.path().join("secrets"))
            .volumes_dir(dir.path().join("volumes")),
    )
    .staging(staging.clone())
    .build()
    .await
    .unwrap();
    (dir, submitter, staging)
}

fn cache_env(dir: &Path) -> RunEnvironment {
    RunEnvironment::local().with_env("HYPE_CACHE_DIR", dir.join("cache").display().to_string())
}

async fn stage_worker(staging: &LocalStaging) -> BlobRef {
    let digest = hype_runtime::__tools::hash_file(&common::worker()).unwrap();
    staging.put_file(&common::worker(), &digest).await.unwrap()
}

/// The launcher fetches the executable a call names into its cache
/// (verified, 0755, with a record of its verification; the directory
/// private), runs the call with it, and reuses the cached copy.
#[tokio::test]
async fn the_launcher_fetches_runs_and_caches_the_named_executable() {
    let (dir, submitter, staging) = launcher_setup().await;
    let blob = stage_worker(&staging).await;
    let env = cache_env(dir.path());
    for (i, (a, b)) in [(20, 22), (1, 2)].into_iter().enumerate() {
        let call = call_naming(blob.clone(), staging.root(), a, b);
        let bytes = submitter
            .run_raw(ADD, &format!("hype-ship-{i}"), call, &env)
            .await
            .unwrap();
        assert_eq!(
            wire::decode_value::<i64>(ADD, "result", &bytes).unwrap(),
            a + b
        );
    }
    let mut cached: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cached.sort();
    // The executable, and the record of its verification.
    let entry = dir.path().join("cache").join(&blob.sha256);
    assert_eq!(cached, [entry.clone(), entry.with_extension("verified")]);
    let record = std::fs::read_to_string(&cached[1]).unwrap();
    assert!(record.contains(&blob.sha256), "{record}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&cached[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    let mode = std::fs::metadata(dir.path().join("cache"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert_eq!(
        hype_runtime::__tools::hash_file(&cached[0]).unwrap().sha256,
        blob.sha256
    );
    submitter.close().await.unwrap();
}

/// A missing staged executable and a corrupt one each get their own error.
#[tokio::test]
async fn a_missing_or_corrupt_executable_gets_its_own_error() {
    let (dir, submitter, staging) = launcher_setup().await;
    let env = cache_env(dir.path());

    let absent = hype_runtime::__tools::Digest {
        sha256: "0".repeat(64),
        len: 10,
    };
    let missing = BlobRef::new(
        format!("{}/blobs/sha256/{}", staging.location(), absent.sha256),
        absent.len,
        absent.sha256,
    );
    let err = submitter
        .run_raw(
            ADD,
            "hype-ship-missing",
            call_naming(missing.clone(), staging.root(), 1, 2),
            &env,
        )
        .await
        .unwrap_err();
    match &err {
        Error::ExecutableMissing {
            uri, execution_id, ..
        } => {
            assert_eq!(uri, &missing.uri);
            assert_eq!(execution_id, "hype-ship-missing");
        }
        other => panic!("expected ExecutableMissing, got {other:?}"),
    }

    let blob = stage_worker(&staging).await;
    let path = staging.root().join("blobs/sha256").join(&blob.sha256);
    // Same length, other bytes; then another length.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    for (i, corrupt) in [bytes.clone(), bytes[..1000].to_vec()]
        .into_iter()
        .enumerate()
    {
        std::fs::write(&path, corrupt).unwrap();
        let err = submitter
            .run_raw(
                ADD,
                &format!("hype-ship-corrupt-{i}"),
                call_naming(blob.clone(), staging.root(), 1, 2),
                &env,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::ExecutableCorrupt { uri, .. } if uri == &blob.uri),
            "{err:?}"
        );
    }
    // Nothing half-fetched stays in the cache.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    submitter.close().await.unwrap();
}

/// A file of exactly `len` bytes that, if anything runs it, leaves
/// `marker` behind: a shell script padded with a comment.
fn same_length_impostor(path: &Path, len: u64, marker: &Path) {
    let mut script = format!("#!/bin/sh\ntouch '{}'\nexit 0\n#", marker.display()).into_bytes();
    assert!((script.len() as u64) < len);
    script.resize(len as usize - 1, b'x');
    script.push(b'\n');
    std::fs::write(path, script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A cached executable replaced by another file of the same length is
/// not run: its verification record no longer matches, so the launcher
/// hashes it, finds it wrong and fetches it again; and when the staged
/// copy is corrupt too, the call fails with `ExecutableCorrupt`.
#[tokio::test]
async fn a_cached_executable_replaced_by_one_of_the_same_length_is_not_run() {
    let (dir, submitter, staging) = launcher_setup().await;
    let blob = stage_worker(&staging).await;
    let env = cache_env(dir.path());
    let call = |a, b| call_naming(blob.clone(), staging.root(), a, b);
    let bytes = submitter
        .run_raw(ADD, "hype-ship-swap-0", call(1, 2), &env)
        .await
        .unwrap();
    assert_eq!(wire::decode_value::<i64>(ADD, "result", &bytes).unwrap(), 3);
    let cached = dir.path().join("cache").join(&blob.sha256);
    assert!(cached.is_file(), "the first call cached nothing");

    let marker = dir.path().join("impostor-ran");
    same_length_impostor(&cached, blob.len, &marker);
    let bytes = submitter
        .run_raw(ADD, "hype-ship-swap-1", call(20, 22), &env)
        .await
        .unwrap();
    assert_eq!(
        wire::decode_value::<i64>(ADD, "result", &bytes).unwrap(),
        42
    );
    assert!(!marker.exists(), "the launcher ran the impostor");
    assert_eq!(
        hype_runtime::__tools::hash_file(&cached).unwrap().sha256,
        blob.sha256,
        "the launcher did not fetch the executable again"
    );

    // Now the staged copy is corrupt too (same length): nothing right to
    // run, so the call fails, and still nothing ran the impostor.
    same_length_impostor(&cached, blob.len, &marker);
    let staged = staging.root().join("blobs/sha256").join(&blob.sha256);
    let mut corrupt = std::fs::read(&staged).unwrap();
    corrupt[100] ^= 0xff;
    std::fs::write(&staged, &corrupt).unwrap();
    let err = submitter
        .run_raw(ADD, "hype-ship-swap-2", call(1, 1), &env)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ExecutableCorrupt { uri, .. } if uri == &blob.uri),
        "{err:?}"
    );
    assert!(!marker.exists(), "the launcher ran the impostor");
    submitter.close().await.unwrap();
}

/// A cache directory others can write, or that another user owns, is
/// refused: the error names it and says what to do; nothing in it runs.
#[tokio::test]
async fn a_cache_directory_others_could_write_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let (dir, submitter, staging) = launcher_setup().await;
    let blob = stage_worker(&staging).await;
    let shared = dir.path().join("shared-cache");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let marker = dir.path().join("impostor-ran");
    same_length_impostor(&shared.join(&blob.sha256), blob.len, &marker);
    let env = RunEnvironment::local().with_env("HYPE_CACHE_DIR", shared.display().to_string());
    let err = submitter
        .run_raw(
            ADD,
            "hype-ship-shared-cache",
            call_naming(blob.clone(), staging.root(), 1, 2),
            &env,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&shared.display().to_string()), "{text}");
    assert!(text.contains("HYPE_CACHE_DIR"), "{text}");
    assert!(
        !marker.exists(),
        "the launcher ran a file from a shared cache"
    );

    // Owned by another user (only root can make one).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED (part): a cache directory owned by another user needs root to make; run as root to cover it"
        );
    } else {
        let foreign = dir.path().join("foreign-cache");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&foreign, Some(4242), Some(4242)).unwrap();
        let env = RunEnvironment::local().with_env("HYPE_CACHE_DIR", foreign.display().to_string());
        let err = submitter
            .run_raw(
                ADD,
                "hype-ship-foreign-cache",
                call_naming(blob.clone(), staging.root(), 1, 2),
                &env,
            )
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&foreign.display().to_string()), "{text}");
        assert!(text.contains("4242"), "{text}");
    }
    submitter.close().await.unwrap();
}

/// A launched executable that cannot start in the image: the loader's own
/// message comes back, with the image's name.
#[tokio::test]
async fn an_executable_the_loader_refuses_reports_the_loaders_message() {
    let (dir, submitter, staging) = launcher_setup().await;
    // A file the kernel will not run: ELF magic, then nothing sensible.
    let bogus = dir.path().join("bogus");
    let mut header = std::fs::read(common::worker()).unwrap();
    header.truncate(64);
    header.extend_from_slice(&[0u8; 64]);
    std::fs::write(&bogus, &header).unwrap();
    let digest = hype_runtime::__tools::hash_file(&bogus).unwrap();
    let blob = staging.put_file(&bogus, &digest).await.unwrap();
    let env = cache_env(dir.path()).with_env("HYPE_IMAGE", "local-test-image");
    let err = submitter
        .run_raw(
            ADD,
            "hype-ship-noexec",
            call_naming(blob, staging.root(), 1, 2),
            &env,
        )
        .await
        .unwrap_err();
    match &err {
        Error::ExecutableCannotStart { image, message, .. } => {
            assert_eq!(image, "local-test-image");
            assert!(!message.is_empty());
        }
        other => panic!("expected ExecutableCannotStart, got {other:?}"),
    }
    submitter.close().await.unwrap();
}

/// SIGTERM to a launcher (a pod being deleted) reaches the executable it
/// runs: the launcher ends with the child's death by SIGTERM (143), long
/// before the 60 s the function would sleep.
#[tokio::test]
async fn the_launcher_passes_sigterm_on_to_the_executable() {
    use hype_tests::containers::SleepArgs;
    let dir = tempfile::tempdir().unwrap();
    let staging = LocalStaging::new(dir.path().join("staging")).unwrap();
    let blob = stage_worker(&staging).await;
    const SLEEP: &str = "hype_tests::containers::sleep";
    let payload = Payload::Inline(wire::Bytes::from(
        wire::encode_value(SLEEP, "arguments", &SleepArgs { millis: 60_000 }).unwrap(),
    ));
    let envelope = CallEnvelope::new(SLEEP, SleepArgs::SIGNATURE, payload)
        .with_staging(staging.location())
        .with_executable(blob.clone());
    let call = Reference::Inline(wire::encode_call(&envelope).unwrap()).to_string();
    let cache = dir.path().join("cache");
    let mut child = std::process::Command::new(launcher())
        .arg("hype-run")
        .arg(call)
        .env("HYPE_EXECUTION_ID", "hype-sigterm-1")
        .env(
            "HYPE_TERMINATION_MESSAGE_PATH",
            dir.path().join("termination-log"),
        )
        .env("HYPE_CACHE_DIR", &cache)
        .spawn()
        .unwrap();
    let fetched = hype_tests::wait_until(Duration::from_secs(30), || {
        cache.join(&blob.sha256).exists()
    })
    .await;
    assert!(fetched, "the launcher did not fetch the executable");
    // The signal must come while the executable runs, not while the
    // launcher is still starting it (that path is the next test's): wait
    // until a process of this execution holds `HYPE_LAUNCHED`, which the
    // launcher gives only the executable it starts, so the exec is done.
    let started = hype_tests::wait_until(Duration::from_secs(30), || {
        executable_started("hype-sigterm-1", &blob.sha256)
    })
    .await;
    assert!(started, "the launcher did not start the executable");
    // SAFETY: signals a child this test started and has not reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let ended = hype_tests::wait_until(Duration::from_secs(20), || {
        child.try_wait().unwrap().is_some()
    })
    .await;
    if !ended {
        let _ = child.kill();
        panic!("the launcher was still running 20 s after SIGTERM");
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status:?}");
}

/// The processes whose environment holds `HYPE_EXECUTION_ID=<id>`.
fn processes_of_execution(id: &str) -> Vec<u32> {
    let needle = format!("HYPE_EXECUTION_ID={id}\0").into_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

/// Whether a process of execution `id` is the executable a launcher
/// started for blob `sha256`: its environment, read from `/proc` (so only
/// after its exec), holds `HYPE_LAUNCHED=<sha256>`.
fn executable_started(id: &str, sha256: &str) -> bool {
    let needle = format!("HYPE_LAUNCHED={}\0", sha256.to_ascii_lowercase()).into_bytes();
    processes_of_execution(id).into_iter().any(|pid| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle))
    })
}

/// Whether the process `pid` has a child yet (Linux's
/// `/proc/PID/task/PID/children`).
fn has_child(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .is_ok_and(|children| !children.trim().is_empty())
}

/// SIGTERM sent to launchers while they start their executable, at every
/// moment of the start (before the handler, around the fork, after it):
/// every launcher ends, and no executable it started is left running. A
/// signal lost between the handler and the hand-over of the child's pid
/// would leave a launcher waiting on a 60 s sleep.
#[tokio::test]
async fn sigterm_while_launchers_start_leaves_no_child_running() {
    use hype_tests::containers::SleepArgs;
    let dir = tempfile::tempdir().unwrap();
    let staging = LocalStaging::new(dir.path().join("staging")).unwrap();
    let blob = stage_worker(&staging).await;
    const SLEEP: &str = "hype_tests::containers::sleep";
    let payload = Payload::Inline(wire::Bytes::from(
        wire::encode_value(SLEEP, "arguments", &SleepArgs { millis: 60_000 }).unwrap(),
    ));
    let envelope = CallEnvelope::new(SLEEP, SleepArgs::SIGNATURE, payload)
        .with_staging(staging.location())
        .with_executable(blob.clone());
    let call = Reference::Inline(wire::encode_call(&envelope).unwrap()).to_string();
    let cache = dir.path().join("cache");
    let rounds = 60;
    let mut failures = Vec::new();
    for round in 0..rounds {
        let id = format!("hype-sigloop-{round}");
        let mut launcher = std::process::Command::new(launcher())
            .arg("hype-run")
            .arg(&call)
            .env("HYPE_EXECUTION_ID", &id)
            .env(
                "HYPE_TERMINATION_MESSAGE_PATH",
                dir.path().join(format!("termination-log-{round}")),
            )
            .env("HYPE_CACHE_DIR", &cache)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = launcher.id();
        match round % 3 {
            // The moment the child is forked (as tight as polling gets).
            0 => {
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while !has_child(pid)
                    && launcher.try_wait().unwrap().is_none()
                    && std::time::Instant::now() < deadline
                {
                    std::hint::spin_loop();
                }
            }
            // Spread over the launcher's start.
            1 => std::thread::sleep(Duration::from_micros(500 * (round as u64 % 40))),
            _ => {}
        }
        // SAFETY: signals a child this test started and has not reaped.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
        let ended = hype_tests::wait_until(Duration::from_secs(20), || {
            launcher.try_wait().unwrap().is_some()
        })
        .await;
        if !ended {
            failures.push(format!(
                "round {round}: the launcher ran on 20 s after SIGTERM"
            ));
            // Its executable dies with it (the parent-death signal).
            let _ = launcher.kill();
            let _ = launcher.wait();
        }
        let gone = hype_tests::wait_until(Duration::from_secs(10), || {
            processes_of_execution(&id).is_empty()
        })
        .await;
        if !gone {
            let left = processes_of_execution(&id);
            failures.push(format!("round {round}: left running: {left:?}"));
            for orphan in left {
                // SAFETY: a process of this test's own execution id.
                unsafe {
                    libc::kill(orphan as i32, libc::SIGKILL);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// What the Kubernetes and Docker submitters refuse to ship, at build time.
#[tokio::test]
async fn unshippable_executables_are_refused_when_the_submitter_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    // The worker, relabelled as an aarch64 executable (e_machine 0xb7).
    let arm = dir.path().join("arm");
    let mut bytes = std::fs::read(common::worker()).unwrap();
    bytes[18..20].copy_from_slice(&0xb7u16.to_le_bytes());
    std::fs::write(&arm, bytes).unwrap();

    let server = KubeTestServer::start(KubeletOptions::new().image(LAUNCHER_IMAGE, launcher()));
    let staging = format!("file://{}", server.staging_dir().display());
    let err = Submitter::builder(KubeCluster::from_client(server.client()))
        .staging(&staging)
        .executable(&script)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ExecutableNotShippable { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("a script"), "{text}");
    assert!(text.contains("--target x86_64-unknown-linux-gnu"), "{text}");
    assert!(text.contains("HYPE_SHIP_EXECUTABLE=0"), "{text}");

    // A test harness cannot run calls: shipping it is refused too.
    let err = Submitter::builder(KubeCluster::from_client(server.client()))
        .staging(&staging)
        .build()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("does not dispatch hype-run"),
        "{err}"
    );

    // An aarch64 executable on Kubernetes is fine (a node selector picks
    // arm64 nodes); on an amd64 Docker engine it is refused.
    let ok = Submitter::builder(KubeCluster::from_client(server.client()))
        .staging(&staging)
        .executable(&arm)
        .build()
        .await
        .unwrap();
    ok.close().await.unwrap();
    if cfg!(target_arch = "x86_64")
        && docker_image::engine_or_skip("shipping: the wrong arch for Docker")
            .await
            .is_some()
    {
        let err = Submitter::builder(DockerCluster::new())
            .staging(format!("file://{}", dir.path().join("staging").display()))
            .executable(&arm)
            .build()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, Error::ExecutableNotShippable { .. }),
            "{text}"
        );
        assert!(
            text.contains("aarch64 executable, but the Docker engine runs x86_64"),
            "{text}"
        );
    }
}

/// The Docker runner on an image whose `hype-run` is only the launcher:
/// shipped, the worker runs the call; with shipping off, the image's own
/// launcher does, knows no function, and says to ship or to bake.
#[tokio::test]
async fn docker_runs_functions_the_launcher_image_lacks() {
    let Some(docker) = docker_image::engine_or_skip("shipping on Docker").await else {
        return;
    };
    let image = docker_image::worker_image(&docker, &launcher())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let staging = format!("file://{}", dir.path().join("staging").display());
    let env = RunEnvironment::new(&image);

    let shipped = Submitter::builder(DockerCluster::new())
        .staging(&staging)
        .executable(common::worker())
        .build()
        .await
        .unwrap();
    assert_eq!(shipped.run(math::add(20, 22), &env).await.unwrap(), 42);
    shipped.close().await.unwrap();

    let baked = Submitter::builder(DockerCluster::new())
        .staging(&staging)
        .ship_executable(false)
        .build()
        .await
        .unwrap();
    assert_eq!(baked.shipped_executable(), None);
    let err = baked.run(math::add(1, 2), &env).await.unwrap_err();
    assert!(
        matches!(err, Error::UnknownFunction { ref known, .. } if known.is_empty()),
        "{err:?}"
    );
    // Not "version skew": the image is the generic one and nothing shipped.
    let text = err.to_string();
    assert!(
        text.contains("this image holds only the launcher; turn shipping on or bake the program"),
        "{text}"
    );
    assert!(!text.contains("version skew"), "{text}");
    baked.close().await.unwrap();
}

/// The caller's side of the workers' `build_number` (its body never runs
/// here: the shipped executable's does).
#[hype::remote(name = "hype_tests::build_number")]
fn build_number() -> u32 {
    0
}

/// Two executables of one program (before and after a code change) run
/// against one launcher-only image, with no rebuild in between: each call
/// runs the body of the executable its submitter ships.
#[tokio::test]
async fn docker_runs_two_builds_against_one_image() {
    let Some(docker) = docker_image::engine_or_skip("shipping: two builds, one image").await else {
        return;
    };
    let image = docker_image::worker_image(&docker, &launcher())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let staging = format!("file://{}", dir.path().join("staging").display());
    let env = RunEnvironment::new(&image);
    for (executable, expected) in [
        (common::worker(), 1),
        (PathBuf::from(env!("CARGO_BIN_EXE_hype-test-worker-v2")), 2),
        (common::worker(), 1),
    ] {
        let submitter = Submitter::builder(DockerCluster::new())
            .staging(&staging)
            .executable(&executable)
            .build()
            .await
            .unwrap();
        assert_eq!(submitter.run(build_number(), &env).await.unwrap(), expected);
        submitter.close().await.unwrap();
    }
    assert_eq!(
        docker_image::worker_image(&docker, &launcher())
            .await
            .unwrap(),
        image,
        "the image did not change"
    );
}

/// A binary that needs a shared library the image lacks (python3 needs
/// libz and libexpat; the image has only the launcher's libraries): the
/// loader's message comes back as its own error.
#[tokio::test]
async fn docker_reports_a_missing_shared_library() {
    let Some(docker) = docker_image::engine_or_skip("shipping: a missing library").await else {
        return;
    };
    let Ok(python) = std::fs::canonicalize("/usr/bin/python3") else {
        panic!("this test needs /usr/bin/python3 (an ELF that links libz)");
    };
    let image = docker_image::worker_image(&docker, &launcher())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let submitter = Submitter::builder(DockerCluster::new())
        .staging(format!("file://{}", dir.path().join("staging").display()))
        .executable(&python)
        .build()
        .await
        .unwrap();
    let err = submitter
        .run(math::add(1, 2), &RunEnvironment::new(&image))
        .await
        .unwrap_err();
    match &err {
        Error::ExecutableCannotStart {
            image: reported,
            message,
            ..
        } => {
            assert_eq!(reported, &image);
            assert!(
                message.contains("error while loading shared libraries"),
                "{message}"
            );
        }
        other => panic!("expected ExecutableCannotStart, got {other:?}"),
    }
    submitter.close().await.unwrap();
}

/// A store that counts what is staged in it.
#[derive(Debug)]
struct Counting {
    inner: LocalStaging,
    files: AtomicUsize,
    blobs: AtomicUsize,
}

impl Staging for Counting {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn put_blob(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<BlobRef, Error>> {
        self.blobs.fetch_add(1, Ordering::SeqCst);
        self.inner.put_blob(bytes)
    }
    fn put_file<'a>(
        &'a self,
        path: &'a Path,
        digest: &'a hype_runtime::__tools::Digest,
    ) -> BoxFuture<'a, Result<BlobRef, Error>> {
        self.files.fetch_add(1, Ordering::SeqCst);
        self.inner.put_file(path, digest)
    }
    fn get_blob<'a>(&'a self, blob: &'a BlobRef) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        self.inner.get_blob(blob)
    }
    fn put_outcome<'a>(
        &'a self,
        execution_id: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, Error>> {
        self.inner.put_outcome(execution_id, bytes)
    }
    fn get_object<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        self.inner.get_object(uri)
    }
    fn delete_object<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.delete_object(uri)
    }
}

/// Pods of an image that holds only the launcher run the worker's
/// functions, in the double's process mode and its Docker mode (as uid
/// 65532 on a read-only root, the cache in the `/tmp` volume), in a
/// namespace enforcing the `restricted` Pod Security Standard; N calls
/// stage the executable once, and a second submitter stages nothing.
async fn kubernetes_launcher_image(docker_mode: bool) {
    let skip = docker_mode.then_some("shipping on the Kubernetes double");
    let Some(options) = common::backend::image_pods(LAUNCHER_IMAGE, launcher(), skip).await else {
        return;
    };
    let server = KubeTestServer::start(options);
    // Pods pass the restricted Pod Security Standard; in Docker mode the
    // launcher runs as 65532 on a read-only root, its cache in /tmp.
    server.label_namespace(
        "default",
        "pod-security.kubernetes.io/enforce",
        "restricted",
    );
    let store = Arc::new(Counting {
        inner: LocalStaging::new(server.staging_dir()).unwrap(),
        files: AtomicUsize::new(0),
        blobs: AtomicUsize::new(0),
    });
    let connect = || {
        Submitter::builder(KubeCluster::from_client(server.client()))
            .staging(store.clone() as Arc<dyn Staging>)
            .executable(common::worker())
            .build()
    };
    let submitter = tokio::time::timeout(Duration::from_secs(30), connect())
        .await
        .unwrap()
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let env = RunEnvironment::new(LAUNCHER_IMAGE).with_env(
        "HYPE_CACHE_DIR",
        if docker_mode {
            "/tmp/hype-cache".to_owned()
        } else {
            cache.path().display().to_string()
        },
    );
    let calls = (0..4).map(|i| submitter.run(math::add(i, 40), &env));
    for (i, result) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(result.unwrap(), i as i64 + 40);
    }
    assert_eq!(store.files.load(Ordering::SeqCst), 1, "staged once");
    let second = connect().await.unwrap();
    assert_eq!(second.run(math::add(1, 1), &env).await.unwrap(), 2);
    assert_eq!(
        store.files.load(Ordering::SeqCst),
        1,
        "a second submitter stages nothing"
    );
    assert_eq!(store.blobs.load(Ordering::SeqCst), 0);
    // Each pod asked for nodes of the executable's arch.
    for pod in server.pods() {
        let selector = pod.spec.and_then(|s| s.node_selector).unwrap_or_default();
        let arch = if cfg!(target_arch = "aarch64") {
            "arm64"
        } else {
            "amd64"
        };
        assert_eq!(
            selector.get("kubernetes.io/arch").map(String::as_str),
            Some(arch)
        );
    }
    second.close().await.unwrap();
    submitter.close().await.unwrap();
}

#[tokio::test]
async fn kubernetes_process_mode_runs_a_launcher_only_image() {
    kubernetes_launcher_image(false).await;
}

#[tokio::test]
async fn kubernetes_docker_mode_runs_a_launcher_only_image() {
    kubernetes_launcher_image(true).await;
}
