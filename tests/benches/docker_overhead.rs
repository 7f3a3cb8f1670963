//! The per-call overhead of the Docker runner: a trivial remote call in a
//! container, against the same engine calls made directly, without hype,
//! samples interleaved in the same run (alternating which runs first).
//!
//! The baseline is what any runner must ask of the engine to run a program
//! in a container of the image, made with bollard on the same connection
//! kind as hype's: create a container of the same image with its
//! entrypoint overridden to `/bin/true` (the test image holds `/bin/true`
//! and its libraries besides `hype-run`; see `hype_tests::docker_image`),
//! start it, wait until it is not running, and remove it (forcibly, with
//! its anonymous volumes), the sequence hype's runner follows
//! (`hype-runtime/src/backend/docker/container.rs`), each call bounded as
//! hype bounds its own. What the runner adds on top: the termination
//! directory and its bind mounts (and the staging directory's), the
//! inspect for an OOM kill, reading the outcome, `hype-run` itself, and
//! encoding and decoding the call.
//!
//! `cargo bench -p hype-tests --bench docker_overhead` (`HYPE_BENCH_QUICK=1`
//! for fewer samples). Target: median round trip at most 1.3x the baseline.
//! Skips loudly without an engine, unless `HYPE_REQUIRE_DOCKER=1`.

mod measure;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as EngineError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, StartContainerOptions, WaitContainerOptions,
};
use futures::StreamExt as _;
use hype::{RunEnvironment, Submitter};
use hype_tests::backends::DockerCluster;
use hype_tests::{docker_image, math};
use measure::{interleave, quick, ratio, rounds_text, verdict};

/// The bound of each of the baseline's engine calls, the wait included
/// (hype bounds its engine calls at 60 s, and the wait by the call's
/// timeout).
const BOUND: Duration = Duration::from_secs(60);

/// The baseline's program: in the image, and exits 0 at once.
const BASELINE_ENTRYPOINT: &str = "/bin/true";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

/// `call`, or an error after `BOUND`.
async fn bounded<T>(
    what: &str,
    call: impl Future<Output = Result<T, EngineError>>,
) -> Result<T, String> {
    match tokio::time::timeout(BOUND, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(format!("{what}: {err}")),
        Err(_) => Err(format!("{what}: no answer within {BOUND:?}")),
    }
}

/// The baseline: create, start, wait for and remove a container of `image`
/// running `/bin/true`. Returns its exit code; removes it on failure too.
async fn bare_container(docker: &Docker, image: &str, name: &str) -> Result<i64, String> {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        entrypoint: Some(vec![BASELINE_ENTRYPOINT.to_owned()]),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        tty: Some(false),
        open_stdin: Some(false),
        host_config: Some(HostConfig {
            auto_remove: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    bounded("create", docker.create_container(Some(options), body)).await?;
    let ran = async {
        bounded(
            "start",
            docker.start_container(name, None::<StartContainerOptions>),
        )
        .await?;
        let options = WaitContainerOptions {
            condition: "not-running".to_owned(),
        };
        let mut exits = std::pin::pin!(docker.wait_container(name, Some(options)));
        match tokio::time::timeout(BOUND, exits.next()).await {
            Err(_) => Err(format!("wait: the container ran longer than {BOUND:?}")),
            Ok(Some(Ok(response))) => Ok(response.status_code),
            Ok(Some(Err(EngineError::DockerContainerWaitError { code, .. }))) => Ok(code),
            Ok(Some(Err(err))) => Err(format!("wait: {err}")),
            Ok(None) => Err("wait: the engine ended the wait without an exit status".to_owned()),
        }
    }
    .await;
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    let removed = bounded("remove", docker.remove_container(name, Some(options))).await;
    let code = ran?;
    removed?;
    Ok(code)
}

async fn bench() {
    let Some(docker) = docker_image::engine_or_skip("docker_overhead benchmark").await else {
        return;
    };
    let worker = PathBuf::from(env!("CARGO_BIN_EXE_hype-test-worker"));
    let image = docker_image::worker_image(&docker, &worker)
        .await
        .expect("build the test image");
    let dir = tempfile::tempdir().expect("temp dir");
    let staging = format!("file://{}", dir.path().join("staging").display());
    // Shipping the worker (the default: a bind mount as the entrypoint).
    let submitter = Submitter::builder(DockerCluster::new())
        .staging(staging)
        .executable(&worker)
        .build()
        .await
        .expect("submitter");
    let env = RunEnvironment::new(&image);
    let (warmup, samples) = if quick() { (2, 10) } else { (5, 60) };
    let pid = std::process::id();

    let [baseline, call] = interleave(
        [
            "bollard create/start/wait/remove, true",
            "remote call round trip (Docker runner)",
        ],
        warmup,
        samples,
        async |turn| {
            let start = Instant::now();
            if turn.side == 0 {
                let name = format!("hype-bench-baseline-{pid}-{}", turn.round);
                let code = bare_container(&docker, &image, &name)
                    .await
                    .unwrap_or_else(|err| panic!("baseline container {name}: {err}"));
                let took = start.elapsed();
                assert_eq!(
                    code, 0,
                    "{BASELINE_ENTRYPOINT} in {image} exited with {code}"
                );
                took
            } else {
                let i = turn.round as i64;
                let sum = submitter.run(math::add(i, 1), &env).await.expect("call");
                let took = start.elapsed();
                assert_eq!(sum, i + 1);
                took
            }
        },
    )
    .await;
    submitter.close().await.expect("close");
    println!(
        "Docker runner overhead ({}; image {image})",
        rounds_text(2, warmup, samples)
    );
    println!("  {}", baseline.line());
    println!("  {}", call.line());
    let ratio = ratio(&call, &baseline);
    println!("  ratio round trip / bare engine calls (medians): {ratio:.2}x (target <= 1.3x)");
    verdict(
        ratio <= 1.3,
        &format!(
            "Docker runner round trip {ratio:.2}x the bare create/start/wait/remove (target <= 1.3x)"
        ),
    );
}
