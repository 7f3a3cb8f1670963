//! Where a call's pod may run: [`Gpu`]s, Spot VMs, node selectors,
//! [`Toleration`]s and the priority class. Kubernetes only: the Docker and
//! local runners ignore these options (with a debug log naming each).

use super::RunEnvironment;

/// The resource name of NVIDIA GPUs, in `resources.limits` and as the
/// taint GKE puts on GPU nodes; also how a function's `gpu` default sees
/// that an environment limits GPUs itself, with every backend.
pub(crate) const NVIDIA_GPU: &str = "nvidia.com/gpu";
/// The GKE node label naming a node's accelerator (`nvidia-l4`).
#[cfg(feature = "kubernetes")]
pub(crate) const GKE_ACCELERATOR: &str = "cloud.google.com/gke-accelerator";
/// The GKE node label (and taint) of Spot VMs.
#[cfg(feature = "kubernetes")]
pub(crate) const GKE_SPOT: &str = "cloud.google.com/gke-spot";
/// The longest grace period GKE grants a Spot pod before its node goes:
/// `terminationGracePeriodSeconds` is capped to it on Spot.
#[cfg(feature = "kubernetes")]
pub(crate) const SPOT_GRACE_PERIOD_SECONDS: i64 = 25;
/// The most GPUs a call may ask for (the most a GKE node has).
pub(crate) const MAX_GPUS: u32 = 16;

/// GPUs for a call ([`RunEnvironment::with_gpu`]): a count and, on GKE,
/// the accelerator model.
///
/// ```
/// use hype_runtime::{Gpu, RunEnvironment};
///
/// let env = RunEnvironment::new("img").with_gpu(Gpu::nvidia(1).model("nvidia-l4"));
/// assert_eq!(env.gpu().map(Gpu::count), Some(1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    count: u32,
    model: Option<String>,
}

impl Gpu {
    /// `count` NVIDIA GPUs (`nvidia.com/gpu`), of any model unless
    /// [`Gpu::model`] names one. A count of 0 or more than 16 is refused
    /// before any call runs ([`RunEnvironment::validate`], which every run
    /// calls, fails with [`crate::Error::InvalidEnvironment`] naming the
    /// count): `with_*` builders return values, not results.
    pub fn nvidia(count: u32) -> Self {
        Gpu { count, model: None }
    }

    /// The accelerator model, as GKE labels its nodes
    /// (`cloud.google.com/gke-accelerator`: `nvidia-l4`,
    /// `nvidia-tesla-a100`, …).
    pub fn model(self, model: impl Into<String>) -> Self {
        Gpu {
            model: Some(model.into()),
            ..self
        }
    }

    /// How many GPUs.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The model, if one was named.
    pub fn model_name(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

/// What a taint does to pods that do not tolerate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaintEffect {
    /// New pods are not scheduled on the node.
    NoSchedule,
    /// The scheduler avoids the node if it can.
    PreferNoSchedule,
    /// Running pods are evicted, and new ones not scheduled.
    NoExecute,
}

impl TaintEffect {
    /// The name Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// A toleration of a node taint ([`RunEnvironment::with_toleration`]), as
/// in a pod's `spec.tolerations`.
///
/// ```
/// use hype_runtime::{TaintEffect, Toleration};
///
/// let gpus = Toleration::exists("nvidia.com/gpu", TaintEffect::NoSchedule);
/// let pool = Toleration::equal("pool", "batch", TaintEffect::NoSchedule);
/// let flaky = Toleration::no_execute_for("node.kubernetes.io/unreachable", 60);
/// assert_eq!(flaky.seconds(), Some(60));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    key: String,
    value: Option<String>,
    effect: TaintEffect,
    seconds: Option<u64>,
}

impl Toleration {
    /// Tolerates taint `key=value:effect` (operator `Equal`).
    pub fn equal(key: impl Into<String>, value: impl Into<String>, effect: TaintEffect) -> Self {
        Toleration {
            key: key.into(),
            value: Some(value.into()),
            effect,
            seconds: None,
        }
    }

    /// Tolerates taint `key` with any value (operator `Exists`). The key
    /// must be a valid label key; tolerating every taint (an empty key) is
    /// left to a base pod.
    pub fn exists(key: impl Into<String>, effect: TaintEffect) -> Self {
        Toleration {
            key: key.into(),
            value: None,
            effect,
            seconds: None,
        }
    }

    /// Tolerates `NoExecute` taint `key` (any value) for `seconds` after it
    /// appears, then the pod is evicted (`tolerationSeconds`).
    pub fn no_execute_for(key: impl Into<String>, seconds: u64) -> Self {
        Toleration {
            seconds: Some(seconds),
            ..Toleration::exists(key, TaintEffect::NoExecute)
        }
    }

    /// The taint's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value (`Equal`), or `None` (`Exists`).
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The effect tolerated.
    pub fn effect(&self) -> TaintEffect {
        self.effect
    }

    /// How long a `NoExecute` taint is tolerated, if bounded.
    pub fn seconds(&self) -> Option<u64> {
        self.seconds
    }

    /// The toleration of GPU nodes' taint.
    #[cfg(feature = "kubernetes")]
    pub(crate) fn nvidia_gpu() -> Self {
        Toleration::exists(NVIDIA_GPU, TaintEffect::NoSchedule)
    }

    /// The toleration of Spot nodes' taint.
    #[cfg(feature = "kubernetes")]
    pub(crate) fn gke_spot() -> Self {
        Toleration::equal(GKE_SPOT, "true", TaintEffect::NoSchedule)
    }
}

impl RunEnvironment {
    /// Runs the call with GPUs: the limit `nvidia.com/gpu: count`, a
    /// toleration of the `nvidia.com/gpu` `NoSchedule` taint (for clusters
    /// whose admission does not add it), and with a model the node selector
    /// `cloud.google.com/gke-accelerator: <model>`. Kubernetes only.
    pub fn with_gpu(self, gpu: Gpu) -> Self {
        self.with(|s| s.gpu = Some(gpu))
    }

    /// Runs the call on GKE Spot VMs (or not): the node selector
    /// `cloud.google.com/gke-spot: "true"`, its toleration, and
    /// `terminationGracePeriodSeconds` at most 25 (what GKE grants a Spot
    /// pod). A preempted call fails as lost ([`crate::ErrorKind::Lost`]),
    /// and without [`RunEnvironment::with_retries`] a Spot call is retried
    /// up to [`super::SPOT_DEFAULT_RETRIES`] times. Kubernetes only.
    pub fn with_spot(self, spot: bool) -> Self {
        self.with(|s| s.spot = Some(spot))
    }

    /// Runs the call only on nodes labelled `key: value` (the pod's
    /// `nodeSelector`; wins over a base pod's value of the same key). Keys
    /// and values must be valid Kubernetes labels. Kubernetes only.
    pub fn with_node_selector(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        self.with(|s| {
            s.node_selector.insert(key, value);
        })
    }

    /// Lets the call's pod run on nodes with a matching taint (added to a
    /// base pod's tolerations). Kubernetes only.
    pub fn with_toleration(self, toleration: Toleration) -> Self {
        self.with(|s| {
            if !s.tolerations.contains(&toleration) {
                s.tolerations.push(toleration);
            }
        })
    }

    /// The pod's `priorityClassName`: a PriorityClass of the cluster.
    /// Kubernetes only.
    pub fn with_priority_class(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with(|s| s.priority_class = Some(name))
    }

    /// The GPUs, if any.
    pub fn gpu(&self) -> Option<&Gpu> {
        self.inner.gpu.as_ref()
    }

    /// Whether calls run on Spot VMs.
    pub fn is_spot(&self) -> bool {
        self.inner.spot.unwrap_or(false)
    }

    /// The node selector set with [`RunEnvironment::with_node_selector`]
    /// (without what GPUs and Spot add).
    pub fn node_selector(&self) -> &std::collections::BTreeMap<String, String> {
        &self.inner.node_selector
    }

    /// The tolerations set with [`RunEnvironment::with_toleration`]
    /// (without what GPUs and Spot add).
    pub fn tolerations(&self) -> &[Toleration] {
        &self.inner.tolerations
    }

    /// The priority class, if any.
    pub fn priority_class(&self) -> Option<&str> {
        self.inner.priority_class.as_deref()
    }

    /// The names of the options set that only a pod can honour, for the
    /// runners that ignore them to say so.
    pub(crate) fn pod_only_options(&self) -> Vec<&'static str> {
        let s = &self.inner;
        [
            ("with_gpu", s.gpu.is_some()),
            ("with_spot", s.spot == Some(true)),
            ("with_node_selector", !s.node_selector.is_empty()),
            ("with_toleration", !s.tolerations.is_empty()),
            ("with_priority_class", s.priority_class.is_some()),
            ("with_service_account", s.service_account.is_some()),
            (
                "with_service_account_token",
                s.service_account_token.is_some(),
            ),
            ("with_labels", !s.labels.is_empty()),
            ("with_annotations", !s.annotations.is_empty()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}
