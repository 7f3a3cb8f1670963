//! The process-wide default submitter behind `Call::run_on_cluster` (its own
//! test binary, since the default is set once per process).

mod common;

use std::time::Duration;

use hype::{LocalCluster, RunEnvironment, Submitter};
use hype_tests::IMAGE;
use hype_tests::kube_double::KubeTestServer;

#[tokio::test]
async fn run_on_cluster_uses_the_default_and_it_is_set_once() {
    let submitter = Submitter::builder(LocalCluster::new().program(common::worker()))
        .build()
        .await
        .unwrap();
    Submitter::set_default(submitter.clone()).unwrap();
    let n = hype_tests::math::word_count("one two three".into())
        .run_on_cluster(&RunEnvironment::local())
        .await
        .unwrap();
    assert_eq!(n, 3);
    let again = Submitter::set_default(submitter).unwrap_err();
    assert!(again.to_string().contains("already set"), "{again}");
}

/// The default made from the environment belongs to a runtime: after the
/// first runtime ended (its submitter's watch and Lease tasks with it), a
/// second one gets a working default of its own. On the Kubernetes test
/// double, whose runner lives on tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_runtime_gets_a_working_default_submitter() {
    let server = KubeTestServer::start(common::backend::worker_processes());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(server.url())).unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_hype-test-cluster-submitter"))
        .arg("runtimes")
        .env("KUBECONFIG", &kubeconfig)
        .env("HYPE_CLUSTER", "kube")
        .env(
            "HYPE_STAGING",
            format!("file://{}", server.staging_dir().display()),
        )
        .env("HYPE_IMAGE", IMAGE)
        .env("HYPE_SHIP_EXECUTABLE", "0")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("hype-test-cluster-submitter runtimes ends within 120 s")
        .expect("run hype-test-cluster-submitter");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}: {out}", output.status);
    assert!(out.contains("runtime 1: 2\n"), "{out}");
    assert!(out.contains("runtime 2: 4\n"), "{out}");
    server.shutdown().await;
}

/// `HYPE_IMAGE` is the image of an environment that names none: a program
/// written with `RunEnvironment::local()` runs on Kubernetes (the double)
/// with `HYPE_CLUSTER`, `HYPE_STAGING` and `HYPE_IMAGE` alone; without
/// `HYPE_IMAGE` the pod is refused for want of an image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hype_image_gives_a_local_environment_its_image() {
    let server = KubeTestServer::start(common::backend::worker_processes());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(server.url())).unwrap();
    let run = |image: Option<&str>| {
        let mut command =
            tokio::process::Command::new(env!("CARGO_BIN_EXE_hype-test-cluster-submitter"));
        command
            .arg("local-env")
            .env("KUBECONFIG", &kubeconfig)
            .env("HYPE_CLUSTER", "kube")
            .env(
                "HYPE_STAGING",
                format!("file://{}", server.staging_dir().display()),
            )
            .env("HYPE_SHIP_EXECUTABLE", "0")
            .env_remove("HYPE_IMAGE")
            .kill_on_drop(true);
        if let Some(image) = image {
            command.env("HYPE_IMAGE", image);
        }
        command.output()
    };
    for (image, expected) in [(Some(IMAGE), "local-env: 5\n"), (None, "no image")] {
        let output = tokio::time::timeout(Duration::from_secs(120), run(image))
            .await
            .expect("hype-test-cluster-submitter local-env ends within 120 s")
            .expect("run hype-test-cluster-submitter");
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(out.contains(expected), "HYPE_IMAGE={image:?}: {out}");
    }
    server.shutdown().await;
}
