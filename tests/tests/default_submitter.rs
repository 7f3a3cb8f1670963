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
