//! A submitter killed with `kill -9` in the middle of its calls, on the
//! container backends, with `hype-test-cluster-submitter`: on Kubernetes
//! (the test double) its pods run on and its Lease, transient claim and
//! pods stay until `hype gc --kube` collects them; on Docker its containers
//! and transient volume stay until `hype gc --docker` removes them. After
//! `hype gc`, nothing of the killed session is left. The same holds for a
//! submitter killed while its calls run on warm workers (issue 19): its
//! busy worker pods, their calls' processes, its Lease and claim are gone
//! after `hype gc --kube --grace 0s`. (The local runner's
//! kill test is in `interrupt.rs`: its children die with it.)
//!
//! These tests run the `hype` binary of `hype-cli`, which `cargo test
//! --workspace` builds next to this package's binaries. The Docker test
//! skips with a loud message when no engine answers, unless
//! `HYPE_REQUIRE_DOCKER=1`.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::query_parameters::{ListContainersOptions, ListVolumesOptions};
use hype_tests::IMAGE;
use hype_tests::docker_image;
use hype_tests::kube_double::KubeTestServer;
use tokio::io::AsyncBufReadExt as _;

const SUBMITTER: &str = env!("CARGO_BIN_EXE_hype-test-cluster-submitter");

/// The `hype` command, built by `cargo test --workspace` in the same
/// directory as this package's binaries.
fn hype_command() -> PathBuf {
    let path = PathBuf::from(SUBMITTER).with_file_name("hype");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p hype-cli --bin hype` (`cargo test --workspace` does)",
        path.display()
    );
    path
}

/// Starts the submitter in `mode` with `vars`; gives it once it printed
/// `ready`.
async fn start_submitter(mode: &str, vars: &[(&str, String)]) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(SUBMITTER);
    command
        .arg(mode)
        .env_remove("HYPE_CLUSTER")
        .env_remove("HYPE_STAGING")
        .env_remove("HYPE_EXECUTABLE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (key, value) in vars {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start hype-test-cluster-submitter");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the submitter gets ready within 60 s")
        .expect("its stdout")
        .expect("a line");
    assert_eq!(ready, format!("ready {}", child.id().expect("running")));
    child
}

/// Kills the submitter with SIGKILL and reaps it.
async fn kill_9(child: &mut tokio::process::Child) {
    child.start_kill().expect("kill -9");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("it dies")
        .expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
}

/// Runs `hype args…` with `vars`, bounded; gives its exit code and stdout.
async fn hype(args: &[&str], vars: &[(&str, String)]) -> (i32, String) {
    let mut command = tokio::process::Command::new(hype_command());
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for (key, value) in vars {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("hype ends within 120 s")
        .expect("run hype");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("hype {}:\n{stdout}{stderr}", args.join(" "));
    (output.status.code().unwrap_or(-1), stdout)
}

/// The processes of calls running on worker pods: children of a pod's
/// processes in a process group of their own (a worker starts each call
/// so), which `pod_processes` does not count.
fn call_processes(server: &KubeTestServer) -> Vec<u32> {
    let pods = server.pod_processes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !pods.contains(pid))
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let mut fields = stat
                .rsplit_once(')')
                .map(|(_, r)| r)
                .unwrap_or("")
                .split_whitespace();
            let (state, parent) = (fields.next(), fields.next());
            state != Some("Z")
                && parent
                    .and_then(|p| p.parse().ok())
                    .is_some_and(|p| pods.contains(&p))
        })
        .collect()
}

/// Whether process `pid` still runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_killed_on_kubernetes_leaves_nothing_after_hype_gc() {
    killed_on_kubernetes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_killed_with_busy_workers_leaves_nothing_after_hype_gc() {
    killed_on_kubernetes(true).await;
}

/// Kills the submitter mid-call, on one pod per call or (`workers`) on two
/// busy warm workers, and checks `hype gc` leaves nothing of its session.
async fn killed_on_kubernetes(workers: bool) {
    let server = KubeTestServer::start(common::backend::worker_processes());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(server.url())).expect("write the kubeconfig");
    let vars = [
        ("KUBECONFIG", kubeconfig.display().to_string()),
        (
            "HYPE_STAGING",
            format!("file://{}", server.staging_dir().display()),
        ),
        ("HYPE_IMAGE", IMAGE.to_owned()),
    ];
    let mode = [("TEST_WORKERS", if workers { "1" } else { "0" }.to_owned())];
    let mut submitter = start_submitter("kube", &[&vars[..], &mode[..]].concat()).await;
    let running = || {
        server
            .pods()
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count()
    };
    assert!(
        hype_tests::wait_until(Duration::from_secs(30), || running() == 2).await,
        "the two calls' pods never ran: {:?}",
        server.pods()
    );
    let roles: Vec<Option<String>> = server
        .pods()
        .iter()
        .map(|p| p.metadata.labels.as_ref()?.get("hype.dev/role").cloned())
        .collect();
    let calls = if workers {
        assert_eq!(
            roles,
            [Some("worker".to_owned()), Some("worker".to_owned())]
        );
        // Both workers busy: each runs its call's process.
        assert!(
            hype_tests::wait_until(Duration::from_secs(30), || call_processes(&server).len()
                == 2)
            .await,
            "the workers never ran the two calls: {:?}",
            call_processes(&server)
        );
        call_processes(&server)
    } else {
        assert_eq!(roles, [None, None]);
        Vec::new()
    };
    let session = server.leases()[0]
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("hype.dev/session").cloned())
        .expect("the Lease names its session");
    kill_9(&mut submitter).await;

    // Nobody is left to clean up. A submitter killed with SIGKILL and
    // reaped (`kill_9` waited for it) can send nothing more, so there is
    // no moment to wait for: what it left is what the double holds now.
    // The pods run on, the Lease and the transient claim stay, and the
    // double's request log shows the submitter deleted nothing.
    assert_eq!(running(), 2, "the pods run on");
    assert_eq!(server.leases().len(), 1);
    assert_eq!(server.pvcs().len(), 1, "the transient claim stays");
    let deletes = || {
        server
            .request_log()
            .into_iter()
            .filter(|(method, _)| method == "DELETE")
            .collect::<Vec<_>>()
    };
    assert_eq!(deletes(), [], "the killed submitter deleted nothing");
    let pods: Vec<String> = server
        .pods()
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    let claims: Vec<String> = server
        .pvcs()
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();

    let started = Instant::now();
    let (code, out) = hype(&["gc", "--kube", "--grace", "0s"], &vars).await;
    assert_eq!(code, 0, "{out}");
    // Everything stayed until `hype gc` looked: it names the Lease of the
    // dead holder (gone at once, on this host: no need to wait for its
    // duration), and each pod and claim of the session as it deletes it.
    assert!(
        out.contains(&format!("lease hype-{session} is held by"))
            && out.contains("which no longer runs on this host"),
        "{out}"
    );
    for name in &pods {
        assert!(
            out.contains(&format!("pod {name} session {session}")),
            "{out}"
        );
    }
    for name in &claims {
        assert!(
            out.contains(&format!("claim {name} session {session}")),
            "{out}"
        );
    }
    let of_session = |labels: Option<&std::collections::BTreeMap<String, String>>| {
        labels.and_then(|l| l.get("hype.dev/session")) == Some(&session)
    };
    let left = || {
        let pods = server
            .pods()
            .into_iter()
            .filter(|p| of_session(p.metadata.labels.as_ref()))
            .count();
        let claims = server
            .pvcs()
            .into_iter()
            .filter(|c| of_session(c.metadata.labels.as_ref()))
            .count();
        (pods, claims, server.leases().len())
    };
    assert!(
        hype_tests::wait_until(Duration::from_secs(40), || left() == (0, 0, 0)).await,
        "left after hype gc (pods, claims, leases): {:?}",
        left()
    );
    println!(
        "killed submitter on the double: nothing left {:?} after hype gc started",
        started.elapsed()
    );
    assert!(
        hype_tests::wait_until(Duration::from_secs(10), || server
            .pod_processes()
            .is_empty())
        .await,
        "pod processes left: {:?}",
        server.pod_processes()
    );
    assert!(
        hype_tests::wait_until(Duration::from_secs(10), || !calls.iter().any(|p| alive(*p))).await,
        "call processes of the workers left: {calls:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_killed_on_docker_leaves_nothing_after_hype_gc() {
    let Some(docker) = docker_image::engine_or_skip("killed_submitter on Docker").await else {
        return;
    };
    let image = docker_image::worker_image(&docker, &common::worker())
        .await
        .expect("build the test image");
    let mut submitter = start_submitter("docker", &[("HYPE_IMAGE", image)]).await;
    let owner_prefix = format!("{}.", submitter.id().expect("running"));
    let owned = |labels: Option<&std::collections::HashMap<String, String>>| {
        labels
            .and_then(|l| l.get("hype.dev/owner"))
            .is_some_and(|o| o.starts_with(&owner_prefix))
    };
    // The names of the containers and transient volumes the submitter
    // owns.
    let owned_names = || async {
        let filters = std::collections::HashMap::from([(
            "label".to_owned(),
            vec!["app.kubernetes.io/managed-by=hype".to_owned()],
        )]);
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .expect("list containers")
            .into_iter()
            .filter(|c| owned(c.labels.as_ref()))
            .filter_map(|c| c.names?.into_iter().next())
            .map(|name| name.trim_start_matches('/').to_owned())
            .collect::<Vec<_>>();
        let volumes = docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .expect("list volumes")
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|v| owned(Some(&v.labels)))
            .map(|v| v.name)
            .collect::<Vec<_>>();
        (containers, volumes)
    };
    let left = || async {
        let (containers, volumes) = owned_names().await;
        (containers.len(), volumes.len())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while left().await != (2, 1) {
        assert!(
            Instant::now() < deadline,
            "the calls' containers and volume never appeared: {:?}",
            left().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill_9(&mut submitter).await;
    // As on Kubernetes: a submitter killed with SIGKILL and reaped does
    // nothing more, so what it left is there now, and nobody is left to
    // remove it.
    let (containers, volumes) = owned_names().await;
    assert_eq!(
        (containers.len(), volumes.len()),
        (2, 1),
        "nobody is left to remove them: {containers:?} {volumes:?}"
    );

    let started = Instant::now();
    let (code, out) = hype(&["gc", "--docker"], &[]).await;
    assert_eq!(code, 0, "{out}");
    // They stayed until `hype gc` looked: it names each as it removes it.
    for name in &containers {
        assert!(out.contains(&format!("container {name} ")), "{out}");
    }
    for name in &volumes {
        assert!(out.contains(&format!("volume {name} ")), "{out}");
    }
    assert_eq!(left().await, (0, 0), "left after hype gc --docker:\n{out}");
    println!(
        "killed submitter on Docker: nothing left {:?} after hype gc started",
        started.elapsed()
    );
}
