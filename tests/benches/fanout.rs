//! A fan-out of trivial calls through the Kubernetes runner against the
//! API test double with instant pods (each call executed in-process by the
//! kubelet simulator), against the same fan-out written by hand with
//! `futures::stream::buffer_unordered` over `Submitter::run`, in the same
//! run, alternating which goes first:
//!
//! - API requests per call (the shared watch aside), with log streaming
//!   off and on. Targets: 2 without logs (create, delete), 3 with (and the
//!   log stream). The session's own requests, one per submitter per
//!   interval whatever the number of calls (the Lease's renewal every 20 s,
//!   the watch's safety-net list every 30 s), are counted apart.
//! - The client's CPU time per call. The double serves from a runtime of
//!   its own on other threads; the client runs on this thread alone (a
//!   current-thread runtime), whose CPU clock is the measure. Target: at
//!   most 1.2x the hand-written fan-out's.
//! - The client's peak heap (allocations made on this thread): flat, about
//!   the same for N calls as for N/10 (at least 4 times the concurrency),
//!   and against the hand-written fan-out's.
//!
//! `cargo bench --bench fanout` (10,000 calls at concurrency 500;
//! `HYPE_BENCH_QUICK=1`: 1,000 at 100).

mod measure;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use hype::{LogMode, RunEnvironment, Submitter};
use hype_tests::IMAGE;
use hype_tests::backends::KubeCluster;
use hype_tests::kube_double::{Executor, InProcessResult, KubeTestServer, KubeletOptions};
use measure::{per_call, quick, verdict};

/// The trivial remote call.
#[hype::remote]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

thread_local! {
    /// Whether this thread's allocations count (the client's thread).
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

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on this stack.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// What one fan-out cost the client.
#[derive(Debug, Clone, Copy)]
struct Cost {
    cpu_per_call: Duration,
    peak_heap: isize,
    requests_per_call: f64,
    /// Requests of the session rather than of its calls: Lease renewals
    /// and safety-net lists of the session's pods.
    session_requests: usize,
}

fn main() {
    let (n, concurrency) = if quick() { (1_000, 100) } else { (10_000, 500) };
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the server's runtime");
    let server = server_runtime.block_on(async {
        KubeTestServer::start(KubeletOptions::new().executor(Executor::in_process(|pod| {
            let call = pod.args.first().cloned().unwrap_or_default();
            let run = hype::hype_run::execute_in_process(&call, &pod.name);
            InProcessResult {
                exit_code: run.exit_code,
                termination_message: run.termination_message,
            }
        })))
    });
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the client's runtime");
    client.block_on(async {
        let staging = format!("file://{}", server.staging_dir().display());
        let submitter = Submitter::builder(KubeCluster::from_client(server.client()))
            .staging(staging)
            .ship_executable(false)
            .build()
            .await
            .expect("submitter");
        let quiet = RunEnvironment::new(IMAGE).with_log_mode(LogMode::Off);
        let logged = RunEnvironment::new(IMAGE).with_log_mode(LogMode::Stream);

        // A warm-up, then each side twice, alternating which goes first.
        run_map(&submitter, &server, &quiet, n / 10, concurrency).await;
        let mut map = Vec::new();
        let mut by_hand = Vec::new();
        for round in 0..2 {
            if round % 2 == 0 {
                map.push(run_map(&submitter, &server, &quiet, n, concurrency).await);
                by_hand.push(run_by_hand(&submitter, &server, &quiet, n, concurrency).await);
            } else {
                by_hand.push(run_by_hand(&submitter, &server, &quiet, n, concurrency).await);
                map.push(run_map(&submitter, &server, &quiet, n, concurrency).await);
            }
        }
        // Fewer calls, but still several times the concurrency, so the
        // slots fill and empty as in the full run.
        let fewer = (n / 10).max(4 * concurrency as u64);
        let small = run_map(&submitter, &server, &quiet, fewer, concurrency).await;
        let with_logs = run_map(&submitter, &server, &logged, n, concurrency).await;
        submitter.close().await.expect("close");

        let best = |costs: &[Cost]| {
            costs
                .iter()
                .copied()
                .min_by_key(|c| c.cpu_per_call)
                .expect("measured")
        };
        let (map, by_hand) = (best(&map), best(&by_hand));
        println!("{n} trivial calls at concurrency {concurrency}, Kubernetes runner, instant pods");
        for (name, cost) in [
            ("Submitter::map, logs off", map),
            ("by hand: buffer_unordered(run), logs off", by_hand),
            ("Submitter::map, logs streamed", with_logs),
        ] {
            println!(
                "  {name:<42} client CPU {:>7.1} µs/call, peak heap {:>8.1} KiB, {:.2} API requests/call (+{} of the session)",
                cost.cpu_per_call.as_secs_f64() * 1e6,
                cost.peak_heap as f64 / 1024.0,
                cost.requests_per_call,
                cost.session_requests
            );
        }
        println!(
            "  Submitter::map, {fewer} calls: peak heap {:.1} KiB",
            small.peak_heap as f64 / 1024.0
        );
        let cpu = map.cpu_per_call.as_secs_f64() / by_hand.cpu_per_call.as_secs_f64();
        let heap_vs_hand = map.peak_heap as f64 / by_hand.peak_heap.max(1) as f64;
        let heap_growth = map.peak_heap as f64 / small.peak_heap.max(1) as f64;
        println!("  client CPU, map / by hand: {cpu:.2}x (target <= 1.2x)");
        println!(
            "  peak heap, map / by hand: {heap_vs_hand:.2}x; {n} calls / {fewer} calls: {heap_growth:.2}x (target: flat, <= 1.5x)"
        );
        verdict(
            cpu <= 1.2
                && heap_growth <= 1.5
                && map.requests_per_call <= 2.0
                && with_logs.requests_per_call <= 3.0,
            &format!(
                "fan-out client CPU {cpu:.2}x the hand-written one (<= 1.2x); peak heap {heap_growth:.2}x for {n} calls against {fewer} (flat, <= 1.5x), {heap_vs_hand:.2}x the hand-written one; {:.2} API requests per call without logs (<= 2), {:.2} with (<= 3)",
                map.requests_per_call, with_logs.requests_per_call
            ),
        );
    });
    server_runtime.block_on(server.shutdown());
}

/// Measures `fanout` on this thread: CPU, peak heap, requests.
async fn measured(
    server: &KubeTestServer,
    n: u64,
    fanout: impl std::future::Future<Output = usize>,
) -> Cost {
    server.clear_request_log();
    COUNTED.with(|c| c.set(true));
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let base = LIVE.load(Ordering::Relaxed);
    let cpu = thread_cpu();
    let done = fanout.await;
    let cpu = thread_cpu() - cpu;
    let peak = PEAK.load(Ordering::Relaxed) - base;
    COUNTED.with(|c| c.set(false));
    assert_eq!(done as u64, n, "every call succeeded");
    let log = server.request_log();
    let requests = log
        .iter()
        .filter(|(_, path)| !path.contains("watch="))
        .count();
    let calls = log
        .iter()
        .filter(|(method, path)| per_call(method, path))
        .count();
    let session_requests = requests - calls;
    Cost {
        cpu_per_call: cpu / n as u32,
        peak_heap: peak,
        requests_per_call: calls as f64 / n as f64,
        session_requests,
    }
}

async fn run_map(
    submitter: &Submitter,
    server: &KubeTestServer,
    env: &RunEnvironment,
    n: u64,
    concurrency: usize,
) -> Cost {
    measured(server, n, async {
        submitter
            .map((0..n).map(|i| add(i, 1)), env)
            .concurrency(concurrency)
            .unordered()
            .progress(false)
            .filter(|(i, r)| std::future::ready(matches!(r, Ok(v) if *v == *i as u64 + 1)))
            .count()
            .await
    })
    .await
}

async fn run_by_hand(
    submitter: &Submitter,
    server: &KubeTestServer,
    env: &RunEnvironment,
    n: u64,
    concurrency: usize,
) -> Cost {
    measured(server, n, async {
        futures::stream::iter(0..n)
            .map(|i| async move { (i, submitter.run(add(i, 1), env).await) })
            .buffer_unordered(concurrency)
            .filter(|(i, r)| std::future::ready(matches!(r, Ok(v) if *v == *i + 1)))
            .count()
            .await
    })
    .await
}
