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
//! `cargo bench -p hype-tests --bench workers` (`HYPE_BENCH_QUICK=1`: fewer
//! samples).

mod measure;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use hype::{LocalCluster, RunEnvironment, Submitter, Workers};
use hype_tests::IMAGE;
use hype_tests::backends::KubeCluster;
use hype_tests::kube_double::{KubeTestServer, KubeletOptions, PodDelays};
use hype_tests::{fanout, math};
use measure::{interleave, quick, ratio, rounds_text, verdict};

const BOUND: Duration = Duration::from_secs(600);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
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
