//! The pod options of `RunEnvironment` (issue 22 §1) through a real
//! submitter on the Kubernetes API test double: each call's pod passes the
//! double's validation (the apiserver's rules for node selectors,
//! tolerations, names, labels and annotations), runs, and carries the
//! fields its option sets. Options that are refused are refused before any
//! pod is created. Each test keeps its pods (`keep_pods`) to read them.

mod common;

use std::time::Duration;

use hype::{Error, Gpu, RunEnvironment, TaintEffect, Toleration};
use hype_tests::IMAGE;
use hype_tests::backends::KubeCluster;
use hype_tests::kube_double::KubeTestServer;
use hype_tests::{containers, defaults, math};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A double whose pods run the worker as processes, and a submitter on it
/// that keeps finished pods.
async fn cluster() -> (KubeTestServer, hype::Submitter) {
    let server = KubeTestServer::start(common::backend::worker_processes());
    let cluster = KubeCluster::from_client(server.client()).keep_pods(true);
    let submitter = common::backend::kube_submitter(&server, cluster).await;
    (server, submitter)
}

/// Runs `add(40, 2)` in `env`'s pod and gives that pod.
async fn pod_of(env: RunEnvironment) -> Pod {
    pod_of_call(math::add(40, 2), env).await
}

/// Runs `call`, which must give 42, in `env`'s pod and gives that pod.
async fn pod_of_call<A: hype::RemoteFn<Output = i64>>(
    call: hype::Call<A>,
    env: RunEnvironment,
) -> Pod {
    let (server, submitter) = cluster().await;
    let sum = tokio::time::timeout(Duration::from_secs(60), submitter.run(call, &env))
        .await
        .expect("the call ends within 60 s")
        .expect("the call runs");
    assert_eq!(sum, 42);
    submitter.close().await.expect("close");
    let mut pods = server.pods();
    server.shutdown().await;
    assert_eq!(pods.len(), 1, "one call, one pod");
    pods.remove(0)
}

fn spec(pod: &Pod) -> &PodSpec {
    pod.spec.as_ref().expect("a spec")
}

fn limits(pod: &Pod) -> std::collections::BTreeMap<String, Quantity> {
    spec(pod).containers[0]
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .unwrap_or_default()
}

/// Each toleration as `key operator value effect seconds`.
fn tolerations(pod: &Pod) -> Vec<String> {
    spec(pod)
        .tolerations
        .iter()
        .flatten()
        .map(|t| {
            format!(
                "{} {} {} {} {}",
                t.key.as_deref().unwrap_or("-"),
                t.operator.as_deref().unwrap_or("-"),
                t.value.as_deref().unwrap_or("-"),
                t.effect.as_deref().unwrap_or("-"),
                t.toleration_seconds
                    .map_or("-".to_owned(), |s| s.to_string())
            )
        })
        .collect()
}

fn env() -> RunEnvironment {
    RunEnvironment::new(IMAGE)
}

#[tokio::test]
async fn with_gpu_sets_the_limit_the_toleration_and_the_model() {
    let pod = pod_of(env().with_gpu(Gpu::nvidia(2).model("nvidia-l4"))).await;
    assert_eq!(limits(&pod)["nvidia.com/gpu"], Quantity("2".into()));
    assert_eq!(
        spec(&pod).node_selector.as_ref().unwrap()["cloud.google.com/gke-accelerator"],
        "nvidia-l4"
    );
    assert_eq!(tolerations(&pod), ["nvidia.com/gpu Exists - NoSchedule -"]);

    let any_model = pod_of(env().with_gpu(Gpu::nvidia(1))).await;
    assert_eq!(limits(&any_model)["nvidia.com/gpu"], Quantity("1".into()));
    assert_eq!(spec(&any_model).node_selector, None);
}

#[tokio::test]
async fn with_spot_selects_and_tolerates_spot_nodes_with_a_short_grace_period() {
    let pod = pod_of(env().with_spot(true)).await;
    assert_eq!(
        spec(&pod).node_selector.as_ref().unwrap()["cloud.google.com/gke-spot"],
        "true"
    );
    assert_eq!(
        tolerations(&pod),
        ["cloud.google.com/gke-spot Equal true NoSchedule -"]
    );
    assert_eq!(spec(&pod).termination_grace_period_seconds, Some(25));
}

/// On Spot, a preempted call runs again without `with_retries`.
#[tokio::test]
async fn a_preempted_spot_call_is_retried_by_default() {
    let (server, submitter) = cluster().await;
    let env = env()
        .with_spot(true)
        .with_retry_backoff(Duration::from_millis(50));
    let call = {
        let (submitter, env) = (submitter.clone(), env.clone());
        tokio::spawn(async move { submitter.run(containers::sleep(1_500), &env).await })
    };
    let mut running = false;
    for _ in 0..1000 {
        running = server
            .pods()
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
        if running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(running, "the first pod runs");
    server.faults().preempt_next();
    let result = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("bounded")
        .unwrap();
    assert_eq!(result.unwrap(), 1_500);
    assert_eq!(server.pods().len(), 2, "one pod per attempt");
    submitter.close().await.expect("close");
    server.shutdown().await;
}

#[tokio::test]
async fn with_node_selector_and_with_toleration_reach_the_pod() {
    let pod = pod_of(
        env()
            .with_node_selector("pool", "batch")
            .with_node_selector("example.com/tier", "gold")
            .with_toleration(Toleration::equal("team", "data", TaintEffect::NoSchedule))
            .with_toleration(Toleration::exists(
                "dedicated",
                TaintEffect::PreferNoSchedule,
            ))
            .with_toleration(Toleration::no_execute_for(
                "node.kubernetes.io/unreachable",
                60,
            )),
    )
    .await;
    let selector = spec(&pod).node_selector.clone().unwrap();
    assert_eq!(selector["pool"], "batch");
    assert_eq!(selector["example.com/tier"], "gold");
    assert_eq!(
        tolerations(&pod),
        [
            "team Equal data NoSchedule -",
            "dedicated Exists - PreferNoSchedule -",
            "node.kubernetes.io/unreachable Exists - NoExecute 60",
        ]
    );
}

#[tokio::test]
async fn with_priority_class_reaches_the_pod() {
    let pod = pod_of(env().with_priority_class("batch-low")).await;
    assert_eq!(spec(&pod).priority_class_name.as_deref(), Some("batch-low"));
}

#[tokio::test]
async fn no_api_token_unless_a_service_account_is_named() {
    let plain = pod_of(env()).await;
    assert_eq!(spec(&plain).automount_service_account_token, Some(false));
    assert_eq!(
        spec(&plain).service_account_name.as_deref(),
        Some("default"),
        "the apiserver's default"
    );

    let named = pod_of(env().with_service_account("reader")).await;
    assert_eq!(spec(&named).service_account_name.as_deref(), Some("reader"));
    assert_eq!(spec(&named).automount_service_account_token, None);

    let without = pod_of(
        env()
            .with_service_account("reader")
            .with_service_account_token(false),
    )
    .await;
    assert_eq!(spec(&without).automount_service_account_token, Some(false));
}

#[tokio::test]
async fn with_labels_and_with_annotations_reach_the_pod() {
    let pod = pod_of(
        env()
            .with_labels([("team", "data"), ("example.com/cost-center", "42")])
            .with_annotations([("example.com/note", "free text, with spaces: ok")]),
    )
    .await;
    let labels = pod.metadata.labels.clone().unwrap();
    assert_eq!(labels["team"], "data");
    assert_eq!(labels["example.com/cost-center"], "42");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "hype");
    let annotations = pod.metadata.annotations.clone().unwrap();
    assert_eq!(
        annotations["example.com/note"],
        "free text, with spaces: ok"
    );
    assert!(annotations.contains_key("hype.dev/function-id"));
}

#[tokio::test]
async fn with_cpu_and_with_memory_request_what_they_limit() {
    let pod = pod_of(env().with_cpu("2").with_memory("256Mi")).await;
    let resources = spec(&pod).containers[0].resources.clone().unwrap();
    for map in [resources.requests.unwrap(), resources.limits.unwrap()] {
        assert_eq!(map["cpu"], Quantity("2".into()));
        assert_eq!(map["memory"], Quantity("256Mi".into()));
    }
}

/// Bad options are refused before a pod is created, each named.
#[tokio::test]
async fn refused_options_create_no_pod() {
    let (server, submitter) = cluster().await;
    for (env, expected) in [
        (env().with_gpu(Gpu::nvidia(0)), "GPU count 0 is refused"),
        (env().with_gpu(Gpu::nvidia(17)), "GPU count 17 is refused"),
        (
            env().with_labels([("hype.dev/session", "mine")]),
            "label hype.dev/session is hype's own",
        ),
        (
            env().with_node_selector("pool", "not valid"),
            "node selector value \"not valid\" of pool",
        ),
        (
            env().with_service_account("Not_A_Name"),
            "service account name \"Not_A_Name\"",
        ),
    ] {
        let err = submitter.run(math::add(1, 1), &env).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidEnvironment { .. }),
            "{expected}: {err:?}"
        );
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    }
    assert!(server.pods().is_empty(), "no pod was created");
    submitter.close().await.expect("close");
    server.shutdown().await;
}

/// `#[hype::remote(cpu = "2", memory = "4Gi", gpu = "nvidia-l4:1", spot)]`
/// shapes the pod of an environment that sets none of these; an
/// environment's `with_cpu` replaces only the cpu.
#[tokio::test]
async fn the_attribute_defaults_shape_the_pod_and_the_environment_wins_key_by_key() {
    let pod = pod_of_call(defaults::add_on_gpu(40, 2), env()).await;
    let resources = spec(&pod).containers[0].resources.clone().unwrap();
    for map in [resources.requests.unwrap(), limits(&pod)] {
        assert_eq!(map["cpu"], Quantity("2".into()));
        assert_eq!(map["memory"], Quantity("4Gi".into()));
    }
    assert_eq!(limits(&pod)["nvidia.com/gpu"], Quantity("1".into()));
    let selector = spec(&pod).node_selector.clone().unwrap();
    assert_eq!(selector["cloud.google.com/gke-accelerator"], "nvidia-l4");
    assert_eq!(selector["cloud.google.com/gke-spot"], "true");
    assert_eq!(spec(&pod).termination_grace_period_seconds, Some(25));

    let pod = pod_of_call(
        defaults::add_on_gpu(40, 2),
        env().with_cpu("500m").with_spot(false),
    )
    .await;
    let resources = spec(&pod).containers[0].resources.clone().unwrap();
    for map in [resources.requests.unwrap(), limits(&pod)] {
        assert_eq!(map["cpu"], Quantity("500m".into()), "the env's cpu");
        assert_eq!(
            map["memory"],
            Quantity("4Gi".into()),
            "the function's memory"
        );
    }
    assert_eq!(limits(&pod)["nvidia.com/gpu"], Quantity("1".into()));
    let selector = spec(&pod).node_selector.clone().unwrap();
    assert!(
        !selector.contains_key("cloud.google.com/gke-spot"),
        "with_spot(false) wins over spot: {selector:?}"
    );
}
