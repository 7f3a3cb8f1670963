//! Shipping the executable with the calls, each part against a baseline
//! measured in the same run:
//!
//! 1. **Staging a fresh executable** (`Staging::put_file`: the existence
//!    check and the upload) in Google Cloud Storage (fake-gcs-server),
//!    against a plain upload of the same bytes with the same client.
//!    Target: at least 0.8x its throughput. (The digest is computed once
//!    per process, in the background while the submitter connects, so it
//!    is not part of staging.) Skipped loudly without the emulator.
//! 2. **Store requests per call after the first**: N calls through the
//!    Kubernetes runner (the test double, pods as processes of a
//!    launcher-only image) against a store that counts. Target: 0.
//! 3. **The pod side**: the launcher's start, fetch (to a cold cache),
//!    verify and start of the worker on one call, against a plain download
//!    of the same bytes in a fresh process, as a pod's download step would
//!    be (read and written in the same chunks, or downloaded with the same
//!    client library; unverified), then a start of the copy on the same
//!    call. From `gs://` (fake-gcs-server; the target: at least 0.8x the
//!    baseline's speed) and from `file://` (a local copy, where SHA-256 at
//!    about the speed of the copy bounds the ratio; reported).
//! 4. **The first call after a rebuild** (a new executable: staged,
//!    fetched) against a later call of the same submitter (cached).
//!
//! `cargo bench --bench shipping` (`-- --quick` or `HYPE_BENCH_QUICK=1` for
//! fewer samples).

mod measure;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use hype::wire::{self, BlobRef, BuildInfo, CallEnvelope, Payload, Reference};
use hype::{Error, LocalStaging, RemoteFn, RunEnvironment, Staging, Submitter};
use hype_runtime::executable::{Digest, hash_file};
use hype_tests::LAUNCHER_IMAGE;
use hype_tests::backends::KubeCluster;
use hype_tests::gcs_server::GcsServer;
use hype_tests::kube_double::{KubeTestServer, KubeletOptions};
use hype_tests::math::{self, AddArgs};
use measure::{interleave, interleave_blocking, quick, ratio, rounds_text, verdict};

const ADD: &str = "hype_tests::math::add";
const MIB: usize = 1024 * 1024;

fn worker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hype-test-worker"))
}

fn launcher() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hype-launcher"))
}

/// The first argument that makes this benchmark a plain downloader (the
/// baseline of the pod side, run as a fresh process as the launcher is).
const PLAIN_DOWNLOAD: &str = "plain-download";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(PLAIN_DOWNLOAD) {
        plain_download(&args[2..]);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut met = Vec::new();
    let mut lines = Vec::new();
    runtime.block_on(async {
        if let Some((ok, line)) = staging_in_gcs().await {
            met.push(ok);
            lines.push(line);
        }
        let (ok, line) = requests_per_call().await;
        met.push(ok);
        lines.push(line);
    });
    // Reported, not a target: from a local file the copy is cheaper than
    // the SHA-256 it must wait for, so the hash bounds the ratio.
    lines.push(pod_side());
    if let Some((ok, line)) = runtime.block_on(pod_side_gcs()) {
        met.push(ok);
        lines.push(line);
    }
    runtime.block_on(async {
        lines.push(first_call_after_a_rebuild().await);
    });
    verdict(met.iter().all(|&m| m), &lines.join("; "));
}

/// A file of `len` bytes unlike any other this run made.
fn fresh_file(dir: &Path, len: usize, seed: u64) -> PathBuf {
    let mut bytes = vec![0u8; len];
    let mut x = 0x9e37_79b9_7f4a_7c15 ^ seed;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let path = dir.join(format!("exe-{seed}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The baseline of the pod side, in a process of its own as a pod's
/// download step would be: `file SRC DEST` copies a file in the launcher's
/// chunk size; `gs LOCATION OBJECT DEST` downloads an object with the same
/// client library the launcher uses (from `STORAGE_EMULATOR_HOST`). Either
/// way unverified, then made executable.
fn plain_download(args: &[String]) {
    let dest = Path::new(args.last().expect("a destination"));
    let mut to = std::fs::File::create(dest).expect("the copy");
    match args.first().map(String::as_str) {
        Some("file") => {
            let mut from = std::fs::File::open(&args[1]).expect("the blob");
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = std::io::Read::read(&mut from, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                std::io::Write::write_all(&mut to, &buf[..n]).unwrap();
            }
        }
        Some("gs") => {
            let location = &args[1];
            let bucket = location
                .trim_start_matches("gs://")
                .split('/')
                .next()
                .unwrap();
            let name = &args[2];
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let endpoint = std::env::var("STORAGE_EMULATOR_HOST").unwrap();
                let store = hype_tests::backends::GcsStaging::builder(location)
                    .endpoint(&endpoint)
                    .anonymous(true)
                    .build()
                    .unwrap();
                let client = store.storage_client().await.unwrap();
                let mut response = client
                    .read_object(format!("projects/_/buckets/{bucket}"), name)
                    .send()
                    .await
                    .expect("plain download");
                while let Some(chunk) = response.next().await {
                    std::io::Write::write_all(&mut to, &chunk.unwrap()).unwrap();
                }
            });
        }
        other => panic!("plain-download: unknown source kind {other:?}"),
    }
    drop(to);
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs this benchmark as a plain downloader (see [`plain_download`]).
fn run_plain_download(args: &[&std::ffi::OsStr], vars: &[(&str, &std::ffi::OsStr)]) {
    let status = Command::new(std::env::current_exe().unwrap())
        .arg(PLAIN_DOWNLOAD)
        .args(args)
        .envs(vars.iter().copied())
        .status()
        .expect("start the plain download");
    assert!(status.success(), "the plain download failed: {status}");
}

async fn staging_in_gcs() -> Option<(bool, String)> {
    const BUCKET: &str = "hype-bench-ship";
    let server = GcsServer::start("shipping benchmark (GCS part)")?;
    server.create_bucket(BUCKET).await;
    let store = server.staging(&format!("gs://{BUCKET}/ship"));
    let client = store.storage_client().await.expect("the store's client");
    let dir = tempfile::tempdir().unwrap();
    let size = if quick() { 32 * MIB } else { 128 * MIB };
    let (warmup, samples) = if quick() { (1, 3) } else { (1, 7) };
    let [staged, plain] = interleave(
        [
            "stage a fresh executable (check, upload)",
            "plain upload of the same bytes",
        ],
        warmup,
        samples,
        async |turn| {
            let path = fresh_file(dir.path(), size, (turn.round * 2 + turn.side) as u64);
            let took = if turn.side == 0 {
                let digest = hash_file(&path).unwrap();
                let start = Instant::now();
                let blob = store.put_file(&path, &digest).await.expect("stage");
                let took = start.elapsed();
                let name = blob.uri.trim_start_matches(&format!("gs://{BUCKET}/"));
                server.delete(BUCKET, name).await;
                took
            } else {
                let name = format!("plain/{}", turn.round);
                let start = Instant::now();
                let bytes = tokio::fs::read(&path).await.unwrap();
                client
                    .write_object(
                        format!("projects/_/buckets/{BUCKET}"),
                        &name,
                        bytes::Bytes::from(bytes),
                    )
                    .send_unbuffered()
                    .await
                    .expect("plain upload");
                let took = start.elapsed();
                server.delete(BUCKET, &name).await;
                took
            };
            let _ = std::fs::remove_file(&path);
            took
        },
    )
    .await;
    let throughput = ratio(&plain, &staged);
    println!(
        "1. staging {} MiB in fake-gcs-server ({})",
        size / MIB,
        rounds_text(2, warmup, samples)
    );
    println!("  {}", staged.line());
    println!("  {}", plain.line());
    println!("  staging throughput / plain upload throughput: {throughput:.2}x (target >= 0.8x)");
    Some((
        throughput >= 0.8,
        format!("staging {throughput:.2}x a plain upload (>= 0.8x)"),
    ))
}

/// A store that counts every request.
#[derive(Debug)]
struct Counting {
    inner: LocalStaging,
    requests: AtomicUsize,
}

impl Counting {
    fn count(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
    }
}

impl Staging for Counting {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn put_blob(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<BlobRef, Error>> {
        self.count();
        self.inner.put_blob(bytes)
    }
    fn put_file<'a>(
        &'a self,
        path: &'a Path,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<BlobRef, Error>> {
        self.count();
        self.inner.put_file(path, digest)
    }
    fn get_blob<'a>(&'a self, blob: &'a BlobRef) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        self.count();
        self.inner.get_blob(blob)
    }
    fn put_outcome<'a>(
        &'a self,
        execution_id: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, Error>> {
        self.count();
        self.inner.put_outcome(execution_id, bytes)
    }
    fn get_object<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        self.count();
        self.inner.get_object(uri)
    }
    fn delete_object<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.count();
        self.inner.delete_object(uri)
    }
}

async fn requests_per_call() -> (bool, String) {
    let server = KubeTestServer::start(KubeletOptions::new().image(LAUNCHER_IMAGE, launcher()));
    let store = Arc::new(Counting {
        inner: LocalStaging::new(server.staging_dir()).unwrap(),
        requests: AtomicUsize::new(0),
    });
    let submitter = Submitter::builder(KubeCluster::from_client(server.client()))
        .staging(store.clone() as Arc<dyn Staging>)
        .executable(worker())
        .build()
        .await
        .expect("submitter");
    let cache = tempfile::tempdir().unwrap();
    let env = RunEnvironment::new(LAUNCHER_IMAGE)
        .with_env("HYPE_CACHE_DIR", cache.path().display().to_string());
    let calls = if quick() { 10 } else { 50 };
    assert_eq!(submitter.run(math::add(1, 2), &env).await.unwrap(), 3);
    let after_first = store.requests.load(Ordering::SeqCst);
    for i in 1..calls {
        assert_eq!(submitter.run(math::add(i, 2), &env).await.unwrap(), i + 2);
    }
    let later = store.requests.load(Ordering::SeqCst) - after_first;
    let per_call = later as f64 / (calls - 1) as f64;
    submitter.close().await.unwrap();
    println!(
        "2. store requests: {after_first} for the first call (the executable staged), {per_call:.2} per call after it over {} calls (target 0)",
        calls - 1
    );
    (
        per_call == 0.0,
        format!("{per_call:.2} store requests per later call (0)"),
    )
}

/// A call of `add(1, 2)` naming `blob`, with `location` as its staging.
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

/// Runs `program` as `hype-run <call>` with its termination message in
/// `dir` and the variables `vars`, and checks that the call succeeded.
fn run_call(program: &Path, call: &str, dir: &Path, vars: &[(&str, &std::ffi::OsStr)]) {
    let status = Command::new(program)
        .arg("hype-run")
        .arg(call)
        .env("HYPE_EXECUTION_ID", "hype-bench-1")
        .env("HYPE_TERMINATION_MESSAGE_PATH", dir.join("termination-log"))
        .envs(vars.iter().copied())
        .status()
        .expect("start");
    assert!(status.success(), "{program:?} failed: {status}");
}

/// The pod side, measured: the launcher running `call` (which names
/// `blob`) to a cold cache, against a fresh process running
/// `plain-download <source…> <copy>` and then a start of the copy on the
/// same call; every process with `vars`. Gives the two sides' samples and
/// the launcher's speed as a ratio to the plain side's.
fn pod_side_samples(
    names: [&'static str; 2],
    call: &str,
    blob: &BlobRef,
    source: &[&std::ffi::OsStr],
    vars: &[(&str, &std::ffi::OsStr)],
    samples: usize,
) -> ([measure::Samples; 2], f64) {
    let dir = tempfile::tempdir().unwrap();
    let warmup = 2;
    let [launched, plain] = interleave_blocking(names, warmup, samples, |turn| {
        let cache = dir
            .path()
            .join(format!("cache-{}-{}", turn.round, turn.side));
        let start = Instant::now();
        if turn.side == 0 {
            let mut with_cache = vars.to_vec();
            with_cache.push(("HYPE_CACHE_DIR", cache.as_os_str()));
            run_call(&launcher(), call, dir.path(), &with_cache);
        } else {
            std::fs::create_dir_all(&cache).unwrap();
            let copy = cache.join("worker");
            let mut args = source.to_vec();
            args.push(copy.as_os_str());
            run_plain_download(&args, vars);
            // The copy is the named executable: it runs the call itself.
            let mut launched = vars.to_vec();
            launched.push(("HYPE_LAUNCHED", blob.sha256.as_ref()));
            run_call(&copy, call, dir.path(), &launched);
        }
        let took = start.elapsed();
        let _ = std::fs::remove_dir_all(&cache);
        took
    });
    println!("  ({})", rounds_text(2, warmup, samples));
    println!("  {}", launched.line());
    println!("  {}", plain.line());
    let speed = ratio(&plain, &launched);
    ([launched, plain], speed)
}

/// The pod side from `file://` staging (a local copy; reported).
fn pod_side() -> String {
    let dir = tempfile::tempdir().unwrap();
    let staging = LocalStaging::new(dir.path().join("staging")).unwrap();
    let digest = hash_file(&worker()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let blob = runtime
        .block_on(staging.put_file(&worker(), &digest))
        .unwrap();
    let blob_path = staging.root().join("blobs/sha256").join(&blob.sha256);
    let call = call_naming(&blob, staging.location());
    println!(
        "3a. the pod side from file://, a {} MiB executable",
        digest.len / MIB as u64
    );
    let (_, speed) = pod_side_samples(
        [
            "launcher: fetch, verify, start",
            "plain download, then start it",
        ],
        &call,
        &blob,
        &["file".as_ref(), blob_path.as_os_str()],
        &[],
        if quick() { 5 } else { 20 },
    );
    println!(
        "  launcher speed / plain copy and start: {speed:.2}x (reported: SHA-256 is slower than a local copy)"
    );
    format!("the pod side from file:// {speed:.2}x a plain copy and start (reported)")
}

/// The pod side against Cloud Storage (fake-gcs-server): the launcher's
/// fetch from `gs://` (hashing as the bytes arrive), against a plain
/// download of the same object with the same client library.
async fn pod_side_gcs() -> Option<(bool, String)> {
    const BUCKET: &str = "hype-bench-pod";
    let server = GcsServer::start("shipping benchmark (pod side from GCS)")?;
    server.create_bucket(BUCKET).await;
    let location = format!("gs://{BUCKET}/ship");
    let store = server.staging(&location);
    let digest = hash_file(&worker()).unwrap();
    let blob = store.put_file(&worker(), &digest).await.unwrap();
    let name = blob
        .uri
        .trim_start_matches(&format!("gs://{BUCKET}/"))
        .to_owned();
    let call = call_naming(&blob, &location);
    println!(
        "3b. the pod side from fake-gcs-server, a {} MiB executable",
        digest.len / MIB as u64
    );
    // The emulator is a process of its own: blocking this thread while
    // the turns run holds nothing up.
    let (_, speed) = pod_side_samples(
        [
            "launcher: fetch from gs://, verify, start",
            "plain download from gs://, start",
        ],
        &call,
        &blob,
        &["gs".as_ref(), location.as_ref(), name.as_ref()],
        &[("STORAGE_EMULATOR_HOST", server.endpoint().as_ref())],
        if quick() { 5 } else { 15 },
    );
    println!("  launcher speed / plain download and start: {speed:.2}x (target >= 0.8x)");
    Some((
        speed >= 0.8,
        format!("the pod side from gs:// {speed:.2}x a plain download and start (>= 0.8x)"),
    ))
}

async fn first_call_after_a_rebuild() -> String {
    let server = KubeTestServer::start(KubeletOptions::new().image(LAUNCHER_IMAGE, launcher()));
    let staging = format!("file://{}", server.staging_dir().display());
    let dir = tempfile::tempdir().unwrap();
    let rebuilds = if quick() { 3 } else { 10 };
    let mut first = measure::Samples::new("first call after a rebuild");
    let mut later = measure::Samples::new("a later call, same executable");
    for i in 0..rebuilds {
        // A "rebuild": the worker with a few bytes appended (ignored by the
        // loader), so its digest is new and it must be staged and fetched.
        let exe = dir.path().join(format!("worker-{i}"));
        let mut bytes = std::fs::read(worker()).unwrap();
        bytes.extend_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(&exe, bytes).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let submitter = Submitter::builder(KubeCluster::from_client(server.client()))
            .staging(&staging)
            .executable(&exe)
            .build()
            .await
            .expect("submitter");
        let env = RunEnvironment::new(LAUNCHER_IMAGE).with_env(
            "HYPE_CACHE_DIR",
            dir.path().join("cache").display().to_string(),
        );
        let start = Instant::now();
        assert_eq!(submitter.run(math::add(1, 2), &env).await.unwrap(), 3);
        first.times.push(start.elapsed());
        let start = Instant::now();
        assert_eq!(submitter.run(math::add(2, 2), &env).await.unwrap(), 4);
        later.times.push(start.elapsed());
        submitter.close().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cost = ratio(&first, &later);
    println!("4. the first call after a rebuild ({rebuilds} rebuilds)");
    println!("  {}", first.line());
    println!("  {}", later.line());
    println!("  first call / later call: {cost:.2}x (reported, no target)");
    format!("first call after a rebuild {cost:.2}x a later one")
}
