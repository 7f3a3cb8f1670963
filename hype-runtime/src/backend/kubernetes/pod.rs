//! The pod of a call: a pure function from the call and its
//! [`RunEnvironment`] to a `k8s_openapi` [`Pod`], golden-tested.
//!
//! - one container named `hype-run` with the environment's image, the call
//!   as its only argument (the image's entrypoint is `hype-run`), and
//!   `HYPE_EXECUTION_ID` set to the pod's name;
//! - `restartPolicy: Never` (a failing function is not retried: spotify/hype#30);
//! - labels `app.kubernetes.io/managed-by: hype`, `hype.dev/session`,
//!   `hype.dev/function`, and the annotation `hype.dev/function-id` with the
//!   full ID;
//! - secrets as read-only secret volumes, claims with the mount's read-only
//!   flag, resource requests and limits, env vars;
//! - `activeDeadlineSeconds` from the timeout;
//! - `terminationMessagePolicy: FallbackToLogsOnError`;
//! - `HYPE_IMAGE` set to the image, for errors a launcher reports;
//! - when the call ships an executable, the node selector
//!   `kubernetes.io/arch` of its machine type (`amd64`, `arm64`), unless a
//!   base pod selects an arch itself (node selector or node affinity);
//! - a security context that passes the `restricted` Pod Security
//!   Standard (`security`: non-root user 65532, no privilege escalation,
//!   all capabilities dropped, `RuntimeDefault` seccomp, a read-only root
//!   filesystem with an `emptyDir` at `/tmp`), each field unless a base pod
//!   sets it;
//! - the pod options: GPUs (limit `nvidia.com/gpu`, its toleration, the
//!   model's node selector), Spot (node selector, toleration, grace period
//!   capped at 25 s), node selectors, tolerations, priority class, service
//!   account, `automountServiceAccountToken: false` unless a service account
//!   is named or the token asked for, and the user's labels and annotations
//!   (under hype's own).
//!
//! A base pod ([`RunEnvironment::from_yaml`]) must have a container named
//! `hype-run` without an image; its args are replaced (with a warning), its
//! resource requests and limits are merged with the environment's, which win;
//! so are its labels, annotations, node selector and tolerations (added to),
//! service account, priority class and grace period (replaced when an
//! option sets them); its security context is kept field by field, hype's
//! defaults filling only the fields it leaves unset (`security`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EnvVar, PersistentVolumeClaimVolumeSource, Pod, PodSpec, ResourceRequirements,
    SecretVolumeSource, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::security;
use crate::backend::labels;
use crate::environment::{
    GKE_ACCELERATOR, GKE_SPOT, NVIDIA_GPU, RunEnvironment, SPOT_GRACE_PERIOD_SECONDS,
    Toleration as EnvToleration,
};
use crate::error::Error;

/// The name of the container that runs the call.
pub const CONTAINER: &str = "hype-run";

/// Everything a pod is made from.
#[derive(Debug, Clone)]
pub struct PodRequest<'a> {
    /// The pod's name (the execution ID).
    pub name: &'a str,
    /// The function's ID.
    pub function: &'a str,
    /// The submitter session.
    pub session: &'a str,
    /// The `hype-run` argument.
    pub call: &'a str,
    /// The environment.
    pub env: &'a RunEnvironment,
    /// The machine type of the executable the call ships, if it ships one.
    pub arch: Option<crate::backend::Arch>,
    /// The call's own marker ([`ANNOTATION_MARKER`]): unique per call, so
    /// a pod found under this name after a lost create response is known
    /// to be this call's.
    pub marker: &'a str,
    /// The session's Lease, the pod's owner (none for kept pods).
    pub owner: Option<&'a OwnerReference>,
}

/// Annotation: the call's marker, unique per call ([`PodRequest::marker`]).
pub const ANNOTATION_MARKER: &str = "hype.dev/execution-marker";

/// The node label of a machine type.
pub const ARCH_LABEL: &str = "kubernetes.io/arch";

/// The label selector of a session's objects.
pub(crate) fn session_selector(session: &str) -> String {
    labels::session_selector_terms(session).join(",")
}

/// The volume name of secret `name` in a pod.
fn secret_volume(name: &str) -> String {
    volume_name("secret", name)
}

/// The volume name of claim `name` in a pod.
fn claim_volume(name: &str) -> String {
    volume_name("claim", name)
}

/// A DNS-1123 label from a prefix and an object name (dots are not allowed
/// in volume names; long names are shortened with a hash to stay unique).
fn volume_name(prefix: &str, name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c == '.' { '-' } else { c })
        .collect();
    let full = format!("{prefix}-{safe}");
    if full.len() <= 63 {
        return full;
    }
    let hash = crate::wire::fnv1a64(name.as_bytes());
    let mut short: String = full.chars().take(63 - 17).collect();
    while short.ends_with('-') {
        short.pop();
    }
    format!("{short}-{hash:016x}")
}

/// Builds the pod of a call.
pub fn build(request: &PodRequest<'_>) -> Result<Pod, Error> {
    let env = request.env;
    let Some(image) = env.image() else {
        return Err(Error::InvalidEnvironment {
            problems: vec![
                "the environment has no image: pods need RunEnvironment::new(image) or .with_image(image)".to_owned(),
            ],
        });
    };
    let mut pod = match env.base_pod() {
        Some(base) => parse_base_pod(base.yaml(), &base.path().display().to_string())?,
        None => Pod::default(),
    };

    // The base pod's, then the environment's, then hype's own (validation
    // refused a user's key of hype's).
    let mut labels = pod.metadata.labels.take().unwrap_or_default();
    labels.extend(env.labels().clone());
    labels.extend(labels::session_labels::<BTreeMap<_, _>>(request.session));
    labels.insert(
        labels::LABEL_FUNCTION.to_owned(),
        labels::label_value(
            request
                .function
                .rsplit("::")
                .next()
                .unwrap_or(request.function),
        ),
    );
    let mut annotations = pod.metadata.annotations.take().unwrap_or_default();
    annotations.extend(env.annotations().clone());
    annotations.insert(
        labels::LABEL_FUNCTION_ID.to_owned(),
        request.function.to_owned(),
    );
    annotations.insert(ANNOTATION_MARKER.to_owned(), request.marker.to_owned());
    pod.metadata = ObjectMeta {
        name: Some(request.name.to_owned()),
        labels: Some(labels),
        annotations: Some(annotations),
        owner_references: request.owner.map(|owner| vec![owner.clone()]),
        ..ObjectMeta::default()
    };

    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    spec.restart_policy = Some("Never".to_owned());
    spec.active_deadline_seconds = Some(deadline_seconds(env.timeout()));

    // A base pod has the container (parse_base_pod checked); a plain one gets it.
    let index = match spec.containers.iter().position(|c| c.name == CONTAINER) {
        Some(index) => index,
        None => {
            spec.containers.push(Container {
                name: CONTAINER.to_owned(),
                ..Container::default()
            });
            spec.containers.len() - 1
        }
    };
    let container = &mut spec.containers[index];
    container.image = Some(image.to_owned());
    if container.args.as_ref().is_some_and(|a| !a.is_empty()) {
        tracing::warn!(
            pod = request.name,
            "the base pod's hype-run container has args; they are replaced by the call"
        );
    }
    container.args = Some(vec![request.call.to_owned()]);
    container.termination_message_policy = Some("FallbackToLogsOnError".to_owned());
    let mut vars: Vec<EnvVar> = container.env.take().unwrap_or_default();
    for (key, value) in env.env_vars() {
        vars.retain(|v| v.name != *key);
        vars.push(plain_var(key, value));
    }
    vars.retain(|v| v.name != "HYPE_EXECUTION_ID" && v.name != "HYPE_IMAGE");
    vars.push(plain_var("HYPE_EXECUTION_ID", request.name));
    vars.push(plain_var("HYPE_IMAGE", image));
    container.env = Some(vars);

    let resources = container
        .resources
        .get_or_insert_with(ResourceRequirements::default);
    merge_quantities(&mut resources.requests, env.requests());
    merge_quantities(&mut resources.limits, env.limits());
    if let Some(gpu) = env.gpu() {
        resources
            .limits
            .get_or_insert_with(BTreeMap::new)
            .insert(NVIDIA_GPU.to_owned(), Quantity(gpu.count().to_string()));
    }

    let mut mounts: Vec<VolumeMount> = container.volume_mounts.take().unwrap_or_default();
    let mut volumes: Vec<Volume> = spec.volumes.take().unwrap_or_default();
    for secret in env.secrets() {
        let name = secret_volume(secret.name());
        if !volumes.iter().any(|v| v.name == name) {
            volumes.push(Volume {
                name: name.clone(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret.name().to_owned()),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            });
        }
        mounts.push(VolumeMount {
            name,
            mount_path: secret.mount_path().display().to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    for mount in env.mounts() {
        let name = claim_volume(mount.volume().name());
        if let Some(existing) = volumes.iter_mut().find(|v| v.name == name) {
            // One claim mounted twice: the volume is read-only only if every mount is.
            if let Some(source) = existing.persistent_volume_claim.as_mut() {
                source.read_only = Some(source.read_only.unwrap_or(false) && mount.is_read_only());
            }
        } else {
            volumes.push(Volume {
                name: name.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: mount.volume().name().to_owned(),
                    read_only: Some(mount.is_read_only()),
                }),
                ..Volume::default()
            });
        }
        mounts.push(VolumeMount {
            name,
            mount_path: mount.mount_path().display().to_string(),
            read_only: Some(mount.is_read_only()),
            ..VolumeMount::default()
        });
    }
    container.volume_mounts = (!mounts.is_empty()).then_some(mounts);
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
    security::secure(spec, index, env);
    place(spec, env);
    identify(spec, env);
    if let Some(arch) = request.arch
        && !selects_arch(spec)
    {
        spec.node_selector
            .get_or_insert_with(BTreeMap::new)
            .insert(ARCH_LABEL.to_owned(), arch.go_name().to_owned());
    }
    Ok(pod)
}

/// Where the pod runs: the environment's node selectors, tolerations,
/// GPUs, Spot and priority class, over the base pod's.
fn place(spec: &mut PodSpec, env: &RunEnvironment) {
    let mut selector: BTreeMap<String, String> = env.node_selector().clone();
    let mut tolerations: Vec<EnvToleration> = env.tolerations().to_vec();
    if let Some(gpu) = env.gpu() {
        if let Some(model) = gpu.model_name() {
            selector.insert(GKE_ACCELERATOR.to_owned(), model.to_owned());
        }
        tolerations.push(EnvToleration::nvidia_gpu());
    }
    if env.is_spot() {
        selector.insert(GKE_SPOT.to_owned(), "true".to_owned());
        tolerations.push(EnvToleration::gke_spot());
        // Cap, never raise: a base pod's shorter grace period stays.
        let grace = spec
            .termination_grace_period_seconds
            .unwrap_or(KUBERNETES_GRACE_PERIOD_SECONDS);
        spec.termination_grace_period_seconds = Some(grace.min(SPOT_GRACE_PERIOD_SECONDS));
    }
    if !selector.is_empty() {
        spec.node_selector
            .get_or_insert_with(BTreeMap::new)
            .extend(selector);
    }
    if !tolerations.is_empty() {
        let list = spec.tolerations.get_or_insert_with(Vec::new);
        for toleration in tolerations {
            let toleration = pod_toleration(&toleration);
            if !list.contains(&toleration) {
                list.push(toleration);
            }
        }
    }
    if let Some(class) = env.priority_class() {
        spec.priority_class_name = Some(class.to_owned());
    }
}

/// The grace period Kubernetes gives a pod that sets none.
const KUBERNETES_GRACE_PERIOD_SECONDS: i64 = 30;

fn pod_toleration(toleration: &EnvToleration) -> Toleration {
    Toleration {
        key: Some(toleration.key().to_owned()),
        operator: Some(
            if toleration.value().is_some() {
                "Equal"
            } else {
                "Exists"
            }
            .to_owned(),
        ),
        value: toleration.value().map(str::to_owned),
        effect: Some(toleration.effect().as_str().to_owned()),
        toleration_seconds: toleration
            .seconds()
            .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
    }
}

/// Who the pod is: the service account, and no API token unless a
/// service account is named (here or in the base pod) or asked for.
fn identify(spec: &mut PodSpec, env: &RunEnvironment) {
    if let Some(account) = env.service_account() {
        spec.service_account_name = Some(account.to_owned());
    }
    match env.service_account_token() {
        Some(mount) => spec.automount_service_account_token = Some(mount),
        None if spec.service_account_name.is_none()
            && spec.automount_service_account_token.is_none() =>
        {
            spec.automount_service_account_token = Some(false);
        }
        None => {}
    }
}

/// Whether a (base) pod spec already chooses nodes by machine type.
fn selects_arch(spec: &PodSpec) -> bool {
    let by_selector = spec
        .node_selector
        .as_ref()
        .is_some_and(|s| s.contains_key(ARCH_LABEL));
    let by_affinity = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .is_some_and(|affinity| {
            let required = affinity
                .required_during_scheduling_ignored_during_execution
                .iter()
                .flat_map(|r| &r.node_selector_terms);
            let preferred = affinity
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
                .map(|p| &p.preference);
            required.chain(preferred).any(|term| {
                term.match_expressions
                    .iter()
                    .flatten()
                    .any(|e| e.key == ARCH_LABEL)
            })
        });
    by_selector || by_affinity
}

/// Sets the execution's own variables (the caller's trace context) on
/// the pod's `hype-run` container, over any of the same name.
pub fn add_env(pod: &mut Pod, vars: &[(String, String)]) {
    if vars.is_empty() {
        return;
    }
    let containers = pod
        .spec
        .iter_mut()
        .flat_map(|spec| spec.containers.iter_mut());
    for container in containers.filter(|c| c.name == CONTAINER) {
        let env = container.env.get_or_insert_with(Vec::new);
        for (key, value) in vars {
            env.retain(|v| v.name != *key);
            env.push(plain_var(key, value));
        }
    }
}

fn plain_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

fn merge_quantities(
    target: &mut Option<BTreeMap<String, Quantity>>,
    from: &BTreeMap<String, String>,
) {
    if from.is_empty() {
        return;
    }
    let map = target.get_or_insert_with(BTreeMap::new);
    for (resource, amount) in from {
        map.insert(resource.clone(), Quantity(amount.clone()));
    }
}

/// Parses and checks a base pod: YAML of a `Pod` with a container named
/// `hype-run` that sets no image.
pub fn parse_base_pod(yaml: &str, origin: &str) -> Result<Pod, Error> {
    let invalid = |problem: String| Error::InvalidEnvironment {
        problems: vec![format!("base pod {origin}: {problem}")],
    };
    let pod: Pod =
        serde_yaml_ng::from_str(yaml).map_err(|err| invalid(format!("not a Pod: {err}")))?;
    let Some(spec) = &pod.spec else {
        return Err(invalid("it has no spec".to_owned()));
    };
    let Some(container) = spec.containers.iter().find(|c| c.name == CONTAINER) else {
        let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        return Err(invalid(format!(
            "it needs a container named `{CONTAINER}` (found: {}); hype runs the call in that container",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
    };
    if let Some(image) = &container.image {
        return Err(invalid(format!(
            "its `{CONTAINER}` container sets image {image}; remove it and give the image with RunEnvironment::with_image"
        )));
    }
    Ok(pod)
}

/// The `activeDeadlineSeconds` of a call's timeout: whole seconds,
/// rounded up, between 1 and 2^31 - 1 (about 68 years: what the API server
/// accepts, and "never" for a longer timeout such as `Duration::MAX`).
fn deadline_seconds(timeout: std::time::Duration) -> i64 {
    let whole = timeout
        .as_secs()
        .saturating_add(u64::from(timeout.subsec_nanos() > 0));
    i64::try_from(whole.clamp(1, i32::MAX as u64)).unwrap_or(i64::from(i32::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::labels::label_value;
    use crate::environment::{Secret, VolumeRequest};

    fn request<'a>(env: &'a RunEnvironment) -> PodRequest<'a> {
        PodRequest {
            name: "hype-word-count-abcd1234",
            function: "my_crate::jobs::word_count",
            session: "s3ss10nabc",
            call: "inline:SFlQQwE=",
            env,
            arch: None,
            marker: "s3ss10nabc-0123456789abcdef",
            owner: None,
        }
    }

    /// Compares with `golden/<name>.json`; `HYPE_BLESS=1` rewrites it.
    fn golden(name: &str, pod: &Pod) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/backend/kubernetes/golden")
            .join(format!("{name}.json"));
        let actual = serde_json::to_string_pretty(pod).unwrap() + "\n";
        if std::env::var_os("HYPE_BLESS").is_some() {
            std::fs::write(&path, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|err| {
            panic!(
                "{}: {err}; run with HYPE_BLESS=1 to create it",
                path.display()
            )
        });
        assert_eq!(actual, expected, "pod differs from {}", path.display());
    }

    #[test]
    fn a_full_environment() {
        let ssd = VolumeRequest::persistent("shared-data", "gce-ssd-pd", "10Gi");
        let env = RunEnvironment::new("gcr.io/p/env:1")
            .with_secret(Secret::new("gcp-key", "/etc/gcloud"))
            .with_mount(ssd.mount_read_only("/data"))
            .with_request("cpu", "750m")
            .with_limit("memory", "2Gi")
            .with_env("RUST_LOG", "info")
            .with_timeout(Duration::from_millis(90_500));
        let lease = OwnerReference {
            api_version: "coordination.k8s.io/v1".to_owned(),
            kind: "Lease".to_owned(),
            name: "hype-s3ss10nabc".to_owned(),
            uid: "0c1d2e3f-0000-4000-8000-000000000001".to_owned(),
            ..OwnerReference::default()
        };
        let owned = PodRequest {
            owner: Some(&lease),
            ..request(&env)
        };
        golden("full", &build(&owned).unwrap());
    }

    #[test]
    fn deadlines_round_up_and_stay_within_what_the_api_accepts() {
        assert_eq!(deadline_seconds(Duration::ZERO), 1);
        assert_eq!(deadline_seconds(Duration::from_millis(90_500)), 91);
        assert_eq!(deadline_seconds(Duration::from_secs(3600)), 3600);
        assert_eq!(deadline_seconds(Duration::MAX), i64::from(i32::MAX));
    }

    #[test]
    fn a_minimal_environment() {
        golden(
            "minimal",
            &build(&request(&RunEnvironment::new("img"))).unwrap(),
        );
    }

    #[test]
    fn a_shipped_executable_selects_nodes_of_its_arch_unless_the_base_pod_does() {
        use crate::backend::Arch;
        let env = RunEnvironment::new("img");
        let shipped = PodRequest {
            arch: Some(Arch::Aarch64),
            ..request(&env)
        };
        let pod = build(&shipped).unwrap();
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_selector.as_ref().unwrap()[ARCH_LABEL], "arm64");
        let vars = spec.containers[0].env.as_ref().unwrap();
        assert!(
            vars.iter()
                .any(|v| v.name == "HYPE_IMAGE" && v.value.as_deref() == Some("img"))
        );
        assert_eq!(
            build(&request(&env)).unwrap().spec.unwrap().node_selector,
            None
        );

        let dir = tempfile::tempdir().unwrap();
        for (name, yaml) in [
            (
                "selector.yaml",
                "spec:\n  nodeSelector:\n    kubernetes.io/arch: amd64\n  containers:\n    - name: hype-run\n",
            ),
            (
                "affinity.yaml",
                "spec:\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n          - matchExpressions:\n              - key: kubernetes.io/arch\n                operator: In\n                values: [amd64]\n  containers:\n    - name: hype-run\n",
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, yaml).unwrap();
            let env = RunEnvironment::from_yaml(&path).unwrap().with_image("img");
            let pod = build(&PodRequest {
                arch: Some(Arch::Aarch64),
                ..request(&env)
            })
            .unwrap();
            let selector = pod.spec.unwrap().node_selector.unwrap_or_default();
            assert_ne!(
                selector.get(ARCH_LABEL).map(String::as_str),
                Some("arm64"),
                "{name}: the base pod's own choice stays"
            );
        }
    }

    #[test]
    fn a_base_pod_is_merged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base.yaml");
        std::fs::write(
            &path,
            r#"
apiVersion: v1
kind: Pod
metadata:
  labels:
    team: data
spec:
  nodeSelector:
    pool: highmem
  containers:
    - name: hype-run
      args: ["ignored"]
      env:
        - name: RUST_LOG
          value: debug
        - name: KEEP
          value: "1"
      resources:
        requests:
          cpu: "2"
          memory: 1Gi
      securityContext:
        runAsUser: 1000
    - name: sidecar
      image: busybox
"#,
        )
        .unwrap();
        let env = RunEnvironment::from_yaml(&path)
            .unwrap()
            .with_image("img:2")
            .with_request("cpu", "500m")
            .with_env("RUST_LOG", "info");
        let pod = build(&request(&env)).unwrap();
        let spec = pod.spec.as_ref().unwrap();
        let c = &spec.containers[0];
        assert_eq!(c.args.as_deref(), Some(&["inline:SFlQQwE=".to_owned()][..]));
        let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(
            requests["cpu"],
            Quantity("500m".into()),
            "the environment's request wins"
        );
        assert_eq!(
            requests["memory"],
            Quantity("1Gi".into()),
            "the base pod's other requests stay"
        );
        let env_vars = c.env.as_ref().unwrap();
        assert!(env_vars.iter().any(|v| v.name == "KEEP"));
        assert_eq!(env_vars.iter().filter(|v| v.name == "RUST_LOG").count(), 1);
        assert_eq!(
            c.security_context.as_ref().unwrap().run_as_user,
            Some(1000),
            "a base pod's security context is kept"
        );
        assert_eq!(spec.node_selector.as_ref().unwrap()["pool"], "highmem");
        assert_eq!(spec.containers[1].name, "sidecar");
        assert_eq!(pod.metadata.labels.as_ref().unwrap()["team"], "data");
        golden("base_pod", &pod);
    }

    #[test]
    fn base_pods_must_have_an_imageless_hype_run_container() {
        let missing = parse_base_pod(
            "spec:\n  containers:\n    - name: main\n      image: x\n",
            "a.yaml",
        )
        .unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("container named `hype-run` (found: main)"),
            "{missing}"
        );
        let with_image = parse_base_pod(
            "spec:\n  containers:\n    - name: hype-run\n      image: x\n",
            "b.yaml",
        )
        .unwrap_err();
        assert!(
            with_image.to_string().contains("sets image x"),
            "{with_image}"
        );
        let garbage = parse_base_pod("- 1\n- 2\n", "c.yaml").unwrap_err();
        assert!(
            garbage.to_string().contains("c.yaml: not a Pod"),
            "{garbage}"
        );
    }

    #[test]
    fn no_image_is_a_clear_error() {
        let err = build(&request(&RunEnvironment::local())).unwrap_err();
        assert!(err.to_string().contains("no image"), "{err}");
    }

    fn spec_of(env: &RunEnvironment) -> PodSpec {
        build(&request(env)).unwrap().spec.unwrap()
    }

    /// A toleration's key, operator, value, effect and seconds.
    type Tolerated = (String, String, Option<String>, String, Option<i64>);

    fn tolerations_of(spec: &PodSpec) -> Vec<Tolerated> {
        spec.tolerations
            .iter()
            .flatten()
            .map(|t| {
                (
                    t.key.clone().unwrap_or_default(),
                    t.operator.clone().unwrap_or_default(),
                    t.value.clone(),
                    t.effect.clone().unwrap_or_default(),
                    t.toleration_seconds,
                )
            })
            .collect()
    }

    fn base_env(yaml: &str) -> (tempfile::TempDir, RunEnvironment) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base.yaml");
        std::fs::write(&path, yaml).unwrap();
        let env = RunEnvironment::from_yaml(&path).unwrap().with_image("img");
        (dir, env)
    }

    #[test]
    fn a_gpu_sets_its_limit_toleration_and_model_selector() {
        use crate::environment::Gpu;
        let spec = spec_of(&RunEnvironment::new("img").with_gpu(Gpu::nvidia(2).model("nvidia-l4")));
        let limits = spec.containers[0]
            .resources
            .as_ref()
            .unwrap()
            .limits
            .clone()
            .unwrap();
        assert_eq!(limits["nvidia.com/gpu"], Quantity("2".into()));
        assert_eq!(
            spec.node_selector.as_ref().unwrap()["cloud.google.com/gke-accelerator"],
            "nvidia-l4"
        );
        assert_eq!(
            tolerations_of(&spec),
            [(
                "nvidia.com/gpu".into(),
                "Exists".into(),
                None,
                "NoSchedule".into(),
                None
            )]
        );
        let any_model = spec_of(&RunEnvironment::new("img").with_gpu(Gpu::nvidia(1)));
        assert_eq!(any_model.node_selector, None, "no model, no node selector");
        assert_eq!(tolerations_of(&any_model).len(), 1);
    }

    #[test]
    fn spot_selects_spot_nodes_tolerates_them_and_caps_the_grace_period() {
        let spec = spec_of(&RunEnvironment::new("img").with_spot(true));
        assert_eq!(
            spec.node_selector.as_ref().unwrap()["cloud.google.com/gke-spot"],
            "true"
        );
        assert_eq!(
            tolerations_of(&spec),
            [(
                "cloud.google.com/gke-spot".into(),
                "Equal".into(),
                Some("true".into()),
                "NoSchedule".into(),
                None
            )]
        );
        assert_eq!(spec.termination_grace_period_seconds, Some(25));
        let off = spec_of(&RunEnvironment::new("img").with_spot(false));
        assert_eq!(off.node_selector, None);
        assert_eq!(off.termination_grace_period_seconds, None);
        // A base pod's shorter grace period stays; a longer one is capped.
        for (base, expected) in [(10, 10), (60, 25)] {
            let (_dir, env) = base_env(&format!(
                "spec:\n  terminationGracePeriodSeconds: {base}\n  containers:\n    - name: hype-run\n"
            ));
            let spec = spec_of(&env.with_spot(true));
            assert_eq!(
                spec.termination_grace_period_seconds,
                Some(expected),
                "{base}"
            );
        }
    }

    #[test]
    fn node_selectors_and_tolerations_merge_with_the_base_pod_and_win() {
        use crate::environment::{TaintEffect, Toleration as T};
        let (_dir, env) = base_env(
            "spec:\n  nodeSelector:\n    pool: highmem\n    zone: a\n  tolerations:\n    - key: dedicated\n      operator: Exists\n      effect: NoSchedule\n  containers:\n    - name: hype-run\n",
        );
        let env = env
            .with_node_selector("pool", "batch")
            .with_toleration(T::equal("team", "data", TaintEffect::PreferNoSchedule))
            .with_toleration(T::no_execute_for("node.kubernetes.io/unreachable", 60))
            .with_toleration(T::exists("dedicated", TaintEffect::NoSchedule));
        let spec = spec_of(&env);
        let selector = spec.node_selector.as_ref().unwrap();
        assert_eq!(selector["pool"], "batch", "the option wins");
        assert_eq!(selector["zone"], "a", "the base pod's other keys stay");
        assert_eq!(
            tolerations_of(&spec),
            [
                (
                    "dedicated".into(),
                    "Exists".into(),
                    None,
                    "NoSchedule".into(),
                    None
                ),
                (
                    "team".into(),
                    "Equal".into(),
                    Some("data".into()),
                    "PreferNoSchedule".into(),
                    None
                ),
                (
                    "node.kubernetes.io/unreachable".into(),
                    "Exists".into(),
                    None,
                    "NoExecute".into(),
                    Some(60)
                ),
            ],
            "added to the base pod's, without duplicates"
        );
    }

    #[test]
    fn a_node_selector_of_the_arch_stands_for_the_shipped_arch() {
        let env = RunEnvironment::new("img").with_node_selector(ARCH_LABEL, "amd64");
        let pod = build(&PodRequest {
            arch: Some(crate::backend::Arch::Aarch64),
            ..request(&env)
        })
        .unwrap();
        assert_eq!(
            pod.spec.unwrap().node_selector.unwrap()[ARCH_LABEL],
            "amd64"
        );
    }

    #[test]
    fn the_priority_class_is_set_over_the_base_pods() {
        let spec = spec_of(&RunEnvironment::new("img").with_priority_class("batch-low"));
        assert_eq!(spec.priority_class_name.as_deref(), Some("batch-low"));
        let (_dir, env) =
            base_env("spec:\n  priorityClassName: high\n  containers:\n    - name: hype-run\n");
        assert_eq!(spec_of(&env).priority_class_name.as_deref(), Some("high"));
        let spec = spec_of(&env.with_priority_class("batch-low"));
        assert_eq!(spec.priority_class_name.as_deref(), Some("batch-low"));
    }

    #[test]
    fn no_api_token_unless_a_service_account_is_named_or_the_token_asked_for() {
        let plain = spec_of(&RunEnvironment::new("img"));
        assert_eq!(plain.automount_service_account_token, Some(false));
        assert_eq!(plain.service_account_name, None);

        let named = spec_of(&RunEnvironment::new("img").with_service_account("reader"));
        assert_eq!(named.service_account_name.as_deref(), Some("reader"));
        assert_eq!(
            named.automount_service_account_token, None,
            "the cluster's default"
        );

        let no_token = spec_of(
            &RunEnvironment::new("img")
                .with_service_account("reader")
                .with_service_account_token(false),
        );
        assert_eq!(no_token.automount_service_account_token, Some(false));
        let token = spec_of(&RunEnvironment::new("img").with_service_account_token(true));
        assert_eq!(token.automount_service_account_token, Some(true));

        let (_dir, env) = base_env(
            "spec:\n  serviceAccountName: from-base\n  containers:\n    - name: hype-run\n",
        );
        let base = spec_of(&env);
        assert_eq!(base.service_account_name.as_deref(), Some("from-base"));
        assert_eq!(base.automount_service_account_token, None);
        let over = spec_of(&env.with_service_account("reader"));
        assert_eq!(over.service_account_name.as_deref(), Some("reader"));
    }

    #[test]
    fn user_labels_and_annotations_join_hypes_which_win() {
        let (_dir, env) = base_env(
            "metadata:\n  labels:\n    team: base\n    keep: \"1\"\n  annotations:\n    note: base\nspec:\n  containers:\n    - name: hype-run\n",
        );
        let env = env
            .with_labels([("team", "data"), ("cost-center", "42")])
            .with_annotations([("note", "free text: anything at all")]);
        let pod = build(&request(&env)).unwrap();
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels["team"], "data", "the option wins over the base pod");
        assert_eq!(labels["keep"], "1");
        assert_eq!(labels["cost-center"], "42");
        assert_eq!(labels[labels::LABEL_MANAGED_BY], labels::MANAGED_BY);
        let annotations = pod.metadata.annotations.unwrap();
        assert_eq!(annotations["note"], "free text: anything at all");
        assert_eq!(
            annotations[labels::LABEL_FUNCTION_ID],
            "my_crate::jobs::word_count"
        );
    }

    #[test]
    fn cpu_and_memory_set_requests_equal_to_limits() {
        let env = RunEnvironment::new("img").with_cpu("2").with_memory("4Gi");
        let resources = spec_of(&env).containers[0].resources.clone().unwrap();
        for map in [resources.requests.unwrap(), resources.limits.unwrap()] {
            assert_eq!(map["cpu"], Quantity("2".into()));
            assert_eq!(map["memory"], Quantity("4Gi".into()));
        }
        // An explicit request stays below the limit, in either order.
        let env = RunEnvironment::new("img")
            .with_request("cpu", "500m")
            .with_cpu("2");
        let resources = spec_of(&env).containers[0].resources.clone().unwrap();
        assert_eq!(resources.requests.unwrap()["cpu"], Quantity("500m".into()));
        assert_eq!(resources.limits.unwrap()["cpu"], Quantity("2".into()));
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("word_count"), "word_count");
        assert_eq!(label_value("__x__"), "x");
        assert_eq!(label_value("a/b c"), "a-b-c");
        assert_eq!(label_value(&"x".repeat(100)).len(), 63);
        assert_eq!(label_value("---"), "");
        assert!(volume_name("claim", &"a.b".repeat(40)).len() <= 63);
    }
}
