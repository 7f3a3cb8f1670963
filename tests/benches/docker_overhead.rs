//! The per-call overhead of the Docker runner: a trivial remote call in a
//! container, against `docker run --rm --entrypoint /bin/true IMAGE` of the
//! same image (the image's entrypoint is `hype-run`, so the baseline names
//! `/bin/true` as its entrypoint), samples interleaved in the same run.
//!
//! `cargo bench -p hype-tests --bench docker_overhead` (`HYPE_BENCH_QUICK=1`
//! for fewer samples). Target: median round trip at most 1.3x the baseline.
//! Skips loudly without an engine or the `docker` CLI, unless
//! `HYPE_REQUIRE_DOCKER=1`.

mod measure;

use std::path::PathBuf;
use std::time::Instant;

use hype::{DockerCluster, RunEnvironment, Submitter};
use hype_tests::{docker_image, math};
use measure::{Samples, quick, ratio};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn docker_run_true(image: &str) -> std::io::Result<std::process::ExitStatus> {
    tokio::process::Command::new("docker")
        .args(["run", "--rm", "--entrypoint", "/bin/true", image])
        .stdin(std::process::Stdio::null())
        .status()
        .await
}

async fn bench() {
    let Some(docker) = docker_image::engine_or_skip("docker_overhead benchmark").await else {
        return;
    };
    let worker = PathBuf::from(env!("CARGO_BIN_EXE_hype-test-worker"));
    let image = docker_image::worker_image(&docker, &worker)
        .await
        .expect("build the test image");
    if let Err(err) = docker_run_true(&image).await {
        let message = format!("docker_overhead benchmark: cannot run the docker CLI ({err})");
        if docker_image::docker_required() {
            panic!("{message}");
        }
        eprintln!("\n!!!!!!!! SKIPPED: {message}\n");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let staging = format!("file://{}", dir.path().join("staging").display());
    let submitter = Submitter::new(staging, DockerCluster::new())
        .await
        .expect("submitter");
    let env = RunEnvironment::new(&image);
    let (warmup, samples) = if quick() { (2, 10) } else { (5, 60) };

    let mut baseline = Samples::new("docker run --rm --entrypoint /bin/true");
    let mut call = Samples::new("remote call round trip (Docker runner)");
    for i in 0..warmup + samples {
        let start = Instant::now();
        let status = docker_run_true(&image).await.expect("docker run");
        let run_time = start.elapsed();
        assert!(status.success(), "docker run failed: {status}");

        let start = Instant::now();
        let sum = submitter.run(math::add(i, 1), &env).await.expect("call");
        let call_time = start.elapsed();
        assert_eq!(sum, i + 1);

        if i >= warmup {
            baseline.times.push(run_time);
            call.times.push(call_time);
        }
    }
    submitter.close().await.expect("close");
    println!(
        "Docker runner overhead ({samples} interleaved samples after {warmup} warm-up; image {image})"
    );
    println!("  {}", baseline.line());
    println!("  {}", call.line());
    println!(
        "  ratio round trip / docker run (medians): {:.2}x (target <= 1.3x)",
        ratio(&call, &baseline)
    );
}
