//! Warm workers (issue 19) on the Kubernetes API test double, pods as
//! processes of the test worker, against baselines measured in the same
//! run:
//!
//! 1. **Warm call overhead**: one trivial call at a time on one warm
//!    worker (instant pods), against the same call on the local runner (a
//!    child process: the floor, a process start). Target <= 3x.
//! 2. **What warm saves**: 200 calls of a 50 ms function, concurrency 16,
//!    with realistic pods (1 s from create to container start): one pod
//!    per call against `Workers::up_to(16)`. Target >= 5x less wall time;
//!    and the API requests per call once the workers exist (target <= 0.1,
//!    plus the streams' own traffic).
//!
//! 3. **Memory**: the client's peak heap per call in flight, 64 calls of
//!    200 ms at once, on warm workers (`up_to(16)`, 4 calls per worker)
//!    against one pod per call (instant pods). Target: warm <= cold.
//!
//! `cargo bench -p hype-tests --bench workers` (`HYPE_BENCH_QUICK=1`: fewer
//! samples).

mod measure;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use hype::{LocalCluster, RunEnvironment, Submitter, Workers};
use hype_tests::IMAGE;
use hype_tests::backends::KubeCluster;
use hype_tests::kube_double::{KubeTestServer, KubeletOptions, PodDelays};
use hype_tests::{containers, fanout, math};
use measure::{interleave, quick, ratio, rounds_text, verdict};

const BOUND: Duration = Duration::from_secs(600);

thread_local! {
    /// Whether this thread's allocations count (the client's thread, in
    /// the memory measurement).
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// Bytes allocated on counted threads and not freed, and the peak since
/// the last reset.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is passed on to `System` unchanged; only counters
// are updated around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() && COUNTED.try_with(Cell::get).unwrap_or(false) {
            let live =
                LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed) + layout.size() as isize;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTED.try_with(Cell::get).unwrap_or(false) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
    drop(runtime);
    memory();
}

fn worker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hype-test-worker"))
}

async fn kube_submitter(server: &KubeTestServer) -> Submitter {
    Submitter::builder(KubeCluster::from_client(server.client()))
        .staging(format!("file://{}", server.staging_dir().display()))
        .ship_executable(false)
        .build()
        .await
        .expect("submitter")
}

async fn bench() {
    warm_call_overhead().await;
    what_warm_saves().await;
}

async fn warm_call_overhead() {
    let (warmup, samples) = if quick() { (3, 20) } else { (10, 100) };
    let dir = tempfile::tempdir().expect("temp dir");
    let local = Submitter::new(
        format!("file://{}", dir.path().join("staging").display()),
        LocalCluster::new().program(worker()),
    )
    .await
    .expect("local submitter");
    let server = KubeTestServer::start(KubeletOptions::new().image(IMAGE, worker()));
    let kube = kube_submitter(&server).await;
    let env = RunEnvironment::new(IMAGE).with_workers(Workers::up_to(1).keep_warm(1));
    let local_env = RunEnvironment::local();
    let [floor, warm] = interleave(
        [
            "local runner call (a child process)",
            "call on one warm worker (Kubernetes double)",
        ],
        warmup,
        samples,
        async |turn| {
            let i = turn.round as i64;
            let start = Instant::now();
            let sum = if turn.side == 0 {
                local.run(math::add(i, 1), &local_env).await
            } else {
                kube.run(math::add(i, 1), &env).await
            };
            let took = start.elapsed();
            assert_eq!(sum.expect("call"), i + 1);
            took
        },
    )
    .await;
    kube.close().await.expect("close");
    local.close().await.expect("close");
    server.shutdown().await;
    let r = ratio(&warm, &floor);
    println!("Warm call overhead ({})", rounds_text(2, warmup, samples));
    println!("  {}", floor.line());
    println!("  {}", warm.line());
    println!("  ratio warm worker / local call (medians): {r:.2}x (target <= 3x)");
    verdict(r <= 3.0, "a warm call costs at most 3 local calls");
}

/// Runs `n` calls of 50 ms at concurrency 16; gives the wall time.
async fn fan_out(submitter: &Submitter, env: &RunEnvironment, n: u64) -> Duration {
    let calls: Vec<_> = (0..n)
        .map(|i| fanout::timed(i, 50, false, String::new()))
        .collect();
    let start = Instant::now();
    let results: Vec<_> = tokio::time::timeout(
        BOUND,
        submitter
            .map(calls, env)
            .concurrency(16)
            .progress(false)
            .collect::<Vec<_>>(),
    )
    .await
    .expect("the fan-out ends within its bound");
    let took = start.elapsed();
    for (i, result) in results {
        let ran = result.unwrap_or_else(|err| panic!("call {i} failed: {err}"));
        assert_eq!(ran.index, i as u64);
    }
    took
}

async fn what_warm_saves() {
    let n = 200;
    let start_delay = Duration::from_secs(1);
    let server = KubeTestServer::start(
        KubeletOptions::new()
            .image(IMAGE, worker())
            .pod_delays(PodDelays::realistic(start_delay)),
    );
    let submitter = kube_submitter(&server).await;
    let cold_env = RunEnvironment::new(IMAGE);
    let warm_env = RunEnvironment::new(IMAGE)
        .with_workers(Workers::up_to(16).idle_for(Duration::from_secs(600)));
    let cold = fan_out(&submitter, &cold_env, n).await;
    let first_warm = fan_out(&submitter, &warm_env, n).await;
    // Once the workers exist: the API requests the calls still cost.
    server.clear_request_log();
    let warm = fan_out(&submitter, &warm_env, n).await;
    let requests = server
        .request_log()
        .iter()
        .filter(|(method, path)| measure::per_call(method, path))
        .count();
    submitter.close().await.expect("close");
    server.shutdown().await;
    let per_call = requests as f64 / n as f64;
    let saved = cold.as_secs_f64() / first_warm.as_secs_f64();
    println!(
        "What warm saves: {n} calls of 50 ms, concurrency 16, pods that take {start_delay:?} to start"
    );
    println!("  one pod per call: {:.2} s", cold.as_secs_f64());
    println!(
        "  Workers::up_to(16), workers started by the fan-out: {:.2} s",
        first_warm.as_secs_f64()
    );
    println!(
        "  Workers::up_to(16), workers already there: {:.2} s",
        warm.as_secs_f64()
    );
    println!(
        "  ratio one pod per call / workers (cold start included): {saved:.1}x (target >= 5x)"
    );
    println!(
        "  API requests per call once the workers exist: {per_call:.3} (target <= 0.1; the streams' frames are not API requests)"
    );
    verdict(
        saved >= 5.0 && per_call <= 0.1,
        "workers take >= 5x less wall time, <= 0.1 API requests per warm call",
    );
}

/// The client's peak heap during `n` calls of 200 ms all in flight at
/// once, less what it held before: the client runs on this thread alone
/// (a current-thread runtime, its allocations counted), the double on its
/// own runtime.
fn peak_heap_of(server: &KubeTestServer, env: &RunEnvironment, n: u64) -> isize {
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the client's runtime");
    COUNTED.with(|c| c.set(true));
    let peak = client.block_on(async {
        let submitter = kube_submitter(server).await;
        // One call first: the session, the watch and (warm) the workers
        // exist before the measured fan-out.
        submitter
            .run(containers::sleep(1), env)
            .await
            .expect("the first call");
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let calls: Vec<_> = (0..n).map(|_| containers::sleep(200)).collect();
        let results: Vec<_> = tokio::time::timeout(
            BOUND,
            submitter
                .map(calls, env)
                .concurrency(n as usize)
                .progress(false)
                .collect::<Vec<_>>(),
        )
        .await
        .expect("the fan-out ends within its bound");
        let peak = PEAK.load(Ordering::Relaxed) - before;
        for (i, result) in results {
            result.unwrap_or_else(|err| panic!("call {i} failed: {err}"));
        }
        submitter.close().await.expect("close");
        peak
    });
    COUNTED.with(|c| c.set(false));
    peak
}

fn memory() {
    let n = 64;
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the server's runtime");
    let server = server_runtime
        .block_on(async { KubeTestServer::start(KubeletOptions::new().image(IMAGE, worker())) });
    let cold_env = RunEnvironment::new(IMAGE);
    let warm_env = RunEnvironment::new(IMAGE).with_workers(
        Workers::up_to(16)
            .calls_per_worker(4)
            .idle_for(Duration::from_secs(600)),
    );
    let cold = peak_heap_of(&server, &cold_env, n);
    let warm = peak_heap_of(&server, &warm_env, n);
    server_runtime.block_on(server.shutdown());
    let per_call = |peak: isize| peak as f64 / n as f64 / 1024.0;
    println!("Memory: the client's peak heap, {n} calls of 200 ms in flight at once");
    println!(
        "  one pod per call: {:.1} KiB per call in flight",
        per_call(cold)
    );
    println!(
        "  warm workers (up_to(16), 4 calls each): {:.1} KiB per call in flight",
        per_call(warm)
    );
    let r = warm as f64 / cold.max(1) as f64;
    println!("  ratio warm / cold: {r:.2}x (target <= 1x)");
    verdict(
        r <= 1.0,
        "a warm call in flight holds no more heap than a cold one",
    );
}
