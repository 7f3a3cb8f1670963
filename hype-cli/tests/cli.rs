//! The `hype` command, run as a program: its refusals of bad command
//! lines; `hype gc --staging` on a directory; `hype gc --docker` on the
//! real engine (containers and volumes made here with dead and live
//! owners); `hype gc --kube`, `hype ps` and `hype logs` against the
//! Kubernetes test double, reached through a kubeconfig in `KUBECONFIG`,
//! and `hype ps|gc --gke` through the GKE double in front of it.
//! Which Leases `hype gc --kube` takes: a live session's never (a submitter
//! in this process, its call waiting in its pod), a submitter's killed
//! with SIGKILL on this host at once (this test binary run again as that
//! submitter), another host's only past its duration and the grace.
//!
//! The Docker tests skip with a loud message when no engine answers,
//! unless `HYPE_REQUIRE_DOCKER=1`, which makes that a failure.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountTypeEnum, VolumeCreateOptions};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, RemoveContainerOptions, RemoveVolumeOptions,
};
use hype_runtime::__tools::Owner;
use hype_runtime::Staging as _;
use hype_runtime::{KubeCluster, RunEnvironment, Submitter};
use hype_tests::gcs_server::GcsServer;
use hype_tests::gke_server::{ClusterAnswer, GkeServer};
use hype_tests::kube_double::{Executor, InProcessResult, KubeTestServer, KubeletOptions};
use hype_tests::{IMAGE, docker_image, rbac};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PersistentVolumeClaimSpec, Pod, PodSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio::io::AsyncBufReadExt as _;

const HYPE: &str = env!("CARGO_BIN_EXE_hype");
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const SESSION: &str = "hype.dev/session";
const OWNER: &str = "hype.dev/owner";
const LIFETIME: &str = "hype.dev/lifetime";

/// What a run of `hype` gave.
#[derive(Debug)]
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `hype args…` (with `KUBECONFIG` if given), bounded.
async fn hype(args: &[&str], kubeconfig: Option<&Path>) -> Output {
    match kubeconfig {
        Some(path) => hype_with(args, &[("KUBECONFIG", path.to_str().unwrap())]).await,
        None => hype_with(args, &[]).await,
    }
}

/// Runs `hype args…` with these environment variables (and no
/// `KUBECONFIG` unless among them), bounded.
async fn hype_with(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(HYPE);
    command
        .args(args)
        .kill_on_drop(true)
        .env_remove("KUBECONFIG")
        .envs(vars.iter().copied());
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("hype {args:?} did not finish within 120s"))
        .expect("run hype");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{}{nanos:x}", std::process::id())
}

/// An owner on this host that is gone: a boot before this one.
fn dead_owner() -> String {
    format!(
        "{}.1.00000000@{}",
        std::process::id(),
        Owner::current().host()
    )
}

#[tokio::test]
async fn bad_command_lines_say_what_is_wrong() {
    let out = hype(&["gc"], None).await;
    assert_eq!(out.code, 2, "{out:?}");
    for flag in ["--kube", "--docker", "--staging"] {
        assert!(out.stderr.contains(flag), "{out:?}");
    }
    let out = hype(&["gc", "--docker", "--grace", "5x"], None).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("--grace") && out.stderr.contains("30s, 10m, 2h or 7d"),
        "{out:?}"
    );
    let out = hype(
        &["gc", "--staging", "file:///tmp/x", "--older-than", "1w"],
        None,
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--older-than"), "{out:?}");
    let out = hype(&["gc", "--staging", "file:///tmp/x"], None).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--older-than"), "{out:?}");
    let out = hype(&["gc", "--namespace", "batch", "--docker"], None).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("--namespace is for Kubernetes"),
        "{out:?}"
    );
    let out = hype(
        &[
            "gc",
            "--staging",
            "file:///tmp/x",
            "--older-than",
            "1d",
            "--session",
            "s1",
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("--session does not go with --staging: a staging store records no sessions"),
        "{out:?}"
    );
    let out = hype(&["logs", "--session", "s1", "-f"], None).await;
    assert_eq!(out.code, 2, "-f needs one execution: {out:?}");
    let out = hype(&["gc", "--kube", "prod"], None).await;
    assert_eq!(out.code, 2, "a context needs `=`: {out:?}");
    let out = hype(&["logs"], None).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("EXECUTION_ID"), "{out:?}");
    let out = hype(
        &["gc", "--staging", "s3://bucket", "--older-than", "1d"],
        None,
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not supported"), "{out:?}");
}

#[tokio::test]
async fn gc_staging_removes_old_blobs_and_outcomes_only() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(dir.path().join("outcomes")).unwrap();
    let old_blob = blobs.join("a".repeat(64));
    let new_blob = blobs.join("b".repeat(64));
    let old_outcome = dir.path().join("outcomes/hype-f-old");
    let elsewhere = dir.path().join("notes");
    for path in [&old_blob, &new_blob, &old_outcome, &elsewhere] {
        std::fs::write(path, b"bytes").unwrap();
    }
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for path in [&old_blob, &old_outcome, &elsewhere] {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
    }
    let uri = format!("file://{}", dir.path().display());
    let args = ["gc", "--staging", &uri, "--older-than", "1s"];

    let dry = hype(&[&args[..], &["--dry-run"]].concat(), None).await;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        old_blob.exists() && old_outcome.exists(),
        "dry run removed: {dry:?}"
    );
    assert!(dry.stdout.contains("would remove 2 objects"), "{dry:?}");

    let out = hype(&args, None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!old_blob.exists() && !old_outcome.exists(), "{out:?}");
    assert!(new_blob.exists(), "a new blob was removed: {out:?}");
    assert!(
        elsewhere.exists(),
        "a file that is no staged object was removed"
    );
    let line = format!(
        "blob file://{} written 1h ago (older than 1s)",
        old_blob.display()
    );
    assert!(out.stdout.contains(&line), "{out:?}");
    assert!(out.stdout.contains("outcome file://"), "{out:?}");
    assert!(
        out.stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("removed 2 objects (1 blob, 1 outcome)")),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_staging_on_cloud_storage_removes_what_is_older() {
    let Some(server) = GcsServer::start("hype gc --staging gs://") else {
        return;
    };
    server.create_bucket("gc-bucket").await;
    let store = server.staging("gs://gc-bucket/hype");
    let blob = store.put_blob(b"old bytes".to_vec()).await.unwrap();
    let outcome = store
        .put_outcome("hype-f-1", b"out".to_vec())
        .await
        .unwrap();
    server
        .put_raw("gc-bucket", "hype/notes", b"x".to_vec())
        .await;
    server
        .put_raw("gc-bucket", "hype/blobs/sha256/not-a-digest", b"x".to_vec())
        .await;
    let emulator = [("STORAGE_EMULATOR_HOST", server.endpoint())];
    let args = |older_than: &'static str| {
        [
            "gc",
            "--staging",
            "gs://gc-bucket/hype",
            "--older-than",
            older_than,
        ]
    };

    let out = hype_with(&args("1h"), &emulator).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("nothing to remove"), "{out:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let dry = hype_with(&[&args("1s")[..], &["--dry-run"]].concat(), &emulator).await;
    assert!(dry.stdout.contains("would remove 2 objects"), "{dry:?}");
    assert_eq!(server.list("gc-bucket", "hype/").await.len(), 4, "{dry:?}");

    let out = hype_with(&args("1s"), &emulator).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("blob {} written", blob.uri)),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&format!("outcome {outcome} written")),
        "{out:?}"
    );
    let mut left = server.list("gc-bucket", "hype/").await;
    left.sort();
    assert_eq!(
        left,
        ["hype/blobs/sha256/not-a-digest", "hype/notes"],
        "{out:?}"
    );
}

/// A created (never started) container of the test image with `labels`,
/// mounting `volume` if given.
async fn container(
    docker: &Docker,
    image: &str,
    name: &str,
    labels: HashMap<String, String>,
    volume: Option<&str>,
) {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            mounts: volume.map(|volume| {
                vec![Mount {
                    typ: Some(MountTypeEnum::VOLUME),
                    source: Some(volume.to_owned()),
                    target: Some("/data".to_owned()),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    docker
        .create_container(Some(options), body)
        .await
        .unwrap_or_else(|err| panic!("create container {name}: {err}"));
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn container_exists(docker: &Docker, name: &str) -> bool {
    docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .is_ok()
}

async fn volume_exists(docker: &Docker, name: &str) -> bool {
    docker.inspect_volume(name).await.is_ok()
}

#[tokio::test]
async fn gc_docker_removes_dead_owners_containers_and_volumes_only() {
    let Some(docker) = docker_image::engine_or_skip("hype gc --docker").await else {
        return;
    };
    let image = docker_image::worker_image(&docker, Path::new(HYPE))
        .await
        .expect("build the test image");
    let session = unique("gc");
    let dead = dead_owner();
    let alive = Owner::current().to_string();
    let names = |what: &str| format!("hype-gc-test-{what}-{session}");
    let (dead_c, live_c) = (names("dead"), names("live"));
    let (dead_v, live_v, kept_v) = (names("dead-vol"), names("live-vol"), names("persistent"));
    let owned = |owner: &str| labels(&[(MANAGED_BY, "hype"), (SESSION, &session), (OWNER, owner)]);
    for (name, owner, lifetime) in [
        (&dead_v, &dead, "transient"),
        (&live_v, &alive, "transient"),
        (&kept_v, &dead, "persistent"),
    ] {
        let mut volume_labels = owned(owner);
        volume_labels.insert(LIFETIME.to_owned(), lifetime.to_owned());
        docker
            .create_volume(VolumeCreateOptions {
                name: Some(name.clone()),
                labels: Some(volume_labels),
                ..Default::default()
            })
            .await
            .expect("create a volume");
    }
    // The dead container mounts the dead volume: it must go first.
    container(&docker, &image, &dead_c, owned(&dead), Some(&dead_v)).await;
    container(&docker, &image, &live_c, owned(&alive), Some(&live_v)).await;

    let dry = hype(&["gc", "--docker", "--dry-run"], None).await;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout
            .contains(&format!("container {dead_c} owner {dead} is gone")),
        "{dry:?}"
    );
    assert!(
        dry.stdout
            .contains(&format!("volume {dead_v} owner {dead} is gone")),
        "{dry:?}"
    );
    assert!(
        dry.stdout.contains("dry run: nothing was removed"),
        "{dry:?}"
    );
    assert!(
        container_exists(&docker, &dead_c).await,
        "the dry run removed a container"
    );
    assert!(
        volume_exists(&docker, &dead_v).await,
        "the dry run removed a volume"
    );

    let out = hype(&["gc", "--docker"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("container {dead_c} ")),
        "{out:?}"
    );
    assert!(out.stdout.contains(&format!("volume {dead_v} ")), "{out:?}");
    assert!(
        !out.stdout.contains(&live_c) && !out.stdout.contains(&kept_v),
        "{out:?}"
    );
    assert!(!container_exists(&docker, &dead_c).await, "{out:?}");
    assert!(!volume_exists(&docker, &dead_v).await, "{out:?}");
    assert!(
        container_exists(&docker, &live_c).await,
        "a live owner's container went"
    );
    assert!(
        volume_exists(&docker, &live_v).await,
        "a live owner's volume went"
    );
    assert!(
        volume_exists(&docker, &kept_v).await,
        "a persistent volume went"
    );

    let ps = hype(&["ps", "--docker"], None).await;
    assert_eq!(ps.code, 0, "{ps:?}");
    assert!(ps.stdout.starts_with("EXECUTION"), "{ps:?}");
    assert!(
        ps.stdout.lines().any(|l| l.starts_with(&live_c)
            && l.contains(&session)
            && l.contains(" container-start ")),
        "{ps:?}"
    );

    let options = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    let _ = docker.remove_container(&live_c, Some(options)).await;
    for volume in [&live_v, &kept_v] {
        let _ = docker
            .remove_volume(volume, None::<RemoveVolumeOptions>)
            .await;
    }
}

/// The test double with a kubeconfig file that reaches it.
struct Kube {
    server: KubeTestServer,
    _dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
}

fn kube(garbage_collector: bool) -> Kube {
    let options = KubeletOptions::new()
        .image("echo:1", "/bin/echo")
        .garbage_collector(garbage_collector);
    let server = KubeTestServer::start(options);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(server.url())).unwrap();
    Kube {
        server,
        _dir: dir,
        kubeconfig,
    }
}

fn meta(name: &str, pairs: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

/// A holder on another host.
const ELSEWHERE: &str = "1.2.abc@elsewhere";

/// Creates the Lease `hype-<session>` last renewed `ago` before now, for
/// 60 s, held on another host.
async fn lease(client: &kube::Client, session: &str, ago: Duration) -> Lease {
    held_lease(client, session, ago, 60, ELSEWHERE).await
}

/// Creates the Lease `hype-<session>` held by `holder`, last renewed `ago`
/// before now, for `duration` seconds.
async fn held_lease(
    client: &kube::Client,
    session: &str,
    ago: Duration,
    duration: i32,
    holder: &str,
) -> Lease {
    let api: Api<Lease> = Api::default_namespaced(client.clone());
    let renewed = Timestamp::now() - SignedDuration::try_from(ago).unwrap();
    // The owner's text is no valid label value: an annotation on Leases.
    let mut metadata = meta(
        &format!("hype-{session}"),
        &[(MANAGED_BY, "hype"), (SESSION, session)],
    );
    metadata.annotations = Some(BTreeMap::from([(OWNER.to_owned(), holder.to_owned())]));
    let lease = Lease {
        metadata,
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(duration),
            acquire_time: Some(MicroTime(renewed)),
            renew_time: Some(MicroTime(renewed)),
            ..Default::default()
        }),
    };
    api.create(&PostParams::default(), &lease)
        .await
        .expect("create a lease")
}

fn owned_by(lease: Option<&Lease>) -> Option<Vec<OwnerReference>> {
    let lease = lease?;
    Some(vec![OwnerReference {
        api_version: "coordination.k8s.io/v1".to_owned(),
        kind: "Lease".to_owned(),
        name: lease.metadata.name.clone().unwrap(),
        uid: lease.metadata.uid.clone().unwrap(),
        ..Default::default()
    }])
}

/// Creates a hype pod of `session` (owned by `lease` if given).
async fn pod(client: &kube::Client, name: &str, session: &str, lease: Option<&Lease>) {
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let mut metadata = meta(
        name,
        &[
            (MANAGED_BY, "hype"),
            (SESSION, session),
            ("hype.dev/function", "add"),
            ("hype.dev/execution-id", name),
        ],
    );
    metadata.owner_references = owned_by(lease);
    let pod = Pod {
        metadata,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "hype-run".to_owned(),
                image: Some("echo:1".to_owned()),
                args: Some(vec![format!("hello from {name}")]),
                ..Default::default()
            }],
            restart_policy: Some("Never".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    api.create(&PostParams::default(), &pod)
        .await
        .expect("create a pod");
}

/// Creates a hype claim of `session` (`transient` or `persistent`).
async fn claim(
    client: &kube::Client,
    name: &str,
    session: &str,
    lifetime: &str,
    lease: Option<&Lease>,
) {
    let api: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    let mut metadata = meta(
        name,
        &[
            (MANAGED_BY, "hype"),
            (SESSION, session),
            (LIFETIME, lifetime),
        ],
    );
    metadata.owner_references = owned_by(lease);
    let claim = PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity("1Gi".to_owned()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    api.create(&PostParams::default(), &claim)
        .await
        .expect("create a claim");
}

fn names<K: kube::Resource>(objects: Vec<K>) -> Vec<String> {
    let mut names: Vec<String> = objects
        .into_iter()
        .filter(|o| o.meta().deletion_timestamp.is_none())
        .filter_map(|o| o.meta().name.clone())
        .collect();
    names.sort();
    names
}

/// Every request the double served since its log was last cleared is one
/// the `hype-operator` Role of `docs/rbac.yaml` allows.
fn the_operator_role_suffices(server: &KubeTestServer) {
    let role = rbac::granted("hype-operator");
    let used: std::collections::BTreeSet<_> = server
        .request_log()
        .iter()
        .filter_map(|(method, uri)| rbac::request(method, uri))
        .collect();
    assert!(!used.is_empty(), "the command sent no request");
    let missing: Vec<_> = used.difference(&role).collect();
    assert!(
        missing.is_empty(),
        "requests of `hype` that docs/rbac.yaml's hype-operator Role does not allow: {missing:?}"
    );
}

/// Sessions: `dead` (Lease 14 minutes old), `live` (renewed now), `gone`
/// (no Lease); a pod each, transient claims of `dead` and `live`, a
/// persistent claim of `dead`, and a pod that is not hype's.
async fn sessions(client: &kube::Client) {
    let dead = lease(client, "dead", Duration::from_secs(14 * 60)).await;
    let live = lease(client, "live", Duration::ZERO).await;
    pod(client, "hype-add-dead", "dead", Some(&dead)).await;
    pod(client, "hype-add-live", "live", Some(&live)).await;
    pod(client, "hype-add-gone", "gone", None).await;
    claim(
        client,
        "hype-request-dead",
        "dead",
        "transient",
        Some(&dead),
    )
    .await;
    claim(
        client,
        "hype-request-live",
        "live",
        "transient",
        Some(&live),
    )
    .await;
    claim(client, "data", "dead", "persistent", None).await;
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let mut other = Pod {
        metadata: meta("not-hype", &[(SESSION, "dead")]),
        ..Default::default()
    };
    other.spec = Some(PodSpec {
        containers: vec![Container {
            name: "main".to_owned(),
            image: Some("echo:1".to_owned()),
            ..Default::default()
        }],
        ..Default::default()
    });
    api.create(&PostParams::default(), &other)
        .await
        .expect("create a pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_kube_removes_stale_leases_and_their_sessions_objects_without_a_garbage_collector() {
    let kube = kube(false);
    let client = kube.server.client();
    sessions(&client).await;
    let config = Some(kube.kubeconfig.as_path());
    kube.server.clear_request_log();

    let dry = hype(&["gc", "--kube", "--dry-run"], config).await;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout
            .contains("lease hype-dead not renewed for 14m (duration 1m + grace 10m)"),
        "{dry:?}"
    );
    assert!(
        dry.stdout
            .contains("would remove 4 objects (1 claim, 1 lease, 2 pods)"),
        "{dry:?}"
    );
    assert_eq!(
        names(kube.server.leases()),
        ["hype-dead", "hype-live"],
        "{dry:?}"
    );
    assert_eq!(names(kube.server.pods()).len(), 4, "{dry:?}");

    let out = hype(&["gc", "--kube=double", "--namespace", "default"], config).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("pod hype-add-gone session gone has no lease (hype-gone is gone)"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(
            "pod hype-add-dead session dead's lease hype-dead not renewed for 14m (duration 1m + grace 10m)"
        ),
        "{out:?}"
    );
    assert!(out.stdout.contains("claim hype-request-dead "), "{out:?}");
    assert!(
        out.stdout
            .contains("removed 4 objects (1 claim, 1 lease, 2 pods)"),
        "{out:?}"
    );
    assert_eq!(names(kube.server.leases()), ["hype-live"], "{out:?}");
    assert_eq!(
        names(kube.server.pods()),
        ["hype-add-live", "not-hype"],
        "{out:?}"
    );
    assert_eq!(
        names(kube.server.pvcs()),
        ["data", "hype-request-live"],
        "{out:?}"
    );

    // A grace of 0s still leaves a Lease within its duration (renewed
    // just now, for 60 s), and its session's pod and claim.
    let out = hype(&["gc", "--kube", "--grace", "0s"], config).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("nothing to remove"), "{out:?}");
    assert_eq!(names(kube.server.leases()), ["hype-live"], "{out:?}");
    assert_eq!(
        names(kube.server.pods()),
        ["hype-add-live", "not-hype"],
        "{out:?}"
    );
    assert_eq!(
        names(kube.server.pvcs()),
        ["data", "hype-request-live"],
        "persistent claims stay: {out:?}"
    );
    the_operator_role_suffices(&kube.server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_kube_with_a_garbage_collector_and_an_unknown_context() {
    let kube = kube(true);
    let client = kube.server.client();
    sessions(&client).await;
    let config = Some(kube.kubeconfig.as_path());
    let out = hype(&["gc", "--kube"], config).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(names(kube.server.leases()), ["hype-live"], "{out:?}");
    assert_eq!(
        names(kube.server.pods()),
        ["hype-add-live", "not-hype"],
        "{out:?}"
    );
    assert_eq!(
        names(kube.server.pvcs()),
        ["data", "hype-request-live"],
        "{out:?}"
    );

    let out = hype(&["gc", "--kube=nowhere"], config).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("kubeconfig context nowhere"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ps_and_logs_show_hype_executions() {
    let kube = kube(true);
    let client = kube.server.client();
    let live = lease(&client, "live", Duration::ZERO).await;
    pod(&client, "hype-add-live", "live", Some(&live)).await;
    let config = Some(kube.kubeconfig.as_path());
    kube.server.clear_request_log();

    // Without --kube or --docker: Kubernetes, since KUBECONFIG loads.
    let ps = hype(&["ps"], config).await;
    assert_eq!(ps.code, 0, "{ps:?}");
    let header: Vec<&str> = ps
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
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
    let row = ps
        .stdout
        .lines()
        .find(|l| l.starts_with("hype-add-live"))
        .unwrap_or_else(|| panic!("no row: {ps:?}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..3], ["add", "live"], "{ps:?}");

    // The pod runs `/bin/echo hype-run <args>`: wait for it to end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let phase = kube
            .server
            .pod("hype-add-live")
            .and_then(|p| p.status)
            .and_then(|s| s.phase);
        if phase.as_deref() == Some("Succeeded") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pod did not end: {phase:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = hype(&["logs", "hype-add-live", "--kube"], config).await;
    assert_eq!(logs.code, 0, "{logs:?}");
    assert!(logs.stdout.contains("hello from hype-add-live"), "{logs:?}");
    let logs = hype(&["logs", "hype-add-live", "-f"], config).await;
    assert_eq!(logs.code, 0, "{logs:?}");
    assert!(logs.stdout.contains("hello from hype-add-live"), "{logs:?}");
    let missing = hype(&["logs", "hype-nope", "--kube"], config).await;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("no pod hype-nope in namespace default"),
        "{missing:?}"
    );
    the_operator_role_suffices(&kube.server);
}

/// The test double whose pods run their call in this process
/// (`execute_in_process`): a submitter on it runs real calls of
/// `hype_tests`' functions without a worker binary.
fn kube_in_process(garbage_collector: bool) -> Kube {
    hype_tests::link();
    let options = KubeletOptions::new()
        .executor(Executor::in_process(|pod| {
            let call = pod.args.first().cloned().unwrap_or_default();
            let run = hype_runtime::__tools::execute_in_process(&call, &pod.name);
            InProcessResult {
                exit_code: run.exit_code,
                termination_message: run.termination_message,
            }
        }))
        .garbage_collector(garbage_collector);
    let server = KubeTestServer::start(options);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(server.url())).unwrap();
    Kube {
        server,
        _dir: dir,
        kubeconfig,
    }
}

/// A submitter on `cluster`, staging in the double's directory, shipping
/// nothing (the double's pods run calls in this process).
async fn submitter(server: &KubeTestServer, cluster: KubeCluster) -> Submitter {
    let staging = format!("file://{}", server.staging_dir().display());
    let connecting = Submitter::builder(cluster)
        .staging(staging)
        .ship_executable(false)
        .build();
    tokio::time::timeout(Duration::from_secs(30), connecting)
        .await
        .expect("connect within 30 s")
        .expect("connect")
}

/// Waits until `dir` holds `n` entries: `rendezvous` calls that arrived.
async fn arrived(dir: &Path, n: usize) {
    let count = || std::fs::read_dir(dir).map_or(0, |d| d.count());
    assert!(
        hype_tests::wait_until(Duration::from_secs(30), || count() >= n).await,
        "{} of {n} calls arrived in {}",
        count(),
        dir.display()
    );
}

/// The session a Lease is of.
fn session_of(lease: &Lease) -> String {
    lease
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SESSION).cloned())
        .expect("the Lease names its session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_survives_gc_with_a_zero_grace() {
    let kube = kube_in_process(false);
    let config = Some(kube.kubeconfig.as_path());
    let submitter = submitter(&kube.server, KubeCluster::from_client(kube.server.client())).await;
    let meeting = tempfile::tempdir().unwrap();
    // The call waits in its pod until a second entry appears in `meeting`.
    let call = {
        let (submitter, dir) = (submitter.clone(), meeting.path().display().to_string());
        tokio::spawn(async move {
            let env = RunEnvironment::new(IMAGE);
            submitter
                .run(hype_tests::process::rendezvous(dir, 2), &env)
                .await
        })
    };
    arrived(meeting.path(), 1).await;
    let leases = names(kube.server.leases());
    let pods = names(kube.server.pods());
    assert_eq!((leases.len(), pods.len()), (1, 1), "{leases:?} {pods:?}");

    // This process holds the Lease and runs: never stale, whatever the
    // grace.
    let out = hype(&["gc", "--kube", "--grace", "0s"], config).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("nothing to remove"), "{out:?}");
    assert_eq!(names(kube.server.leases()), leases, "{out:?}");
    assert_eq!(names(kube.server.pods()), pods, "{out:?}");

    std::fs::write(meeting.path().join("go"), b"").unwrap();
    let returned = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the call ends within 30 s")
        .expect("the call's task");
    assert_eq!(returned.expect("the call"), Ok(2), "{out:?}");
    submitter.close().await.expect("close");
}

/// The variable that makes [`killed_submitter_child`] a submitter: the
/// directory of its call's rendezvous.
const CHILD: &str = "HYPE_CLI_TEST_SUBMITTER";

/// Not a test of its own: the submitter that
/// [`a_submitter_killed_on_this_host_is_collected_at_once`] starts (this
/// test binary again, with [`CHILD`] set) and kills with SIGKILL. It
/// connects to the cluster of `KUBECONFIG`, starts one call that waits in
/// its pod, prints `ready <pid>` and waits for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child of a_submitter_killed_on_this_host_is_collected_at_once"]
async fn killed_submitter_child() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    hype_tests::link();
    let staging = std::env::var("HYPE_STAGING").expect("HYPE_STAGING");
    let submitter = Submitter::builder(KubeCluster::new())
        .staging(staging)
        .ship_executable(false)
        .build()
        .await
        .expect("connect");
    let env = RunEnvironment::new(IMAGE);
    let call = tokio::spawn({
        let submitter = submitter.clone();
        async move {
            submitter
                .run(hype_tests::process::rendezvous(dir, 2), &env)
                .await
        }
    });
    println!("ready {}", std::process::id());
    let _ = call.await;
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_killed_on_this_host_is_collected_at_once() {
    let kube = kube_in_process(false);
    let config = Some(kube.kubeconfig.as_path());
    let meeting = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "killed_submitter_child",
            "--nocapture",
        ])
        .env(CHILD, meeting.path())
        .env("KUBECONFIG", &kube.kubeconfig)
        .env(
            "HYPE_STAGING",
            format!("file://{}", kube.server.staging_dir().display()),
        )
        .env_remove("HYPE_CLUSTER")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the submitter");
    let pid = child.id().expect("running");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = format!("ready {pid}");
    let waiting = async {
        while let Some(line) = lines.next_line().await.expect("its stdout") {
            if line == ready {
                return;
            }
        }
        panic!("the submitter ended before it was ready");
    };
    tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the submitter gets ready within 60 s");
    // Its call runs (in this process, the double's pod).
    arrived(meeting.path(), 1).await;
    let lease = kube.server.leases().pop().expect("the submitter's Lease");
    let session = session_of(&lease);
    let holder = lease.spec.and_then(|s| s.holder_identity).unwrap();
    assert!(holder.starts_with(&format!("{pid}.")), "{holder}");
    let pods = names(kube.server.pods());
    assert_eq!(pods.len(), 1, "{pods:?}");

    child.start_kill().expect("kill -9");
    let status = child.wait().await.expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    // Renewed seconds ago, within its 60 s and the default grace of 10m:
    // its holder is gone, so it goes at once.
    let out = hype(&["gc", "--kube"], config).await;
    assert_eq!(out.code, 0, "{out:?}");
    let why = format!("is held by {holder}, which no longer runs on this host");
    assert!(
        out.stdout.contains(&format!("lease hype-{session} {why}")),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&format!(
            "pod {} session {session}'s lease hype-{session} {why}",
            pods[0]
        )),
        "{out:?}"
    );
    assert_eq!(names(kube.server.leases()), Vec::<String>::new(), "{out:?}");
    assert_eq!(names(kube.server.pods()), Vec::<String>::new(), "{out:?}");
    // Let the orphaned call's thread end.
    std::fs::write(meeting.path().join("go"), b"").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_of_another_host_goes_only_past_its_duration_and_the_grace() {
    let kube = kube(false);
    let client = kube.server.client();
    let config = Some(kube.kubeconfig.as_path());
    // Both held for 5 minutes: one renewed 4 minutes ago (a minute left),
    // one 6 minutes ago (expired a minute ago).
    let within = held_lease(&client, "within", Duration::from_secs(240), 300, ELSEWHERE).await;
    let expired = held_lease(&client, "expired", Duration::from_secs(360), 300, ELSEWHERE).await;
    pod(&client, "hype-add-within", "within", Some(&within)).await;
    pod(&client, "hype-add-expired", "expired", Some(&expired)).await;

    // Expired a minute ago, but within a grace of 2 minutes.
    let out = hype(&["gc", "--kube", "--grace", "2m"], config).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("nothing to remove"), "{out:?}");
    assert_eq!(
        names(kube.server.leases()),
        ["hype-expired", "hype-within"],
        "{out:?}"
    );

    let out = hype(&["gc", "--kube", "--grace", "0s"], config).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("lease hype-expired not renewed for 6m (duration 5m + grace 0s)"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("removed 2 objects (1 lease, 1 pod)"),
        "{out:?}"
    );
    assert_eq!(names(kube.server.leases()), ["hype-within"], "{out:?}");
    assert_eq!(names(kube.server.pods()), ["hype-add-within"], "{out:?}");
}

/// Waits until pod `name` on the double has succeeded.
async fn succeeded(server: &KubeTestServer, name: &str) {
    let phase = || {
        server
            .pod(name)
            .and_then(|p| p.status)
            .and_then(|s| s.phase)
    };
    assert!(
        hype_tests::wait_until(Duration::from_secs(30), || phase().as_deref()
            == Some("Succeeded"))
        .await,
        "pod {name} did not end: {:?}",
        phase()
    );
}

/// `--gke PROJECT/LOCATION/CLUSTER`: the cluster's endpoint and CA from
/// the GKE API (its double, through `HYPE_GKE_API_ENDPOINT`), Application
/// Default Credentials from `GOOGLE_APPLICATION_CREDENTIALS`, no
/// kubeconfig; the GKE double forwards to the Kubernetes double, whose
/// pods `hype ps` then lists. Bad values name the flag and the form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ps_and_gc_reach_a_gke_cluster_without_kubeconfig() {
    let kube = kube(false);
    let client = kube.server.client();
    let lease = lease(&client, "on-gke", Duration::ZERO).await;
    pod(&client, "hype-add-on-gke", "on-gke", Some(&lease)).await;
    let gke = GkeServer::start(Duration::from_secs(3600)).await;
    gke.set_cluster("p", "europe-west1", "c", ClusterAnswer::Running);
    gke.forward_kube_to(kube.server.url());
    let dir = tempfile::tempdir().unwrap();
    let adc = dir.path().join("adc.json");
    std::fs::write(&adc, gke.credentials_json()).unwrap();
    let vars = [
        ("HYPE_GKE_API_ENDPOINT", gke.api_endpoint()),
        ("GOOGLE_APPLICATION_CREDENTIALS", adc.to_str().unwrap()),
        ("HOME", dir.path().to_str().unwrap()),
    ];

    let ps = hype_with(&["ps", "--gke", "p/europe-west1/c"], &vars).await;
    assert_eq!(ps.code, 0, "{ps:?}");
    let rows: Vec<&str> = ps.stdout.lines().skip(1).collect();
    assert!(
        rows.len() == 1 && rows[0].starts_with("hype-add-on-gke "),
        "{ps:?}"
    );
    assert!(
        gke.api_requests()
            .iter()
            .any(|s| s.valid && s.path == "/v1/projects/p/locations/europe-west1/clusters/c"),
        "{:?}",
        gke.api_requests()
    );
    assert!(
        !gke.kube_requests().is_empty() && gke.kube_requests().iter().all(|s| s.valid),
        "{:?}",
        gke.kube_requests()
    );
    // gc reaches it the same way; the live session stays.
    let out = hype_with(&["gc", "--gke", "p/europe-west1/c", "--dry-run"], &vars).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(names(kube.server.pods()), ["hype-add-on-gke"], "{out:?}");

    // A cluster the GKE API does not know: the error names it.
    let out = hype_with(&["ps", "--gke", "p/europe-west1/nope"], &vars).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("GKE cluster p/europe-west1/nope"),
        "{out:?}"
    );

    for bad in ["p/l", "p//c", "p/l/c/d", ""] {
        let out = hype_with(&["ps", "--gke", bad], &vars).await;
        assert_eq!(out.code, 2, "{bad}: {out:?}");
        assert!(
            out.stderr.contains("--gke")
                && out.stderr.contains("expected PROJECT/LOCATION/CLUSTER"),
            "{bad}: {out:?}"
        );
    }
    let out = hype_with(&["ps", "--gke", "p/l/c", "--kube"], &vars).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("--gke") && out.stderr.contains("--kube"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_limits_gc_ps_and_logs_on_kubernetes() {
    let kube = kube(false);
    let client = kube.server.client();
    let config = Some(kube.kubeconfig.as_path());
    let old = Duration::from_secs(14 * 60);
    for session in ["dead", "also-dead"] {
        let lease = lease(&client, session, old).await;
        pod(
            &client,
            &format!("hype-add-{session}"),
            session,
            Some(&lease),
        )
        .await;
    }
    let live = lease(&client, "live", Duration::ZERO).await;
    pod(&client, "hype-add-live", "live", Some(&live)).await;
    kube.server.clear_request_log();

    let ps = hype(&["ps", "--kube", "--session", "dead"], config).await;
    assert_eq!(ps.code, 0, "{ps:?}");
    let rows: Vec<&str> = ps.stdout.lines().skip(1).collect();
    assert!(
        rows.len() == 1 && rows[0].starts_with("hype-add-dead "),
        "{ps:?}"
    );

    // Only the session named goes, though another is as dead.
    let out = hype(&["gc", "--kube", "--session", "dead"], config).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("removed 2 objects (1 lease, 1 pod)"),
        "{out:?}"
    );
    assert_eq!(
        names(kube.server.leases()),
        ["hype-also-dead", "hype-live"],
        "{out:?}"
    );
    assert_eq!(
        names(kube.server.pods()),
        ["hype-add-also-dead", "hype-add-live"],
        "{out:?}"
    );

    // A session with nothing there says so.
    let out = hype(&["gc", "--kube", "--session", "nope"], config).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("hype gc: session nope has no lease, pod or claim in namespace default"),
        "{out:?}"
    );
    let ps = hype(&["ps", "--kube", "--session", "nope"], config).await;
    assert_eq!(ps.code, 1, "{ps:?}");
    assert!(
        ps.stderr
            .contains("hype ps: no execution of session nope in namespace default"),
        "{ps:?}"
    );
    let logs = hype(&["logs", "--kube", "--session", "nope"], config).await;
    assert_eq!(logs.code, 1, "{logs:?}");
    assert!(
        logs.stderr
            .contains("no execution of session nope in namespace default")
            && logs
                .stderr
                .replace('\n', " ")
                .contains("hype keeps no copy"),
        "{logs:?}"
    );

    // The logs of a session: each execution's, under its name.
    succeeded(&kube.server, "hype-add-live").await;
    let logs = hype(&["logs", "--kube", "--session", "live"], config).await;
    assert_eq!(logs.code, 0, "{logs:?}");
    assert!(
        logs.stdout
            .starts_with("==> hype-add-live <==\nhype-run hello from hype-add-live"),
        "{logs:?}"
    );
    let logs = hype(
        &["logs", "hype-add-live", "--kube", "--session", "dead"],
        config,
    )
    .await;
    assert_eq!(logs.code, 1, "{logs:?}");
    assert!(
        logs.stderr
            .contains("pod hype-add-live in namespace default is of session live, not dead"),
        "{logs:?}"
    );

    // Once its pod is gone, a log is gone: `hype logs` says so, and what
    // is left.
    let logs = hype(&["logs", "hype-add-dead", "--kube"], config).await;
    assert_eq!(logs.code, 1, "{logs:?}");
    for said in [
        "no pod hype-add-dead in namespace default: if it ran, its call has ended and its log went with the pod",
        "hype keeps no copy",
        "the submitter's stderr",
        "Cloud Logging on GKE",
    ] {
        assert!(
            logs.stderr.replace('\n', " ").contains(said),
            "{said:?} in {logs:?}"
        );
    }
    the_operator_role_suffices(&kube.server);
}

#[tokio::test]
async fn session_limits_gc_ps_and_logs_on_docker() {
    let Some(docker) = docker_image::engine_or_skip("hype gc --docker --session").await else {
        return;
    };
    let image = docker_image::worker_image(&docker, Path::new(HYPE))
        .await
        .expect("build the test image");
    let (one, two) = (unique("one"), unique("two"));
    let dead = dead_owner();
    let name = |session: &str| format!("hype-gc-session-{session}");
    for session in [&one, &two] {
        let owned = labels(&[(MANAGED_BY, "hype"), (SESSION, session), (OWNER, &dead)]);
        container(&docker, &image, &name(session), owned, None).await;
    }

    let ps = hype(&["ps", "--docker", "--session", &two], None).await;
    assert_eq!(ps.code, 0, "{ps:?}");
    let rows: Vec<&str> = ps.stdout.lines().skip(1).collect();
    assert!(
        rows.len() == 1 && rows[0].starts_with(&name(&two)),
        "{ps:?}"
    );

    let out = hype(&["gc", "--docker", "--session", &one], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("container {} owner {dead} is gone", name(&one))),
        "{out:?}"
    );
    assert!(!out.stdout.contains(&name(&two)), "{out:?}");
    assert!(!container_exists(&docker, &name(&one)).await, "{out:?}");
    assert!(container_exists(&docker, &name(&two)).await, "{out:?}");

    let out = hype(&["gc", "--docker", "--session", &one], None).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "session {one} has no container or volume on the Docker engine"
        )),
        "{out:?}"
    );
    let logs = hype(&["logs", "--docker", "--session", &two], None).await;
    assert_eq!(logs.code, 0, "{logs:?}");
    assert!(
        logs.stdout.starts_with(&format!("==> {} <==", name(&two))),
        "{logs:?}"
    );
    let logs = hype(&["logs", &name(&one), "--docker"], None).await;
    assert_eq!(logs.code, 1, "{logs:?}");
    assert!(
        logs.stderr.contains(&format!(
            "no container {} on the Docker engine: if it ran, its call has ended and its log went with the container",
            name(&one)
        )) && logs.stderr.replace('\n', " ").contains("hype keeps no copy"),
        "{logs:?}"
    );

    let options = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    let _ = docker.remove_container(&name(&two), Some(options)).await;
}
