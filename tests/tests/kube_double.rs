//! The Kubernetes API test double (`hype_tests::kube_double`), driven by the
//! real `kube::Client`: API semantics, watches, the kubelet simulator
//! running real hype calls, and every injected fault. Each test ends with
//! no pod process left and every wait is bounded.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use hype::RemoteFn;
use hype::wire::{self, BuildInfo, CallEnvelope, Payload, Reference};
use hype_tests::IMAGE;
use hype_tests::kube_double::{
    Autoscaler, Executor, InProcessPod, InProcessResult, KubeTestServer, KubeletOptions,
    ReadOnlyMounts,
};
use hype_tests::{files, math, process};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// A double whose resourceVersions are numbers, whatever the environment
/// says: some tests check that they rise.
fn start() -> KubeTestServer {
    KubeTestServer::start(common::backend::worker_processes().opaque_resource_versions(false))
}

/// The `hype-run` argument for a call, built by hand as the runner would.
fn call_text<A: RemoteFn>(call: hype::Call<A>, staging: &Path) -> String {
    let args = call.into_args();
    let envelope = CallEnvelope::new(
        A::ID,
        A::SIGNATURE,
        Payload::Inline(wire::Bytes::from(
            wire::encode_value(A::ID, "arguments", &args).unwrap(),
        )),
    )
    .with_build(BuildInfo::current())
    .with_staging(format!("file://{}", staging.display()));
    Reference::Inline(wire::encode_call(&envelope).unwrap()).to_string()
}

/// The value a termination message (an inline outcome) holds.
fn returned<T: serde::de::DeserializeOwned>(function: &str, message: &str) -> T {
    let Reference::Inline(bytes) = Reference::parse(message).unwrap() else {
        panic!("inline outcome expected: {message}")
    };
    let outcome = wire::decode_outcome(&bytes).unwrap();
    let wire::Outcome::Returned(Payload::Inline(value)) = outcome.outcome else {
        panic!("returned value expected, got {:?}", outcome.outcome)
    };
    wire::decode_value(function, "result", &value).unwrap()
}

/// A pod as the hype runner makes them: container `hype-run`, args = the
/// call, restartPolicy Never, FallbackToLogsOnError.
fn pod(name: &str, call: &str, extra: serde_json::Value) -> Pod {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "hype", "test": "kube-double"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "hype-run",
                "image": IMAGE,
                "args": [call],
                "env": [{"name": "HYPE_EXECUTION_ID", "value": name}],
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }],
        },
    });
    merge(&mut pod, extra);
    serde_json::from_value(pod).unwrap()
}

fn merge_into(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    merge(&mut base, extra);
    base
}

/// JSON merge, arrays of objects merged element by element.
fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (serde_json::Value::Array(b), serde_json::Value::Array(e))
            if b.iter().all(|x| x.is_object()) && e.iter().all(|x| x.is_object()) =>
        {
            for (i, v) in e.into_iter().enumerate() {
                match b.get_mut(i) {
                    Some(slot) => merge(slot, v),
                    None => b.push(v),
                }
            }
        }
        (b, e) => *b = e,
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn terminated(pod: &Pod) -> k8s_openapi::api::core::v1::ContainerStateTerminated {
    pod.status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap_or_else(|| panic!("terminated container expected: {:?}", pod.status))
}

fn waiting(pod: &Pod) -> Option<(String, String)> {
    let w = pod
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .clone()?;
    Some((w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
}

fn condition(pod: &Pod, ty: &str) -> Option<k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)
        .cloned()
}

/// Polls the pod through the API until `done` holds (bounded).
async fn wait_pod(pods: &Api<Pod>, name: &str, what: &str, done: impl Fn(&Pod) -> bool) -> Pod {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let pod = pods.get(name).await.unwrap();
        if done(&pod) {
            return pod;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pod {name} never became {what}: {:#?}",
            pod.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_gone(pods: &Api<Pod>, name: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while pods.get_opt(name).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pod {name} never went away"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn finished(pods: &Api<Pod>, name: &str) -> Pod {
    wait_pod(pods, name, "finished", |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await
}

/// Asserts no pod process is left, then shuts the server down.
async fn finish(server: KubeTestServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !server.pod_processes().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.pod_processes(),
        Vec::<u32>::new(),
        "pod processes left running"
    );
    tokio::time::timeout(Duration::from_secs(15), server.shutdown())
        .await
        .expect("shutdown is bounded");
    assert_eq!(server.pod_processes(), Vec::<u32>::new());
}

fn api_error(err: kube::Error) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("an API error expected, got {other:?}"),
    }
}

/// A directory under the staging area pod processes can write to.
fn shared_dir(server: &KubeTestServer, name: &str) -> PathBuf {
    let dir = server.staging_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// Waits until a `sleep_with_grandchild` call reported its PIDs.
async fn pids_in(dir: &Path) -> (u32, u32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(entry) = std::fs::read_dir(dir).unwrap().flatten().next()
            && let Ok(text) = std::fs::read_to_string(entry.path())
            && let Some((a, b)) = text.split_once(' ')
            && let (Ok(a), Ok(b)) = (a.parse(), b.trim().parse())
        {
            return (a, b);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no PID file in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sleeper(server: &KubeTestServer, name: &str, extra: serde_json::Value) -> (Pod, PathBuf) {
    let dir = shared_dir(server, name);
    let call = call_text(
        process::sleep_with_grandchild(dir.display().to_string(), 60),
        server.staging_dir(),
    );
    (pod(name, &call, extra), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_names_selectors_and_status_codes() {
    let server = start();
    let client = server.client();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();

    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");

    // generateName, server-set metadata, get.
    let mut template = pod(
        "",
        "inline:AAAA",
        json!({"spec": {"containers": [{"image": "not-pulled:1"}]}}),
    );
    template.metadata.name = None;
    template.metadata.generate_name = Some("hype-add-".into());
    let a = pods.create(&pp, &template).await.unwrap();
    let name_a = a.metadata.name.clone().unwrap();
    let suffix = name_a.strip_prefix("hype-add-").expect("the prefix");
    assert_eq!(suffix.len(), 5, "{name_a}");
    assert!(
        suffix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(a.metadata.namespace.as_deref(), Some("default"));
    assert!(a.metadata.uid.is_some() && a.metadata.creation_timestamp.is_some());
    let rv_a: u64 = a
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(phase(&a), "Pending");
    let got = pods.get(&name_a).await.unwrap();
    assert_eq!(got.metadata.uid, a.metadata.uid);

    let mut b = pod(
        "explicit-b",
        "inline:AAAA",
        json!({"metadata": {"labels": {"tier": "batch"}}, "spec": {"containers": [{"image": "not-pulled:1"}]}}),
    );
    let b_created = pods.create(&pp, &b).await.unwrap();
    let rv_b: u64 = b_created
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv_b > rv_a, "one global resourceVersion counter");

    // Label and field selectors.
    let names = |list: kube::core::ObjectList<Pod>| {
        let mut n: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        n.sort();
        n
    };
    let all = pods.list(&ListParams::default()).await.unwrap();
    let list_rv: u64 = all
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(list_rv >= rv_b);
    assert_eq!(names(all).len(), 2);
    for (selector, expected) in [
        (
            "test=kube-double",
            vec!["explicit-b".into(), name_a.clone()],
        ),
        ("tier=batch", vec!["explicit-b".into()]),
        ("tier==batch,test", vec!["explicit-b".into()]),
        ("tier!=batch", vec![name_a.clone()]),
        ("!tier", vec![name_a.clone()]),
        ("tier in (web, batch)", vec!["explicit-b".into()]),
        ("tier notin (batch)", vec![name_a.clone()]),
        ("tier=web", vec![]),
    ] {
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap();
        assert_eq!(names(list), expected, "{selector}");
    }
    let by_name = pods
        .list(&ListParams::default().fields("metadata.name=explicit-b"))
        .await
        .unwrap();
    assert_eq!(names(by_name), vec!["explicit-b".to_owned()]);
    let bad = api_error(
        pods.list(&ListParams::default().labels("tier in (x"))
            .await
            .unwrap_err(),
    );
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));
    let bad = api_error(
        pods.list(&ListParams::default().fields("spec.hostname=x"))
            .await
            .unwrap_err(),
    );
    assert!(
        bad.message.contains("field label not supported"),
        "{}",
        bad.message
    );

    // 404, 409, 422, 400.
    let missing = api_error(pods.get("missing").await.unwrap_err());
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "pods \"missing\" not found");
    let dup = api_error(pods.create(&pp, &b).await.unwrap_err());
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    b.metadata.name = Some("no-image".into());
    b.spec.as_mut().unwrap().containers[0].image = None;
    let invalid = api_error(pods.create(&pp, &b).await.unwrap_err());
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        invalid.message,
        "Pod \"no-image\" is invalid: spec.containers[0].image: Required value"
    );
    let bad_label = pod(
        "bad-label",
        "x",
        json!({"metadata": {"labels": {"hype.dev/function": "math::add"}}}),
    );
    let invalid = api_error(pods.create(&pp, &bad_label).await.unwrap_err());
    assert!(
        invalid.message.starts_with(
            "Pod \"bad-label\" is invalid: metadata.labels: Invalid value: \"math::add\""
        ),
        "{}",
        invalid.message
    );
    let bad_mount = pod(
        "bad-mount",
        "x",
        json!({"spec": {"containers": [{"volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}}),
    );
    let invalid = api_error(pods.create(&pp, &bad_mount).await.unwrap_err());
    assert!(
        invalid
            .message
            .contains("spec.containers[0].volumeMounts[0].name: Not found: \"data\""),
        "{}",
        invalid.message
    );
    let raw = client
        .request_text(http_request(
            "POST",
            "/api/v1/namespaces/default/pods",
            b"{\"spec\": 7}".to_vec(),
        ))
        .await
        .unwrap_err();
    assert_eq!(api_error(raw).code, 400);

    // Claims: 422 without storage, Bound at once otherwise.
    let pvcs: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    let claim = |name: &str, storage: Option<&str>| -> PersistentVolumeClaim {
        let mut spec = json!({"accessModes": ["ReadWriteOnce"], "storageClassName": "gce-ssd-pd"});
        if let Some(s) = storage {
            spec["resources"] = json!({"requests": {"storage": s}});
        }
        serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"test": "kube-double"}}, "spec": spec}),
        )
        .unwrap()
    };
    let invalid = api_error(pvcs.create(&pp, &claim("nosize", None)).await.unwrap_err());
    assert_eq!(
        invalid.message,
        "PersistentVolumeClaim \"nosize\" is invalid: spec.resources[storage]: Required value"
    );
    let bound = pvcs.create(&pp, &claim("data", Some("1Gi"))).await.unwrap();
    assert_eq!(bound.status.unwrap().phase.as_deref(), Some("Bound"));
    assert_eq!(
        pvcs.list(&ListParams::default().labels("test=kube-double"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(server.volume_dir("data").is_some());

    // Secrets: stringData merged into data.
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"token": "abc"}}))
            .unwrap();
    secrets.create(&pp, &secret).await.unwrap();
    let got = secrets.get("s").await.unwrap();
    assert_eq!(got.data.unwrap()["token"].0, b"abc");
    assert!(got.string_data.is_none());
    assert_eq!(server.secrets().len(), 1);

    // Deletes.
    pods.delete(&name_a, &DeleteParams::default())
        .await
        .unwrap();
    pods.delete("explicit-b", &DeleteParams::default())
        .await
        .unwrap();
    pvcs.delete("data", &DeleteParams::default()).await.unwrap();
    secrets.delete("s", &DeleteParams::default()).await.unwrap();
    let missing = api_error(
        pods.delete("explicit-b", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(missing.code, 404);
    wait_gone(&pods, &name_a).await;
    assert!(server.pods().is_empty() && server.pvcs().is_empty() && server.secrets().is_empty());

    let log = server.request_log();
    assert!(log.iter().any(|(m, p)| m == "GET"
        && p.starts_with("/api/v1/namespaces/default/pods?")
        && p.contains("labelSelector")));
    finish(server).await;
}

fn http_request(method: &str, path: &str, body: Vec<u8>) -> axum::http::Request<Vec<u8>> {
    axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_call_runs_and_the_watch_sees_it() {
    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = pods
        .watch(&WatchParams::default().labels("test=kube-double"), &rv)
        .await
        .unwrap()
        .boxed();

    let call = call_text(math::add(20, 22), server.staging_dir());
    pods.create(&PostParams::default(), &pod("hype-add-1", &call, json!({})))
        .await
        .unwrap();

    let mut seen = Vec::new();
    let done = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.try_next().await.unwrap() {
            match event {
                WatchEvent::Added(p) => seen.push(("ADDED", phase(&p).to_owned(), p)),
                WatchEvent::Modified(p) => seen.push(("MODIFIED", phase(&p).to_owned(), p)),
                other => panic!("unexpected {other:?}"),
            }
            if matches!(seen.last().unwrap().1.as_str(), "Succeeded" | "Failed") {
                return;
            }
        }
        panic!("the watch ended");
    })
    .await;
    assert!(
        done.is_ok(),
        "no terminal phase within {WAIT:?}: {:?}",
        seen.iter().map(|s| (s.0, s.1.clone())).collect::<Vec<_>>()
    );

    let phases: Vec<(&str, &str)> = seen.iter().map(|(t, p, _)| (*t, p.as_str())).collect();
    assert_eq!(phases.first(), Some(&("ADDED", "Pending")), "{phases:?}");
    let running = phases
        .iter()
        .position(|p| *p == ("MODIFIED", "Running"))
        .expect("a Running event");
    assert_eq!(
        phases.last(),
        Some(&("MODIFIED", "Succeeded")),
        "{phases:?}"
    );
    assert!(running < phases.len() - 1);
    let rvs: Vec<u64> = seen
        .iter()
        .map(|(_, _, p)| {
            p.metadata
                .resource_version
                .clone()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        rvs.windows(2).all(|w| w[0] < w[1]),
        "rising resourceVersions {rvs:?}"
    );

    let last = &seen.last().unwrap().2;
    let t = terminated(last);
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    assert!(t.started_at.is_some() && t.finished_at.is_some());
    assert_eq!(
        returned::<i64>("hype_tests::math::add", t.message.as_deref().unwrap()),
        42
    );
    let status = last.status.as_ref().unwrap();
    assert!(status.start_time.is_some());
    assert_eq!(
        last.spec.as_ref().unwrap().node_name.as_deref(),
        Some("hype-test-node")
    );
    assert_eq!(condition(last, "PodScheduled").unwrap().status, "True");
    assert_eq!(condition(last, "Initialized").unwrap().status, "True");
    assert_eq!(
        condition(last, "Ready").unwrap().reason.as_deref(),
        Some("PodCompleted")
    );
    let running_pod = &seen[running].2;
    assert_eq!(condition(running_pod, "Ready").unwrap().status, "True");
    assert!(
        running_pod
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .running
            .is_some()
    );

    pods.delete("hype-add-1", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pods, "hype-add-1").await;
    finish(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_after_drops_and_expire_with_410() {
    watches_resume_and_expire(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_after_drops_and_expire_with_410_with_opaque_versions() {
    watches_resume_and_expire(true).await;
}

async fn watches_resume_and_expire(opaque: bool) {
    let server = KubeTestServer::start(KubeletOptions {
        bookmark_interval: Duration::from_millis(200),
        ..KubeletOptions::new().opaque_resource_versions(opaque)
    });
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let pp = PostParams::default();
    // Images that do not exist: pods stay pending, no processes.
    let idle = |name: &str| {
        pod(
            name,
            "x",
            json!({"spec": {"containers": [{"image": "absent:1"}]}}),
        )
    };
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    assert_eq!(rv.parse::<u64>().is_ok(), !opaque, "{rv}");
    let params = WatchParams::default().labels("test=kube-double");
    if opaque {
        // A version this server did not write is refused.
        let err = pods.watch(&params, "12").await.err().map(api_error);
        assert_eq!(err.map(|s| s.code), Some(400));
    }
    let mut stream = pods.watch(&params, &rv).await.unwrap().boxed();
    pods.create(&pp, &idle("first")).await.unwrap();

    let mut last_rv = rv.clone();
    let mut added = Vec::new();
    let mut bookmarks = 0;
    tokio::time::timeout(WAIT, async {
        while let Some(event) = stream.try_next().await.unwrap() {
            match event {
                WatchEvent::Added(p) => {
                    last_rv = p.metadata.resource_version.clone().unwrap();
                    added.push(p.metadata.name.unwrap());
                }
                WatchEvent::Modified(p) => last_rv = p.metadata.resource_version.unwrap(),
                WatchEvent::Bookmark(b) => {
                    last_rv = b.metadata.resource_version;
                    bookmarks += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
            if bookmarks > 0 && !added.is_empty() {
                return;
            }
        }
    })
    .await
    .expect("an ADDED event and a bookmark");
    assert_eq!(added, vec!["first".to_owned()]);

    server.faults().drop_watches();
    let end = tokio::time::timeout(WAIT, async {
        while stream.try_next().await.ok().flatten().is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the dropped watch ended");
    pods.create(&pp, &idle("second")).await.unwrap();

    // Resuming replays what happened meanwhile, and only that.
    let mut resumed = pods.watch(&params, &last_rv).await.unwrap().boxed();
    let mut replayed = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(event) = resumed.try_next().await.unwrap() {
            if let WatchEvent::Added(p) = event {
                replayed.push(p.metadata.name.unwrap());
                if replayed.contains(&"second".to_owned()) {
                    return;
                }
            }
        }
    })
    .await
    .expect("the resumed watch sees the new pod");
    assert_eq!(replayed, vec!["second".to_owned()]);
    assert_eq!(server.watch_connections(), 2);

    // A compacted history answers 410 Gone.
    server.faults().expire_watch_history();
    let mut expired = pods.watch(&params, &last_rv).await.unwrap().boxed();
    let first = tokio::time::timeout(WAIT, expired.try_next())
        .await
        .unwrap()
        .unwrap();
    match first {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("a 410 ERROR event expected, got {other:?}"),
    }
    // Or, as some API servers do, on the request itself.
    server.faults().refuse_expired_watches_with_410();
    let refused = pods.watch(&params, &last_rv).await.err().map(api_error);
    let refused = refused.expect("the request is answered 410");
    assert_eq!((refused.code, refused.reason.as_str()), (410, "Expired"));
    server.faults().clear();
    drop((stream, resumed, expired));

    // kube's watcher (list, then watch) rides through dropped watches.
    let watcher = kube::runtime::watcher(
        pods.clone(),
        kube::runtime::watcher::Config::default().labels("test=kube-double"),
    );
    let mut objects = kube::runtime::WatchStreamExt::applied_objects(watcher).boxed();
    let mut names = std::collections::BTreeSet::new();
    tokio::time::timeout(WAIT, async {
        while names.len() < 2 {
            names.insert(
                objects
                    .try_next()
                    .await
                    .unwrap()
                    .unwrap()
                    .metadata
                    .name
                    .unwrap(),
            );
        }
    })
    .await
    .expect("the watcher lists both pods");
    server.faults().drop_watches();
    pods.create(&pp, &idle("third")).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while !names.contains("third") {
            names.insert(
                objects
                    .try_next()
                    .await
                    .unwrap()
                    .unwrap()
                    .metadata
                    .name
                    .unwrap(),
            );
        }
    })
    .await
    .expect("the watcher resumed after the drop");
    drop(objects);

    // Streaming lists (sendInitialEvents) end the initial events with a
    // bookmark.
    let streaming = kube::runtime::watcher(
        pods.clone(),
        kube::runtime::watcher::Config::default()
            .labels("test=kube-double")
            .streaming_lists(),
    );
    let mut events = streaming.boxed();
    let mut initial = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            match events.try_next().await.unwrap().unwrap() {
                kube::runtime::watcher::Event::InitApply(p) => {
                    initial.push(p.metadata.name.unwrap())
                }
                kube::runtime::watcher::Event::InitDone => return,
                _ => {}
            }
        }
    })
    .await
    .expect("the initial events end");
    initial.sort();
    assert_eq!(initial, vec!["first", "second", "third"]);
    drop(events);

    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("test=kube-double"),
    )
    .await
    .unwrap();
    for name in ["first", "second", "third"] {
        wait_gone(&pods, name).await;
    }
    finish(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_kills_the_processes_and_emits_deleted() {
    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let (sleeper_pod, dir) = sleeper(&server, "sleeper", json!({}));
    pods.create(&PostParams::default(), &sleeper_pod)
        .await
        .unwrap();
    let (pid, grandchild) = pids_in(&dir).await;
    let running = wait_pod(&pods, "sleeper", "Running", |p| phase(p) == "Running").await;
    assert!(hype_tests::process_alive(pid) && hype_tests::process_alive(grandchild));
    assert!(server.pod_processes().contains(&pid));

    let rv = running.metadata.resource_version.clone().unwrap();
    let mut events = pods
        .watch(&WatchParams::default().fields("metadata.name=sleeper"), &rv)
        .await
        .unwrap()
        .boxed();
    let deleted = pods
        .delete("sleeper", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = deleted.left().expect("the object");
    assert!(deleted.metadata.deletion_timestamp.is_some());

    let mut kinds = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(event) = events.try_next().await.unwrap() {
            match event {
                WatchEvent::Modified(p) => kinds.push(("MODIFIED", p)),
                WatchEvent::Deleted(p) => {
                    kinds.push(("DELETED", p));
                    return;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("a DELETED event");
    assert_eq!(kinds[0].0, "MODIFIED");
    assert!(kinds[0].1.metadata.deletion_timestamp.is_some());
    let (last, gone) = kinds.last().unwrap();
    assert_eq!(*last, "DELETED");
    assert!(gone.metadata.deletion_timestamp.is_some());
    assert_eq!(terminated(gone).exit_code, 137);
    assert!(
        !hype_tests::process_alive(pid),
        "the container process was killed"
    );
    assert!(
        hype_tests::wait_until(Duration::from_secs(5), || !hype_tests::process_alive(
            grandchild
        ))
        .await,
        "and what it started"
    );

    // A delete with gracePeriodSeconds 0 removes the object at once; the
    // kubelet kills the processes behind it.
    let (forced, dir) = sleeper(&server, "forced", json!({}));
    pods.create(&PostParams::default(), &forced).await.unwrap();
    let (pid, grandchild) = pids_in(&dir).await;
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    pods.delete("forced", &params).await.unwrap();
    assert!(pods.get_opt("forced").await.unwrap().is_none());
    assert!(
        hype_tests::wait_until(Duration::from_secs(5), || !hype_tests::process_alive(pid)
            && !hype_tests::process_alive(grandchild))
        .await,
        "the processes of a force-deleted pod are killed"
    );

    // Someone else deletes a pod: the same.
    let (other, dir) = sleeper(&server, "other", json!({}));
    pods.create(&PostParams::default(), &other).await.unwrap();
    let (pid, _) = pids_in(&dir).await;
    assert!(server.delete_pod_as_someone_else("other"));
    wait_gone(&pods, "other").await;
    assert!(!hype_tests::process_alive(pid));
    finish(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_fallback_termination_message() {
    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let call = call_text(process::exit_abruptly(3), server.staging_dir());
    pods.create(&PostParams::default(), &pod("abrupt", &call, json!({})))
        .await
        .unwrap();
    let done = finished(&pods, "abrupt").await;
    assert_eq!(phase(&done), "Failed");
    let t = terminated(&done);
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
    assert_eq!(
        t.message.as_deref(),
        Some("about to exit with 3 on purpose\n"),
        "FallbackToLogsOnError: the log's tail"
    );
    let logs = pods.logs("abrupt", &LogParams::default()).await.unwrap();
    assert_eq!(logs, "about to exit with 3 on purpose\n");
    let tail = pods
        .logs(
            "abrupt",
            &LogParams {
                tail_lines: Some(1),
                limit_bytes: Some(5),
                container: Some("hype-run".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail, "about");
    let wrong = api_error(
        pods.logs(
            "abrupt",
            &LogParams {
                container: Some("nope".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(wrong.code, 400);

    // A container that has not started has no log yet.
    pods.create(
        &PostParams::default(),
        &pod(
            "pulling",
            "x",
            json!({"spec": {"containers": [{"image": "absent:1"}]}}),
        ),
    )
    .await
    .unwrap();
    wait_pod(&pods, "pulling", "waiting on its image", |p| {
        waiting(p).is_some_and(|(r, _)| r == "ErrImagePull" || r == "ImagePullBackOff")
    })
    .await;
    let waiting_err = api_error(
        pods.logs("pulling", &LogParams::default())
            .await
            .unwrap_err(),
    );
    assert!(
        waiting_err.message.contains("is waiting to start"),
        "{}",
        waiting_err.message
    );

    // An API server that cannot reach the kubelet, or RBAC without
    // `pods/log`: every log request fails, followed or not.
    for (code, says) in [
        (500, "10250"),
        (502, "10250"),
        (403, "cannot get resource \"pods/log\""),
    ] {
        server.faults().fail_logs(code);
        let failed = api_error(
            pods.logs("abrupt", &LogParams::default())
                .await
                .unwrap_err(),
        );
        assert_eq!(failed.code, code);
        assert!(failed.message.contains(says), "{}", failed.message);
        let follow = LogParams {
            follow: true,
            ..LogParams::default()
        };
        let failed = pods
            .log_stream("abrupt", &follow)
            .await
            .err()
            .map(api_error);
        assert_eq!(failed.map(|s| s.code), Some(code));
    }
    server.faults().clear();
    assert_eq!(
        pods.logs("abrupt", &LogParams::default()).await.unwrap(),
        "about to exit with 3 on purpose\n"
    );

    pods.delete("abrupt", &DeleteParams::default())
        .await
        .unwrap();
    pods.delete("pulling", &DeleteParams::default())
        .await
        .unwrap();
    finish(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_deletes_can_be_refused() {
    let server = start();
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    server.create_secret("kept", BTreeMap::new());
    let all = ListParams::default();
    for code in [404, 405] {
        server.faults().refuse_delete_collections(code);
        let refused = secrets
            .delete_collection(&DeleteParams::default(), &all)
            .await
            .err()
            .map(api_error);
        assert_eq!(refused.map(|s| s.code), Some(code));
        assert!(secrets.get_opt("kept").await.unwrap().is_some());
    }
    // One by one still works; so does the collection once allowed again.
    secrets
        .delete("kept", &DeleteParams::default())
        .await
        .unwrap();
    server.faults().clear();
    server.create_secret("again", BTreeMap::new());
    secrets
        .delete_collection(&DeleteParams::default(), &all)
        .await
        .unwrap();
    assert!(server.secrets().is_empty());
    finish(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_create_failures_then_success() {
    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let pvcs: Api<PersistentVolumeClaim> = Api::default_namespaced(server.client());
    let pp = PostParams::default();
    let call = call_text(math::add(1, 2), server.staging_dir());

    // 429 carries Retry-After; kube::Client retries it by itself.
    server.faults().set_retry_after_seconds(0);
    server.faults().fail_next_creates(2, 429);
    pods.create(&pp, &pod("after-429", &call, json!({})))
        .await
        .unwrap();
    let posts = server
        .request_log()
        .iter()
        .filter(|(m, p)| m == "POST" && p.split('?').next().unwrap().ends_with("/pods"))
        .count();
    assert_eq!(posts, 3, "two refused, one accepted");

    // 500 reaches the caller; the next create works.
    server.faults().fail_next_creates(1, 500);
    let err = api_error(
        pods.create(&pp, &pod("after-500", &call, json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    assert!(
        pods.get_opt("after-500").await.unwrap().is_none(),
        "nothing stored"
    );
    pods.create(&pp, &pod("after-500", &call, json!({})))
        .await
        .unwrap();

    // Claims too.
    server.faults().fail_next_creates(1, 500);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})).unwrap();
    assert_eq!(
        api_error(pvcs.create(&pp, &claim).await.unwrap_err()).code,
        500
    );
    pvcs.create(&pp, &claim).await.unwrap();

    for name in ["after-429", "after-500"] {
        let done = finished(&pods, name).await;
        assert_eq!(
            returned::<i64>(
                "hype_tests::math::add",
                terminated(&done).message.as_deref().unwrap()
            ),
            3
        );
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    pvcs.delete("c", &DeleteParams::default()).await.unwrap();
    finish(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pull_failures() {
    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let pp = PostParams::default();
    pods.create(
        &pp,
        &pod(
            "unknown-image",
            "x",
            json!({"spec": {"containers": [{"image": "gcr.io/p/absent:1"}]}}),
        ),
    )
    .await
    .unwrap();
    let pulled = wait_pod(&pods, "unknown-image", "ErrImagePull", |p| {
        waiting(p).is_some_and(|(r, _)| r == "ErrImagePull")
    })
    .await;
    assert_eq!(
        waiting(&pulled).unwrap().1,
        "failed to pull image \"gcr.io/p/absent:1\": not found"
    );
    assert_eq!(phase(&pulled), "Pending");
    let backoff = wait_pod(&pods, "unknown-image", "ImagePullBackOff", |p| {
        waiting(p).is_some_and(|(r, _)| r == "ImagePullBackOff")
    })
    .await;
    assert!(
        waiting(&backoff)
            .unwrap()
            .1
            .contains("Back-off pulling image \"gcr.io/p/absent:1\"")
    );

    pods.create(
        &pp,
        &pod(
            "bad-name",
            "x",
            json!({"spec": {"containers": [{"image": "Hype-Worker:latest"}]}}),
        ),
    )
    .await
    .unwrap();
    let invalid = wait_pod(&pods, "bad-name", "InvalidImageName", |p| {
        waiting(p).is_some_and(|(r, _)| r == "InvalidImageName")
    })
    .await;
    assert!(waiting(&invalid).unwrap().1.contains("Hype-Worker:latest"));

    for name in ["unknown-image", "bad-name"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
        wait_gone(&pods, name).await;
    }
    finish(server).await;
}

/// The cluster autoscaler fault: a pod that is unschedulable gets one
/// event from `cluster-autoscaler` (served by namespace, filtered by
/// `involvedObject.name`); with a scale-up it is scheduled once the node
/// is up, without one it stays Pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autoscaler_writes_events_and_adds_a_node() {
    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let events: Api<Event> = Api::default_namespaced(server.client());
    let pp = PostParams::default();
    let call = call_text(math::add(2, 3), server.staging_dir());
    let of = |name: &str| ListParams::default().fields(&format!("involvedObject.name={name}"));
    server
        .faults()
        .unschedulable("0/1 nodes are available: 1 Insufficient cpu.");
    server.faults().autoscaler(Autoscaler::NoScaleUp);
    pods.create(&pp, &pod("stuck", &call, json!({})))
        .await
        .unwrap();
    wait_pod(&pods, "stuck", "unschedulable", |p| {
        condition(p, "PodScheduled").is_some()
    })
    .await;
    let said = events.list(&of("stuck")).await.unwrap().items;
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0].reason.as_deref(), Some("NotTriggerScaleUp"));
    assert_eq!(
        said[0].source.as_ref().unwrap().component.as_deref(),
        Some("cluster-autoscaler")
    );
    assert_eq!(said[0].involved_object.name.as_deref(), Some("stuck"));
    assert!(events.list(&of("other")).await.unwrap().items.is_empty());
    let unknown = events
        .list(&ListParams::default().fields("reason=TriggeredScaleUp"))
        .await
        .unwrap_err();
    assert!(matches!(unknown, kube::Error::Api(s) if s.code == 400));

    server.faults().autoscaler(Autoscaler::ScaleUp {
        after: Duration::from_millis(300),
    });
    pods.create(&pp, &pod("scaled", &call, json!({})))
        .await
        .unwrap();
    let done = finished(&pods, "scaled").await;
    assert_eq!(phase(&done), "Succeeded");
    let said = events.list(&of("scaled")).await.unwrap().items;
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0].reason.as_deref(), Some("TriggeredScaleUp"));
    let stuck = pods.get("stuck").await.unwrap();
    assert_eq!(phase(&stuck), "Pending", "no node came for it");

    server.faults().clear_unschedulable();
    finished(&pods, "stuck").await;
    finish(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_until_cleared_and_missing_claims() {
    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let pp = PostParams::default();
    let call = call_text(math::add(2, 3), server.staging_dir());
    let message = "0/3 nodes are available: 3 Insufficient cpu.";
    server.faults().unschedulable(message);
    pods.create(&pp, &pod("waits", &call, json!({})))
        .await
        .unwrap();
    let pending = wait_pod(&pods, "waits", "unschedulable", |p| {
        condition(p, "PodScheduled").is_some()
    })
    .await;
    let scheduled = condition(&pending, "PodScheduled").unwrap();
    assert_eq!(
        (
            scheduled.status.as_str(),
            scheduled.reason.as_deref(),
            scheduled.message.as_deref()
        ),
        ("False", Some("Unschedulable"), Some(message))
    );
    // The pod stays unscheduled while the cluster is: a new scheduler
    // message makes the double's scheduler look at the pod again (a change
    // of faults wakes it), and the pod carrying that message proves it did,
    // and held the pod Pending, without a node.
    let still = "0/3 nodes are available: 3 Insufficient memory.";
    server.faults().unschedulable(still);
    let looked_again = wait_pod(&pods, "waits", "unschedulable again", |p| {
        condition(p, "PodScheduled")
            .and_then(|c| c.message)
            .as_deref()
            == Some(still)
    })
    .await;
    assert_eq!(phase(&looked_again), "Pending");
    assert_eq!(
        condition(&looked_again, "PodScheduled").unwrap().status,
        "False"
    );
    assert_eq!(
        looked_again.spec.as_ref().unwrap().node_name,
        None,
        "not bound to a node"
    );
    server.faults().clear_unschedulable();
    let done = finished(&pods, "waits").await;
    assert_eq!(phase(&done), "Succeeded");
    assert_eq!(condition(&done, "PodScheduled").unwrap().status, "True");

    // A missing claim keeps the pod unschedulable until it exists.
    let with_claim = pod(
        "needs-claim",
        &call,
        json!({"spec": {
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "later"}}],
        "containers": [{"volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}}),
    );
    pods.create(&pp, &with_claim).await.unwrap();
    let pending = wait_pod(&pods, "needs-claim", "unschedulable", |p| {
        condition(p, "PodScheduled").is_some()
    })
    .await;
    assert_eq!(
        condition(&pending, "PodScheduled")
            .unwrap()
            .message
            .as_deref(),
        Some("persistentvolumeclaim \"later\" not found")
    );
    let pvcs: Api<PersistentVolumeClaim> = Api::default_namespaced(server.client());
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "later"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})).unwrap();
    pvcs.create(&pp, &claim).await.unwrap();
    assert_eq!(phase(&finished(&pods, "needs-claim").await), "Succeeded");

    for name in ["waits", "needs-claim"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    pvcs.delete("later", &DeleteParams::default())
        .await
        .unwrap();
    finish(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_kill_eviction_and_deadline() {
    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let pp = PostParams::default();

    server.faults().oom_kill_next();
    let call = call_text(math::add(1, 1), server.staging_dir());
    pods.create(&pp, &pod("oom", &call, json!({})))
        .await
        .unwrap();
    let oom = finished(&pods, "oom").await;
    assert_eq!(phase(&oom), "Failed");
    let t = terminated(&oom);
    assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));

    let (evictee, dir) = sleeper(&server, "evictee", json!({}));
    pods.create(&pp, &evictee).await.unwrap();
    let (pid, _) = pids_in(&dir).await;
    wait_pod(&pods, "evictee", "Running", |p| phase(p) == "Running").await;
    server.faults().evict_next();
    let evicted = finished(&pods, "evictee").await;
    let status = evicted.status.clone().unwrap();
    assert_eq!(
        (
            status.phase.as_deref(),
            status.reason.as_deref(),
            status.message.as_deref()
        ),
        (
            Some("Failed"),
            Some("Evicted"),
            Some("The node was low on resource: memory.")
        )
    );
    assert_eq!(terminated(&evicted).exit_code, 137);
    assert!(!hype_tests::process_alive(pid));

    let (late, dir) = sleeper(
        &server,
        "late",
        json!({"spec": {"activeDeadlineSeconds": 1}}),
    );
    pods.create(&pp, &late).await.unwrap();
    let (pid, _) = pids_in(&dir).await;
    let exceeded = finished(&pods, "late").await;
    let status = exceeded.status.clone().unwrap();
    assert_eq!(
        (
            status.phase.as_deref(),
            status.reason.as_deref(),
            status.message.as_deref()
        ),
        (
            Some("Failed"),
            Some("DeadlineExceeded"),
            Some("Pod was active on the node longer than the specified deadline")
        )
    );
    assert!(!hype_tests::process_alive(pid));

    for name in ["oom", "evictee", "late"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    finish(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_volumes_and_read_only_mounts() {
    let server = start();
    assert_ne!(
        server.read_only_mounts(),
        ReadOnlyMounts::NotEnforced,
        "the tests run as root"
    );
    volumes_and_mounts(server).await;
}

/// The fallback for machines without mount namespaces: unprivileged uids
/// and file modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_mounts_by_file_modes() {
    // Pods run as unprivileged uids in this mode: they must be able to
    // execute the worker, which may sit under a directory only root can
    // enter (a checkout in a `mktemp -d` folder). Use a copy they can reach.
    use std::os::unix::fs::PermissionsExt as _;
    let bin = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let worker = bin.path().join("hype-test-worker");
    std::fs::copy(common::worker(), &worker).unwrap();
    std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = KubeTestServer::start(KubeletOptions {
        read_only_mounts: Some(ReadOnlyMounts::FileModes),
        ..KubeletOptions::new().image(IMAGE, &worker)
    });
    volumes_and_mounts(server).await;
}

async fn volumes_and_mounts(server: KubeTestServer) {
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let pvcs: Api<PersistentVolumeClaim> = Api::default_namespaced(server.client());
    let pp = PostParams::default();
    let staging = server.staging_dir().to_owned();
    server.create_secret(
        "gcp-key",
        BTreeMap::from([
            ("key.json".to_owned(), b"{\"k\":1}".to_vec()),
            ("token".to_owned(), b"t0k".to_vec()),
        ]),
    );
    let secret_volume = json!({"spec": {
    "volumes": [{"name": "gcp-key", "secret": {"secretName": "gcp-key"}}],
    "containers": [{
        "volumeMounts": [{"name": "gcp-key", "mountPath": "/etc/gcloud", "readOnly": true}],
        "env": [{"name": "HYPE_EXECUTION_ID", "value": "x"}, {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "gcp-key", "key": "token"}}}],
    }]}});
    let run = |name: &'static str, call: String, extra: serde_json::Value| {
        let pods = pods.clone();
        async move {
            pods.create(&PostParams::default(), &pod(name, &call, extra))
                .await
                .unwrap();
            let done = finished(&pods, name).await;
            assert_eq!(phase(&done), "Succeeded", "{:?}", done.status);
            terminated(&done).message.unwrap()
        }
    };

    let read = run(
        "read-secret",
        call_text(files::read("/etc/gcloud/key.json".into()), &staging),
        secret_volume.clone(),
    )
    .await;
    assert_eq!(
        returned::<Result<String, String>>("hype_tests::files::read", &read),
        Ok("{\"k\":1}".into())
    );
    let env = run(
        "env-secret",
        call_text(process::env_var("TOKEN".into()), &staging),
        secret_volume.clone(),
    )
    .await;
    assert_eq!(
        returned::<Option<String>>("hype_tests::process::env_var", &env),
        Some("t0k".into())
    );
    let mounts = run(
        "mounts-env",
        call_text(process::env_var("HYPE_MOUNTS".into()), &staging),
        secret_volume.clone(),
    )
    .await;
    let mounts = returned::<Option<String>>("hype_tests::process::env_var", &mounts).unwrap();
    let line: Vec<&str> = mounts.lines().next().unwrap().split('\t').collect();
    assert_eq!((line[0], line[2]), ("/etc/gcloud", "ro"));
    let write = run(
        "write-secret",
        call_text(files::write("/etc/gcloud/new".into(), "x".into()), &staging),
        secret_volume.clone(),
    )
    .await;
    let err = returned::<Result<(), String>>("hype_tests::files::write", &write).unwrap_err();
    assert!(err.contains(refusal(&server)), "{err}");

    // A claim shared by pods: written read-write, read and refused read-only.
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "shared"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})).unwrap();
    pvcs.create(&pp, &claim).await.unwrap();
    let mount = |read_only: bool| {
        json!({"spec": {
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}],
        "containers": [{"volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": read_only}]}]}})
    };
    let wrote = run(
        "writer",
        call_text(files::write("/data/word".into(), "hello".into()), &staging),
        mount(false),
    )
    .await;
    assert_eq!(
        returned::<Result<(), String>>("hype_tests::files::write", &wrote),
        Ok(())
    );
    assert_eq!(
        std::fs::read_to_string(server.volume_dir("shared").unwrap().join("word")).unwrap(),
        "hello"
    );
    let read = run(
        "reader",
        call_text(files::read("/data/word".into()), &staging),
        mount(true),
    )
    .await;
    assert_eq!(
        returned::<Result<String, String>>("hype_tests::files::read", &read),
        Ok("hello".into())
    );
    let write = run(
        "ro-writer",
        call_text(files::write("/data/other".into(), "no".into()), &staging),
        mount(true),
    )
    .await;
    let err = returned::<Result<(), String>>("hype_tests::files::write", &write).unwrap_err();
    assert!(err.contains(refusal(&server)), "{err}");
    assert!(!server.volume_dir("shared").unwrap().join("other").exists());

    // A missing secret: CreateContainerConfigError.
    let missing = json!({"spec": {"containers": [{"env": [
        {"name": "HYPE_EXECUTION_ID", "value": "x"},
        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]}]}});
    pods.create(&pp, &pod("no-secret", "x", missing))
        .await
        .unwrap();
    let stuck = wait_pod(&pods, "no-secret", "CreateContainerConfigError", |p| {
        waiting(p).is_some_and(|(r, _)| r == "CreateContainerConfigError")
    })
    .await;
    assert_eq!(waiting(&stuck).unwrap().1, "secret \"absent\" not found");

    // Deleting the claim: it stays while an unfinished pod uses it
    // (pvc-protection), then goes, and its data with it.
    let holder = pod(
        "holder",
        "x",
        merge_into(
            mount(false),
            json!({"spec": {"containers": [{"image": "absent:1"}]}}),
        ),
    );
    pods.create(&pp, &holder).await.unwrap();
    let dir = server.volume_dir("shared").unwrap();
    let terminating = pvcs
        .delete("shared", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    // The double removes a Terminating claim when a pod ends or is deleted
    // and no unfinished pod uses the claim any more. Deleting another pod
    // ("no-secret", which does not mount it) makes it look, before the
    // delete is answered; the claim must stay, "holder" still uses it.
    pods.delete("no-secret", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_gone(&pods, "no-secret").await;
    let kept = pvcs.get_opt("shared").await.unwrap();
    assert!(
        kept.is_some_and(|c| c.metadata.deletion_timestamp.is_some()),
        "kept (Terminating) while in use"
    );
    pods.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    assert!(hype_tests::wait_until(Duration::from_secs(5), || server.pvcs().is_empty()).await);
    assert!(!dir.exists());
    finish(server).await;
}

/// How a write to a read-only mount fails.
fn refusal(server: &KubeTestServer) -> &'static str {
    match server.read_only_mounts() {
        ReadOnlyMounts::MountNamespace => "Read-only file system",
        ReadOnlyMounts::FileModes => "Permission denied",
        ReadOnlyMounts::NotEnforced => panic!("read-only mounts are not enforced"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_executor_runs_calls_without_processes() {
    hype_tests::link();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<InProcessPod>::new()));
    let record = seen.clone();
    let options = KubeletOptions::new().executor(Executor::in_process(move |pod: InProcessPod| {
        record.lock().unwrap().push(pod.clone());
        if pod.args.first().map(String::as_str) == Some("fail") {
            return InProcessResult {
                exit_code: 3,
                termination_message: None,
            };
        }
        let run = hype_runtime::__tools::execute_in_process(&pod.args[0], &pod.name);
        InProcessResult {
            exit_code: run.exit_code,
            termination_message: run.termination_message,
        }
    }));
    let server = KubeTestServer::start(options);
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let call = call_text(math::add(40, 2), server.staging_dir());
    pods.create(
        &PostParams::default(),
        &pod(
            "instant",
            &call,
            json!({"spec": {"containers": [{"image": "any/image:1"}]}}),
        ),
    )
    .await
    .unwrap();
    let done = finished(&pods, "instant").await;
    assert_eq!(phase(&done), "Succeeded");
    assert_eq!(
        returned::<i64>(
            "hype_tests::math::add",
            terminated(&done).message.as_deref().unwrap()
        ),
        42
    );
    pods.create(
        &PostParams::default(),
        &pod("instant-fail", "fail", json!({})),
    )
    .await
    .unwrap();
    let failed = finished(&pods, "instant-fail").await;
    assert_eq!(
        (phase(&failed), terminated(&failed).exit_code),
        ("Failed", 3)
    );

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].name.as_str(), seen[0].container.as_str()),
        ("instant", "hype-run")
    );
    assert_eq!(seen[0].command, vec!["hype-run".to_owned()]);
    assert_eq!(
        seen[0].env.get("HYPE_EXECUTION_ID").map(String::as_str),
        Some("instant")
    );
    assert!(seen[0].env.contains_key("HYPE_TERMINATION_MESSAGE_PATH"));
    assert!(server.pod_processes().is_empty());
    pods.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    finish(server).await;
}
