//! The Kubernetes runner against the API test double with instant pods
//! (calls executed in-process by the kubelet simulator): hype's overhead
//! per call, API requests per call, and watch connections, for 1 call at a
//! time and for 500 concurrent calls.
//!
//! The baseline, measured in the same run against the same server, is the
//! API work no pod runner can avoid: creating a pod and deleting it (two
//! requests, written directly against kube, without waiting for the pod).
//! The completion latency is measured from the moment the simulated
//! container finishes (the kubelet then updates the pod's status) to the
//! moment the call returns its result, which includes seeing the status
//! change through the watch, reading the outcome and deleting the pod.
//! The bare pods and the calls alternate which runs first in each round.
//!
//! Then the size of a call on the wire: the bytes of each pod create and
//! the bytes every watcher receives per call, for calls with 40 KB of
//! arguments, with the inline limit at 64 KiB (what hype did before: the
//! arguments in the pod spec) and at its default of 16 KiB (they are
//! staged), in the same run.
//!
//! `cargo bench --bench kubernetes_overhead` (`HYPE_BENCH_QUICK=1`: fewer samples).
//! Targets: at most 3 API requests per call plus one shared watch;
//! completion seen within 50 ms of the pod's status change; 500 concurrent
//! calls finish with one watch connection.

mod measure;

use std::sync::Mutex;
use std::time::Instant;

use hype::{RunEnvironment, Submitter};
use hype_tests::IMAGE;
use hype_tests::backends::KubeCluster;
use hype_tests::kube_double::{Executor, InProcessResult, KubeTestServer, KubeletOptions};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::{Api, DeleteParams, PostParams};
use measure::{Samples, interleave, quick, ratio, rounds_text, verdict};

/// A call with a payload: its arguments are larger than the default
/// inline limit and smaller than the most a call can carry inline.
#[hype::remote]
fn payload_len(data: hype::ByteBuf) -> u64 {
    data.len() as u64
}

/// The trivial remote call.
#[hype::remote]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// When the last in-process container finished.
static LAST_FINISHED: Mutex<Option<Instant>> = Mutex::new(None);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

fn instant_pods() -> KubeletOptions {
    KubeletOptions::new().executor(Executor::in_process(|pod| {
        let call = pod.args.first().cloned().unwrap_or_default();
        let run = hype::hype_run::execute_in_process(&call, &pod.name);
        *LAST_FINISHED.lock().unwrap() = Some(Instant::now());
        InProcessResult {
            exit_code: run.exit_code,
            termination_message: run.termination_message,
        }
    }))
}

/// Create and delete one pod by hand: the API work every pod costs.
async fn bare_pod(pods: &Api<Pod>, name: &str, call: &str) {
    let pod = Pod {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_owned()),
            containers: vec![Container {
                name: "hype-run".to_owned(),
                image: Some(IMAGE.to_owned()),
                args: Some(vec![call.to_owned()]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    pods.delete(name, &DeleteParams::default())
        .await
        .expect("delete");
}

async fn bench() {
    let samples = if quick() { 20 } else { 200 };
    let concurrent = if quick() { 100 } else { 500 };

    let server = KubeTestServer::start(instant_pods());
    let staging = format!("file://{}", server.staging_dir().display());
    // The runner's own overhead, with the worker baked into the image.
    let submitter = Submitter::builder(KubeCluster::from_client(server.client()))
        .staging(staging)
        .ship_executable(false)
        .build()
        .await
        .expect("submitter");
    let env = RunEnvironment::new(IMAGE);
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let call_text = {
        use hype::RemoteFn as _;
        let args =
            hype::wire::encode_value(AddArgs::ID, "arguments", &AddArgs { a: 1, b: 2 }).unwrap();
        let envelope = hype::wire::CallEnvelope::new(
            AddArgs::ID,
            AddArgs::SIGNATURE,
            hype::wire::Payload::Inline(hype::Bytes::from(args)),
        );
        hype::wire::Reference::Inline(hype::wire::encode_call(&envelope).unwrap()).to_string()
    };

    // One call at a time, interleaved with the bare baseline.
    let mut completion = Samples::new("container finished -> call returned");
    let mut requests = 0usize;
    let warmup = 5;
    let [bare, call] = interleave(
        [
            "bare pod: create + delete requests",
            "hype call through the Kubernetes runner",
        ],
        warmup,
        samples,
        async |turn| {
            if turn.side == 0 {
                let start = Instant::now();
                bare_pod(&pods, &format!("bare-{}", turn.round), &call_text).await;
                return start.elapsed();
            }
            server.clear_request_log();
            let i = turn.round as u64;
            let start = Instant::now();
            assert_eq!(submitter.run(add(i, 1), &env).await.expect("call"), i + 1);
            let call_time = start.elapsed();
            let finished = LAST_FINISHED.lock().unwrap().take().expect("the pod ran");
            let completion_time = finished.elapsed();
            if turn.recorded {
                requests += server
                    .request_log()
                    .iter()
                    .filter(|(method, path)| measure::per_call(method, path))
                    .count();
                completion.times.push(completion_time);
            }
            call_time
        },
    )
    .await;
    let requests_per_call = requests as f64 / samples as f64;
    println!(
        "Kubernetes runner, instant pods ({})",
        rounds_text(2, warmup, samples)
    );
    println!("  {}", bare.line());
    println!("  {}", call.line());
    println!("  {}", completion.line());
    println!(
        "  ratio hype call / bare pod (medians): {:.2}x",
        ratio(&call, &bare)
    );
    println!(
        "  API requests per call: {requests_per_call:.2} (target <= 3, plus the one shared watch)"
    );
    let completion_ms = completion.median().as_secs_f64() * 1e3;
    println!(
        "  completion seen and returned: median {:.1} ms, p90 {:.1} ms after the container finished (target 50 ms)",
        completion_ms,
        completion.percentile(0.9).as_secs_f64() * 1e3
    );

    // Many calls at once.
    let watches_before = server.watch_connections();
    server.clear_request_log();
    let start = Instant::now();
    let calls = (0..concurrent).map(|i| submitter.run(add(i, i), &env));
    let results = futures::future::join_all(calls).await;
    let elapsed = start.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 0, "{:?}", results.iter().find(|r| r.is_err()));
    let log = server.request_log();
    let non_watch = log
        .iter()
        .filter(|(method, path)| measure::per_call(method, path))
        .count();
    println!("{concurrent} concurrent calls");
    println!(
        "  total {:.2?}, {:.2} ms per call",
        elapsed,
        elapsed.as_secs_f64() * 1e3 / concurrent as f64
    );
    let concurrent_requests = non_watch as f64 / concurrent as f64;
    println!("  API requests per call: {concurrent_requests:.2}");
    let new_watches = server.watch_connections() - watches_before;
    println!(
        "  watch connections opened by the runner during the run: {} (target 0 new: one shared watch, opened at connect; total so far {})",
        new_watches,
        server.watch_connections()
    );
    submitter.close().await.expect("close");

    // Bytes per call, with arguments of 40 KB: inline (limit 64 KiB, as
    // before) against staged (the default 16 KiB).
    let sized_calls = if quick() { 5 } else { 50 };
    let payload = hype::ByteBuf::from((0..40_000u32).map(|i| i as u8).collect::<Vec<u8>>());
    let mut per_call = Vec::new();
    for limit in [64 * 1024, hype::wire::INLINE_ARGUMENTS_LIMIT] {
        let sized = Submitter::builder(KubeCluster::from_client(server.client()))
            .staging(format!("file://{}", server.staging_dir().display()))
            .ship_executable(false)
            .inline_arguments_limit(limit)
            .build()
            .await
            .expect("submitter");
        let (watch_before, create_before) = server.traffic();
        for _ in 0..sized_calls {
            assert_eq!(
                sized
                    .run(payload_len(payload.clone()), &env)
                    .await
                    .expect("call"),
                40_000
            );
        }
        let (watch_after, create_after) = server.traffic();
        sized.close().await.expect("close");
        let pod = (create_after - create_before) as f64 / sized_calls as f64;
        let watch = (watch_after - watch_before) as f64 / sized_calls as f64;
        per_call.push((limit, pod, watch));
    }
    println!("{sized_calls} calls with 40 KB of arguments, bytes per call");
    for (limit, pod, watch) in &per_call {
        println!(
            "  inline limit {:>2} KiB: pod spec (create body) {:>7.0} B, watch events {:>8.0} B",
            limit / 1024,
            pod,
            watch
        );
    }
    let (_, pod_before, watch_before) = per_call[0];
    let (_, pod_after, watch_after) = per_call[1];
    println!(
        "  ratio staged / inline: pod spec {:.3}x, watch bytes {:.3}x",
        pod_after / pod_before,
        watch_after / watch_before
    );
    verdict(
        pod_after <= 16.0 * 1024.0 && watch_after < watch_before / 4.0,
        &format!(
            "a call with 40 KB of arguments: pod spec {pod_after:.0} B (target <= 16 KiB; {pod_before:.0} B inline), watch bytes {watch_after:.0} B (target < 1/4 of inline's {watch_before:.0} B)"
        ),
    );

    server.shutdown().await;
    verdict(
        requests_per_call <= 3.0
            && concurrent_requests <= 3.0
            && completion_ms <= 50.0
            && new_watches == 0,
        &format!(
            "API requests per call {requests_per_call:.2} one at a time and {concurrent_requests:.2} with {concurrent} at once (target <= 3); completion returned {completion_ms:.1} ms (median) after the container finished (target <= 50 ms); {new_watches} new watch connections for {concurrent} concurrent calls (target 0)"
        ),
    );
}
