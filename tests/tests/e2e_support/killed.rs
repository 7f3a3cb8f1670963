//! `kill -9` of a submitter mid-call, then `hype gc`: the submitter is
//! this program again (`HYPE_E2E_ROLE=killed-submitter`), in a namespace of
//! its own (so `hype gc --grace 0s` there touches no live session), with
//! two long calls, one of them writing a transient claim. After the kill,
//! its Lease, pods and claim stay; `hype gc` deletes the Lease, and the
//! cluster's garbage collector the rest (waited for with a bound).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hype::{RunEnvironment, VolumeRequest};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tokio::io::AsyncBufReadExt as _;

use super::setup::{self, Config, Ctx, NamespaceGuard, SESSION_LABEL};

/// The variable that makes this program the submitter to kill.
pub const ROLE: &str = "HYPE_E2E_ROLE";
const NAMESPACE: &str = "HYPE_E2E_NAMESPACE";

/// How long the cluster's garbage collector may take after `hype gc`.
const BOUND_GC: Duration = Duration::from_secs(300);

/// The child: connects in `HYPE_E2E_NAMESPACE`, starts the two calls,
/// prints `ready <pid>` and waits for them (it is killed first).
pub async fn submitter_to_kill(config: Config) {
    let namespace = std::env::var(NAMESPACE).expect("HYPE_E2E_NAMESPACE");
    let kube_config = config.kube_config().await.expect("the kubeconfig");
    let client = kube::Client::try_from(kube_config).expect("a client");
    let submitter = setup::connect(&config, &client, &namespace, |k| k)
        .await
        .expect("connect");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let env: RunEnvironment = config
        .env(dir.path(), "", "")
        .with_timeout(Duration::from_secs(900));
    let scratch = VolumeRequest::new(&config.storage_class, "1Gi");
    let with_volume = env.clone().with_mount(scratch.mount_read_write("/scratch"));
    let calls = [with_volume, env].map(|env| {
        let s = submitter.clone();
        tokio::spawn(async move { s.run(hype_tests::containers::sleep(600_000), &env).await })
    });
    println!("ready {}", std::process::id());
    for call in calls {
        let _ = call.await;
    }
}

/// The `hype` command of hype-cli, next to this package's binaries.
fn hype_command() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_hype-test-worker")).with_file_name("hype");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p hype-cli --bin hype`",
        path.display()
    );
    path
}

/// The scenario.
pub async fn a_killed_submitter_leaves_nothing_after_hype_gc(c: &Ctx) {
    let hype = hype_command();
    let kube_config = c.config.kube_config().await.unwrap();
    let name = format!("{}-gc", c.namespace.name);
    let namespace = NamespaceGuard::create(&c.client, &kube_config, &name)
        .await
        .unwrap();
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(ROLE, "killed-submitter")
        .env(NAMESPACE, &namespace.name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the submitter to kill");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(180), lines.next_line())
        .await
        .expect("the submitter gets ready within 180 s")
        .unwrap()
        .unwrap_or_default();
    assert_eq!(ready, format!("ready {}", child.id().unwrap()));

    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &namespace.name);
    let running = || async {
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while running().await < 2 {
        let all = pods.list(&ListParams::default()).await.unwrap().items;
        let phases: Vec<_> = all
            .iter()
            .map(|p| {
                (
                    p.metadata.name.clone(),
                    p.status.clone().and_then(|s| s.phase),
                )
            })
            .collect();
        assert!(
            Instant::now() < deadline,
            "the two calls' pods were not Running within 300 s: {phases:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), &namespace.name);
    let lease = leases.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(lease.len(), 1, "one Lease: {lease:?}");
    let session = lease[0]
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SESSION_LABEL).cloned())
        .expect("the Lease names its session");

    child.start_kill().expect("kill -9");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("it dies")
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let stayed = setup::session_objects(&c.client, &namespace.name, &session).await;
    assert!(
        stayed.iter().filter(|o| o.starts_with("pod ")).count() == 2
            && stayed.iter().any(|o| o.starts_with("claim "))
            && stayed.iter().any(|o| o.starts_with("lease ")),
        "nobody is left to clean up, so everything stays: {stayed:?}"
    );

    let mut command = tokio::process::Command::new(hype);
    command
        .arg("gc")
        .arg(match &c.config.context {
            Some(context) => format!("--kube={context}"),
            None => "--kube".to_owned(),
        })
        .args(["--namespace", &namespace.name, "--grace", "0s"])
        .env("KUBECONFIG", &c.config.kubeconfig)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("hype gc ends within 180 s")
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "hype gc: {out}{err}");
    // The submitter ran on this host: its Lease goes at once, without
    // waiting for its duration.
    assert!(
        out.contains(&format!("lease hype-{session} is held by"))
            && out.contains("which no longer runs on this host"),
        "{out}{err}"
    );
    let started = Instant::now();
    let left = setup::wait_for_none(&c.client, &namespace.name, &session, BOUND_GC).await;
    assert!(left.is_empty(), "left {BOUND_GC:?} after hype gc: {left:?}");
    eprintln!(
        "e2e: nothing of the killed session left {:?} after hype gc ended",
        started.elapsed()
    );
}
