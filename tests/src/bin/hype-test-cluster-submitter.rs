//! The submitter of the killed-submitter tests on containers
//! (`tests/tests/killed_submitter.rs`): a `#[hype::main]` program that
//! starts two long calls of `hype_tests::containers::sleep` and waits for
//! them, so a test can `kill -9` it mid-call and look at what is left.
//!
//! - `hype-test-cluster-submitter kube`: on the cluster of `KUBECONFIG`
//!   (the Kubernetes test double), staging in `HYPE_STAGING`, image
//!   `HYPE_IMAGE` (the worker baked in: nothing is shipped);
//! - `hype-test-cluster-submitter docker`: on the local Docker engine,
//!   image `HYPE_IMAGE`.
//!
//! - `hype-test-cluster-submitter runtimes`: two tokio runtimes one after
//!   the other on a thread of its own, each running `math::add` through the
//!   default submitter (`run_on_cluster`, made from `HYPE_CLUSTER` and
//!   `HYPE_STAGING`), as two `#[tokio::test]`s do; prints `runtime N:
//!   <result or error>` for each and exits.
//!
//! - `hype-test-cluster-submitter local-env`: one call of `math::add`
//!   through the default submitter with `RunEnvironment::local()`, which
//!   names no image, so `HYPE_IMAGE` is its image; prints `local-env:
//!   <result or error>` and exits.
//!
//! One call mounts a transient volume read-write, so a killed submitter
//! leaves a claim (or a Docker volume) as well as pods (or containers).
//! With `TEST_WORKERS=1` (mode `kube`), both calls run in the
//! environment with the volume on warm workers (`Workers::up_to(2)`): two
//! busy worker pods.
//! It prints `ready <pid>` once connected and the calls are started.

use std::time::Duration;

use hype::{RunEnvironment, Submitter, VolumeRequest, Workers};
use hype_tests::backends::{DockerCluster, KubeCluster};

#[hype::main]
async fn main() {
    hype_tests::link();
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "local-env" {
        let env = RunEnvironment::local();
        let result = tokio::time::timeout(
            Duration::from_secs(30),
            hype_tests::math::add(2, 3).run_on_cluster(&env),
        )
        .await;
        match result {
            Ok(Ok(value)) => println!("local-env: {value}"),
            Ok(Err(err)) => println!("local-env: error: {err}"),
            Err(_) => println!("local-env: no answer within 30 s"),
        }
        return;
    }
    let image = std::env::var("HYPE_IMAGE").expect("HYPE_IMAGE names the worker image");
    if mode == "runtimes" {
        two_runtimes(image);
        return;
    }
    let connecting = match mode.as_str() {
        "kube" => {
            let staging = std::env::var("HYPE_STAGING").expect("HYPE_STAGING");
            Submitter::builder(KubeCluster::new())
                .staging(staging)
                .ship_executable(false)
                .build()
                .await
        }
        "docker" => {
            Submitter::builder(DockerCluster::new())
                .ship_executable(false)
                .build()
                .await
        }
        other => {
            eprintln!("usage: hype-test-cluster-submitter kube|docker (not {other:?})");
            std::process::exit(2);
        }
    };
    let submitter = connecting.expect("connect");
    let env = RunEnvironment::new(image).with_timeout(Duration::from_secs(300));
    let scratch = VolumeRequest::new("standard", "1Gi");
    let with_volume = env.clone().with_mount(scratch.mount_read_write("/scratch"));
    let (env, with_volume) = if std::env::var("TEST_WORKERS").as_deref() == Ok("1") {
        let on_workers = with_volume.with_workers(Workers::up_to(2));
        (on_workers.clone(), on_workers)
    } else {
        (env, with_volume)
    };
    let calls = [(submitter.clone(), with_volume), (submitter.clone(), env)].map(|(s, env)| {
        tokio::spawn(async move { s.run(hype_tests::containers::sleep(120_000), &env).await })
    });
    println!("ready {}", std::process::id());
    for call in calls {
        let _ = call.await;
    }
    let _ = submitter.close().await;
}

/// Runs a call through the default submitter on one runtime, then on
/// another after the first ended.
fn two_runtimes(image: String) {
    let runs = std::thread::spawn(move || {
        for n in 1..=2 {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let env = RunEnvironment::new(&image);
            let result = runtime.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(30),
                    hype_tests::math::add(n, n).run_on_cluster(&env),
                )
                .await
            });
            match result {
                Ok(Ok(value)) => println!("runtime {n}: {value}"),
                Ok(Err(err)) => println!("runtime {n}: error: {err}"),
                Err(_) => println!("runtime {n}: no answer within 30 s"),
            }
            drop(runtime);
        }
    });
    let _ = runs.join();
}
