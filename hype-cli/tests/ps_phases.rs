//! `hype ps` shows where each execution is (issue 20 §5), run as a program
//! against the Kubernetes test double through a kubeconfig: a pod whose
//! image cannot be pulled (`image-pull`, with the pull error), one held in
//! ContainerCreating (`container-start`), one running, one ended, and one
//! the scheduler cannot place while a cluster autoscaler adds a node
//! (`waiting-for-node`, the scheduler's message and the autoscaler's
//! `TriggeredScaleUp`). Every request it sends is one the `hype-operator`
//! Role of docs/rbac.yaml allows. `hype ps --watch` lists again and ends
//! with exit code 0 on Ctrl-C (SIGINT). A running warm worker's phase is
//! the state its submitter wrote on it (`worker: busy 2, 37 calls`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hype_tests::kube_double::{Autoscaler, KubeTestServer, KubeletOptions};
use hype_tests::rbac;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use tokio::io::AsyncBufReadExt as _;

const HYPE: &str = env!("CARGO_BIN_EXE_hype");
const BOUND: Duration = Duration::from_secs(30);

/// Creates a hype pod of session `s1` running `image`.
async fn pod(client: &kube::Client, name: &str, image: &str) {
    create(client, hype_pod(name, image)).await;
}

async fn create(client: &kube::Client, pod: Pod) {
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &pod)
        .await
        .expect("create a pod");
}

/// A hype pod of session `s1` running `image`.
fn hype_pod(name: &str, image: &str) -> Pod {
    let labels = [
        ("app.kubernetes.io/managed-by", "hype"),
        ("hype.dev/session", "s1"),
        ("hype.dev/function", "f"),
        ("hype.dev/execution-id", name),
    ];
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "hype-run".to_owned(),
                image: Some(image.to_owned()),
                ..Default::default()
            }],
            restart_policy: Some("Never".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Waits until pod `name` satisfies `done`.
async fn until(server: &KubeTestServer, name: &str, what: &str, done: impl Fn(&Pod) -> bool) {
    let reached =
        hype_tests::wait_until(BOUND, || server.pod(name).as_ref().is_some_and(&done)).await;
    assert!(reached, "pod {name} is not {what}: {:?}", server.pod(name));
}

fn waiting_reason(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn placed(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| s.node_name.is_some())
}

/// Runs `hype args…` with `KUBECONFIG`, bounded: exit code, stdout, stderr.
async fn hype(args: &[&str], kubeconfig: &Path) -> (i32, String, String) {
    let run = tokio::process::Command::new(HYPE)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("hype ends within 120 s")
        .expect("run hype");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The row of `execution` in a listing: its cells up to NODE, and DETAIL.
fn row<'a>(listing: &'a str, execution: &str) -> (Vec<&'a str>, &'a str) {
    let header = listing.lines().next().expect("a header");
    let detail_at = header.find("DETAIL").expect("a DETAIL column");
    let line = listing
        .lines()
        .find(|l| l.starts_with(&format!("{execution} ")))
        .unwrap_or_else(|| panic!("no row of {execution}:\n{listing}"));
    let (cells, detail) = line.split_at(detail_at.min(line.len()));
    (cells.split_whitespace().collect(), detail.trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ps_shows_each_executions_phase_and_why_it_waits() {
    let dir = tempfile::tempdir().unwrap();
    // A program that runs until the test ends (`<exe> hype-run` runs it).
    let sleeper = dir.path().join("sleeper");
    std::fs::write(&sleeper, "#!/bin/sh\nexec sleep 120\n").unwrap();
    std::fs::set_permissions(
        &sleeper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let server = KubeTestServer::start(
        KubeletOptions::new()
            .image("echo:1", "/bin/echo")
            .image("sleeper:1", &sleeper),
    );
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(server.url())).unwrap();
    let client = server.client();

    pod(&client, "hype-f-pull", "registry.example/nowhere:1").await;
    pod(&client, "hype-f-run", "sleeper:1").await;
    pod(&client, "hype-f-done", "echo:1").await;
    until(&server, "hype-f-pull", "failing to pull", |p| {
        waiting_reason(p).is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
    })
    .await;
    until(&server, "hype-f-run", "running", |p| {
        phase(p) == Some("Running")
    })
    .await;
    until(&server, "hype-f-done", "ended", |p| {
        phase(p) == Some("Succeeded")
    })
    .await;
    // Held in ContainerCreating.
    server.faults().delay_start(Duration::from_secs(3600));
    pod(&client, "hype-f-slow", "echo:1").await;
    until(&server, "hype-f-slow", "creating its container", |p| {
        placed(p) && waiting_reason(p).as_deref() == Some("ContainerCreating")
    })
    .await;
    // No node for the next one; the autoscaler adds one, in an hour.
    let message = "0/3 nodes are available: 3 Insufficient cpu.";
    server.faults().unschedulable(message);
    server.faults().autoscaler(Autoscaler::ScaleUp {
        after: Duration::from_secs(3600),
    });
    pod(&client, "hype-f-wait", "echo:1").await;
    until(&server, "hype-f-wait", "unschedulable", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.reason.as_deref() == Some("Unschedulable"))
            })
    })
    .await;

    server.clear_request_log();
    let (code, listing, stderr) = hype(&["ps", "--kube"], &kubeconfig).await;
    assert_eq!(code, 0, "{stderr}");
    let header: Vec<&str> = listing.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "EXECUTION",
            "FUNCTION",
            "SESSION",
            "PHASE",
            "IN-PHASE",
            "AGE",
            "NODE",
            "DETAIL"
        ]
    );
    let (cells, detail) = row(&listing, "hype-f-pull");
    assert_eq!(cells[3], "image-pull", "{listing}");
    assert!(
        (detail.starts_with("ErrImagePull: ") || detail.starts_with("ImagePullBackOff: "))
            && detail.contains("nowhere:1"),
        "{listing}"
    );
    let (cells, detail) = row(&listing, "hype-f-slow");
    assert_eq!((cells[3], detail), ("container-start", "ContainerCreating"));
    let (cells, _) = row(&listing, "hype-f-run");
    assert_eq!(cells[3], "running", "{listing}");
    let (cells, detail) = row(&listing, "hype-f-done");
    assert_eq!(cells[3], "ended", "{listing}");
    assert!(
        detail.starts_with("Succeeded") && detail.contains("exit code 0"),
        "{listing}"
    );
    let (cells, detail) = row(&listing, "hype-f-wait");
    assert_eq!((cells[3], cells[6]), ("waiting-for-node", "-"), "{listing}");
    assert!(
        detail.contains(&format!("Unschedulable: {message}"))
            && detail.contains("autoscaler: TriggeredScaleUp: pod triggered scale-up"),
        "{listing}"
    );
    // Every row knows how long it has been in its phase.
    for execution in [
        "hype-f-pull",
        "hype-f-slow",
        "hype-f-run",
        "hype-f-done",
        "hype-f-wait",
    ] {
        let (cells, _) = row(&listing, execution);
        assert!(
            cells[4].ends_with('s') || cells[4].ends_with('m'),
            "{execution}: {listing}"
        );
    }
    let role = rbac::granted("hype-operator");
    let used: std::collections::BTreeSet<_> = server
        .request_log()
        .iter()
        .filter_map(|(method, uri)| rbac::request(method, uri))
        .collect();
    let missing: Vec<_> = used.difference(&role).collect();
    assert!(
        missing.is_empty(),
        "requests of `hype ps` that docs/rbac.yaml's hype-operator Role does not allow: {missing:?}"
    );
    assert!(
        server
            .request_log()
            .iter()
            .any(|(_, uri)| uri.contains("/events")),
        "the autoscaler's events were read"
    );

    // --watch lists again, until Ctrl-C, which ends it with exit code 0.
    let mut watch = tokio::process::Command::new(HYPE)
        .args(["ps", "--kube", "--watch", "--interval", "1s"])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut listings = 0;
    let mut rows = 0;
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("every 1s, at ") {
                listings += 1;
            }
            if line.starts_with("hype-f-wait ") {
                rows += 1;
                if rows == 2 {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("two listings within 30 s");
    assert_eq!((listings, rows), (2, 2));
    let pid = watch.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(BOUND, watch.wait())
        .await
        .expect("hype ps --watch ends on SIGINT")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn watch_intervals_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("none");
    for (interval, expected) in [
        ("0s", "from 1s to 10m"),
        ("11m", "from 1s to 10m"),
        ("2", "30s, 10m"),
    ] {
        let (code, _, stderr) = hype(&["ps", "--watch", "--interval", interval], &kubeconfig).await;
        assert_eq!(code, 2, "{interval}: {stderr}");
        assert!(
            stderr.contains("--interval") && stderr.contains(expected),
            "{interval}: {stderr}"
        );
    }
}

/// A running warm worker pod (label `hype.dev/role: worker`) shows the
/// state its submitter annotated it with in the PHASE column; one not
/// annotated yet shows `worker`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ps_shows_a_workers_state() {
    let dir = tempfile::tempdir().unwrap();
    let sleeper = dir.path().join("sleeper");
    std::fs::write(&sleeper, "#!/bin/sh\nexec sleep 120\n").unwrap();
    std::fs::set_permissions(
        &sleeper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let server = KubeTestServer::start(KubeletOptions::new().image("sleeper:1", &sleeper));
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(server.url())).unwrap();
    let client = server.client();
    for (name, annotations) in [
        (
            "hype-worker-busy",
            vec![
                ("hype.dev/worker-state", "busy"),
                ("hype.dev/worker-busy", "2"),
                ("hype.dev/worker-calls", "37"),
            ],
        ),
        ("hype-worker-new", vec![]),
    ] {
        let mut pod = hype_pod(name, "sleeper:1");
        let meta = &mut pod.metadata;
        meta.labels
            .get_or_insert_default()
            .insert("hype.dev/role".to_owned(), "worker".to_owned());
        meta.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        create(&client, pod).await;
        until(&server, name, "running", |p| phase(p) == Some("Running")).await;
    }
    let (code, listing, stderr) = hype(&["ps", "--kube"], &kubeconfig).await;
    assert_eq!(code, 0, "{stderr}");
    let line = |execution: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(&format!("{execution} ")))
            .unwrap_or_else(|| panic!("no row of {execution}:\n{listing}"))
            .to_owned()
    };
    assert!(
        line("hype-worker-busy").contains(" worker: busy 2, 37 calls "),
        "{listing}"
    );
    let (cells, _) = row(&listing, "hype-worker-new");
    assert_eq!(cells[3], "worker", "{listing}");
    server.shutdown().await;
}
