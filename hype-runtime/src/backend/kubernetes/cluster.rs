//! [`KubeCluster`]: which cluster (kubeconfig context, in-cluster
//! configuration, or a client built elsewhere), which namespace, and how
//! calls behave there; connecting it takes the session's Lease, starts the
//! session's shared watch and builds the runner.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::api::Api;

use super::autoscaler::AutoscalerEvents;
use super::deletion::Deleter;
use super::lease::SessionLease;
use super::runner::KubernetesRunner;
use super::watch::{PodWatcher, WatchBounds};
use super::{pod, volumes};
use crate::backend::{Cluster, Connection, Runner};
use crate::error::Error;
use futures::future::BoxFuture;

/// How long a pod may stay unschedulable before its call fails, unless set
/// with [`KubeCluster::pending_timeout`], while no cluster autoscaler is
/// adding a node for it.
pub const DEFAULT_PENDING_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How long a pod may stay unschedulable while the cluster autoscaler is
/// adding a node for it, unless set with [`KubeCluster::scale_up_timeout`]:
/// GKE adds a node in minutes, and a GPU node can take about 15 minutes
/// before its GPUs can be scheduled.
pub const DEFAULT_SCALE_UP_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// A Kubernetes cluster reached through kubeconfig or the in-cluster
/// configuration.
///
/// ```no_run
/// # async fn demo() -> Result<(), hype_runtime::Error> {
/// use hype_runtime::{KubeCluster, Submitter};
/// let cluster = KubeCluster::new().context("my-context").namespace("batch");
/// let submitter = Submitter::new("gs://my-bucket/hype", cluster).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KubeCluster {
    source: Source,
    namespace: Option<String>,
    pending_timeout: Duration,
    scale_up_timeout: Duration,
    keep_pods: bool,
    watch_bounds: WatchBounds,
}

#[derive(Clone)]
enum Source {
    Infer { context: Option<String> },
    Client(kube::Client),
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::Infer { context } => format!("infer(context: {context:?})"),
            Source::Client(_) => "client".to_owned(),
        };
        f.debug_struct("KubeCluster")
            .field("source", &source)
            .field("namespace", &self.namespace)
            .field("pending_timeout", &self.pending_timeout)
            .field("scale_up_timeout", &self.scale_up_timeout)
            .field("keep_pods", &self.keep_pods)
            .field("watch_bounds", &self.watch_bounds)
            .finish()
    }
}

impl Default for KubeCluster {
    fn default() -> Self {
        KubeCluster::new()
    }
}

impl KubeCluster {
    /// The cluster of the current kubeconfig context, or the in-cluster
    /// configuration inside a pod (`kube::Config::infer`).
    pub fn new() -> Self {
        KubeCluster {
            source: Source::Infer { context: None },
            namespace: None,
            pending_timeout: DEFAULT_PENDING_TIMEOUT,
            scale_up_timeout: DEFAULT_SCALE_UP_TIMEOUT,
            keep_pods: false,
            watch_bounds: WatchBounds::default(),
        }
    }

    /// The cluster of a named kubeconfig context.
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.source = Source::Infer {
            context: Some(context.into()),
        };
        self
    }

    /// A cluster behind an existing client (its default namespace unless
    /// [`KubeCluster::namespace`] says otherwise).
    pub fn from_client(client: kube::Client) -> Self {
        KubeCluster {
            source: Source::Client(client),
            ..KubeCluster::new()
        }
    }

    /// The namespace of the pods and claims (default: the configuration's,
    /// else `default`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// How long a pod may stay unschedulable before its call fails with
    /// [`Error::Unschedulable`] and the scheduler's message (default
    /// 5 min), unless the cluster autoscaler
    /// is adding a node for it (see [`KubeCluster::scale_up_timeout`]).
    /// It applies as well when the autoscaler said it will not add one
    /// (`NotTriggerScaleUp`): in a fan-out larger than the cluster, pods
    /// wait for the nodes other calls free, and the autoscaler says so of
    /// every one of them once the node pool is at its maximum.
    pub fn pending_timeout(mut self, timeout: Duration) -> Self {
        self.pending_timeout = timeout;
        self
    }

    /// How long a pod may stay unschedulable while the cluster autoscaler
    /// is adding a node for it (its latest event about the pod is
    /// `TriggeredScaleUp`) before its call fails with
    /// [`Error::Unschedulable`] (default 20 min). Both timeouts count from when the pod was first seen
    /// unschedulable. Reading the pod's events needs `list` on `events`
    /// (docs/rbac.yaml); without it, only the pending timeout applies.
    pub fn scale_up_timeout(mut self, timeout: Duration) -> Self {
        self.scale_up_timeout = timeout;
        self
    }

    /// Keeps finished pods instead of deleting them, for debugging.
    pub fn keep_pods(mut self, keep: bool) -> Self {
        self.keep_pods = keep;
        self
    }

    /// The bounds of the pod watch's fault handling: how long a watch may
    /// stay silent before it is re-established (default 75 s), and how
    /// often the session's pods are listed as a safety net while calls
    /// wait (default 30 s). Each watch asks the server to end it after
    /// `idle` minus 15 s (at least 1 s). For tests of those faults.
    #[doc(hidden)]
    pub fn watch_bounds(mut self, idle: Duration, resync: Duration) -> Self {
        self.watch_bounds = WatchBounds {
            server_timeout: idle
                .saturating_sub(Duration::from_secs(15))
                .max(Duration::from_secs(1)),
            idle,
            resync,
        };
        self
    }

    /// The API client this cluster's submitter would use, and the
    /// namespace of its pods: what `hype ps`, `hype logs` and `hype gc`
    /// connect with, so they see what a submitter of the same
    /// configuration sees.
    pub async fn client(&self) -> Result<(kube::Client, String), Error> {
        let config_error = |err: String| Error::Config {
            message: format!("cannot configure the Kubernetes client: {err}"),
        };
        let client = match &self.source {
            Source::Client(client) => client.clone(),
            Source::Infer { context } => {
                let config = match context {
                    None => kube::Config::infer()
                        .await
                        .map_err(|e| config_error(e.to_string()))?,
                    Some(context) => {
                        kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
                            context: Some(context.clone()),
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| config_error(format!("context {context}: {e}")))?
                    }
                };
                kube::Client::try_from(config).map_err(|e| config_error(e.to_string()))?
            }
        };
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        Ok((client, namespace))
    }
}

impl Cluster for KubeCluster {
    fn needs_shared_staging(&self) -> Option<&'static str> {
        Some("its pods cannot read this machine's temporary files")
    }

    fn connect(self, connection: Connection) -> BoxFuture<'static, Result<Arc<dyn Runner>, Error>> {
        Box::pin(async move {
            let default_workers = crate::config::workers()?;
            let (client, namespace) = self.client().await?;
            let session = connection.session();
            let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
            let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
            let leases: Api<Lease> = Api::namespaced(client, &namespace);
            let lease = SessionLease::acquire(leases, &namespace, session).await?;
            let watcher = match PodWatcher::start(
                pods.clone(),
                &namespace,
                pod::session_selector(session),
                self.watch_bounds,
            )
            .await
            {
                Ok(watcher) => watcher,
                Err(err) => {
                    if let Err(release) = lease.release().await {
                        tracing::warn!(%release, "cannot delete the session's lease");
                    }
                    return Err(err);
                }
            };
            tracing::debug!(%namespace, %session, "connected to Kubernetes");
            let deleter = Deleter::new(pods.clone(), &namespace);
            let workers = super::workers::WorkerPools::new(
                super::workers::Context {
                    pods: pods.clone(),
                    namespace: namespace.clone(),
                    session: session.to_owned(),
                    deleter: deleter.clone(),
                    watch: watcher.handle(),
                    owner: (!self.keep_pods).then(|| lease.owner_reference()),
                    pending_timeout: self.pending_timeout,
                    closed: tokio_util::sync::CancellationToken::new(),
                },
                default_workers,
            );
            Ok(Arc::new(KubernetesRunner {
                workers,
                deleter,
                log_trouble: super::logs::LogTrouble::new(session),
                autoscaler: AutoscalerEvents::new(events, &namespace),
                volumes: volumes::Volumes::new(
                    claims,
                    &namespace,
                    session,
                    lease.owner_reference(),
                ),
                pods,
                namespace,
                watcher,
                lease,
                session: session.to_owned(),
                pending_timeout: self.pending_timeout,
                scale_up_timeout: self.scale_up_timeout,
                keep_pods: self.keep_pods,
            }) as Arc<dyn Runner>)
        })
    }
}
