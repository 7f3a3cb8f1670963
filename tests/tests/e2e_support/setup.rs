//! What the e2e target needs of a cluster: its configuration from the
//! environment ([`Config`]), a client of it, a namespace of its own that
//! goes at the end whatever happens ([`NamespaceGuard`]), the run's
//! submitter ([`Ctx`]), and the check that nothing of a session is left.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hype::{RunEnvironment, Submitter};
use hype_tests::backends::KubeCluster;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolumeClaim, Pod, Secret as KubeSecret, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The label every object of a session carries.
pub const SESSION_LABEL: &str = "hype.dev/session";

/// The cluster to test, from `HYPE_E2E_*`.
#[derive(Debug, Clone)]
pub struct Config {
    /// `HYPE_E2E_KUBECONFIG`.
    pub kubeconfig: PathBuf,
    /// `HYPE_E2E_CONTEXT` (default: the kubeconfig's current context).
    pub context: Option<String>,
    /// `HYPE_E2E_IMAGE`: an image whose entrypoint is the launcher `hype-run`.
    pub image: String,
    /// `HYPE_E2E_STAGING`: `gs://bucket[/prefix]` or `file:///dir`.
    pub staging: String,
    /// `HYPE_E2E_STORAGE_CLASS` (default `standard`): the claims' class.
    pub storage_class: String,
}

impl Config {
    /// The configuration; `Ok(None)` without `HYPE_E2E_KUBECONFIG` (the
    /// target skips); an error naming what is missing or wrong otherwise.
    pub fn from_env() -> Result<Option<Config>, String> {
        let var = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let Some(kubeconfig) = var("HYPE_E2E_KUBECONFIG") else {
            return Ok(None);
        };
        let kubeconfig = PathBuf::from(kubeconfig);
        if !kubeconfig.is_file() {
            return Err(format!(
                "HYPE_E2E_KUBECONFIG={} is not a file",
                kubeconfig.display()
            ));
        }
        let missing = ["HYPE_E2E_IMAGE", "HYPE_E2E_STAGING"]
            .into_iter()
            .filter(|key| var(key).is_none())
            .collect::<Vec<_>>();
        if !missing.is_empty() {
            return Err(format!(
                "HYPE_E2E_KUBECONFIG is set, but {} {} not: set HYPE_E2E_IMAGE to an image whose \
                 entrypoint is the launcher `hype-run` (docker/Dockerfile builds one) and \
                 HYPE_E2E_STAGING to a gs:// bucket or a file:// directory every node shares \
                 (see the README's \"Tests against a real cluster\")",
                missing.join(" and "),
                if missing.len() == 1 { "is" } else { "are" }
            ));
        }
        let staging = var("HYPE_E2E_STAGING").unwrap_or_default();
        if !(staging.starts_with("gs://") || staging.starts_with("file:///")) {
            return Err(format!(
                "HYPE_E2E_STAGING={staging}: give a gs://bucket[/prefix] or a file:///absolute/dir that every node shares"
            ));
        }
        Ok(Some(Config {
            kubeconfig,
            context: var("HYPE_E2E_CONTEXT"),
            image: var("HYPE_E2E_IMAGE").unwrap_or_default(),
            staging,
            storage_class: var("HYPE_E2E_STORAGE_CLASS").unwrap_or_else(|| "standard".to_owned()),
        }))
    }

    /// The client configuration of the kubeconfig and context.
    pub async fn kube_config(&self) -> Result<kube::Config, String> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| format!("read {}: {e}", self.kubeconfig.display()))?;
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| {
                format!(
                    "{} (context {:?}): {e}",
                    self.kubeconfig.display(),
                    self.context
                )
            })
    }

    /// The staging directory, for `file://` staging.
    pub fn staging_dir(&self) -> Option<&str> {
        self.staging.strip_prefix("file://")
    }

    /// The environment the calls get: the image, and for `file://`
    /// staging a base pod mounting the directory at its own path (a
    /// `hostPath` volume: the nodes share it), with `extra` more YAML of
    /// the `hype-run` container (indented by 6 spaces) and `labels`.
    pub fn env(&self, dir: &std::path::Path, extra: &str, labels: &str) -> RunEnvironment {
        let mut yaml = String::from("apiVersion: v1\nkind: Pod\n");
        if !labels.is_empty() {
            yaml.push_str(&format!("metadata:\n  labels:\n{labels}"));
        }
        yaml.push_str("spec:\n  containers:\n    - name: hype-run\n");
        yaml.push_str(extra);
        if let Some(staging) = self.staging_dir() {
            yaml.push_str(&format!(
                "      volumeMounts:\n        - name: hype-e2e-staging\n          mountPath: {staging}\n  volumes:\n    - name: hype-e2e-staging\n      hostPath:\n        path: {staging}\n        type: DirectoryOrCreate\n"
            ));
        }
        let path = dir.join(format!("base-pod-{}.yaml", unique()));
        std::fs::write(&path, yaml).expect("write the base pod");
        RunEnvironment::from_yaml(&path)
            .expect("the base pod parses")
            .with_image(&self.image)
    }
}

/// A short random suffix for names.
pub fn unique() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.write_u32(std::process::id());
    format!("{:08x}", hasher.finish() as u32)
}

/// A namespace made for this run, deleted when dropped (after a failure
/// too); its `default` service account is there before pods go in.
pub struct NamespaceGuard {
    config: kube::Config,
    /// The namespace's name.
    pub name: String,
}

impl NamespaceGuard {
    /// Creates `name` and waits (bounded) for its `default` service account.
    pub async fn create(
        client: &kube::Client,
        config: &kube::Config,
        name: &str,
    ) -> Result<NamespaceGuard, String> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/created-by".to_owned(),
                    "hype-e2e".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|e| format!("create namespace {name}: {e}"))?;
        let guard = NamespaceGuard {
            config: config.clone(),
            name: name.to_owned(),
        };
        // The service account controller adds `default` a moment later;
        // pods created before it are refused.
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match accounts.get_opt("default").await {
                Ok(Some(_)) => return Ok(guard),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(None) => {
                    return Err(format!(
                        "namespace {name}: no service account `default` after 60 s"
                    ));
                }
                Err(e) => return Err(format!("namespace {name}: get serviceaccount default: {e}")),
            }
        }
    }
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        // A runtime of its own, on a thread of its own: this runs inside
        // the test's runtime or after it, on success and on panic.
        let (config, name) = (self.config.clone(), self.name.clone());
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
                let namespaces: Api<Namespace> = Api::all(client);
                let params = DeleteParams::background();
                let deleting = namespaces.delete(&name, &params);
                match tokio::time::timeout(Duration::from_secs(60), deleting).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("no answer within 60 s".to_owned()),
                }
            })
        })
        .join();
        match deleted {
            Ok(Ok(())) => eprintln!("e2e: namespace {} deleted", self.name),
            Ok(Err(e)) => eprintln!(
                "e2e: COULD NOT DELETE namespace {}: {e} (delete it by hand: kubectl delete namespace {})",
                self.name, self.name
            ),
            Err(_) => eprintln!(
                "e2e: COULD NOT DELETE namespace {} (delete it by hand)",
                self.name
            ),
        }
    }
}

/// The run: its cluster, namespace and submitter.
pub struct Ctx {
    pub config: Config,
    pub client: kube::Client,
    pub namespace: NamespaceGuard,
    pub submitter: Submitter,
    /// The calls' environment (image, and staging mount for `file://`).
    pub env: RunEnvironment,
    /// For base pods and the like.
    pub dir: tempfile::TempDir,
}

impl Ctx {
    /// Connects, makes the run's namespace and a submitter in it that
    /// ships this program.
    pub async fn new(config: Config) -> Result<Ctx, String> {
        let kube_config = config.kube_config().await?;
        let client = kube::Client::try_from(kube_config.clone()).map_err(|e| e.to_string())?;
        let name = format!("hype-e2e-{}", unique());
        let namespace = NamespaceGuard::create(&client, &kube_config, &name).await?;
        let submitter = connect(&config, &client, &name, |k| k).await?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let env = config.env(dir.path(), "", "");
        Ok(Ctx {
            config,
            client,
            namespace,
            submitter,
            env,
            dir,
        })
    }

    /// The pods of `session` in the run's namespace.
    pub async fn pods_of(&self, session: &str) -> Vec<Pod> {
        objects::<Pod>(&self.client, &self.namespace.name, session).await
    }

    /// Waits (bounded) until no pod of the run's submitter is left (its
    /// Lease and claims live as long as it).
    pub async fn assert_no_pods_left(&self) {
        let session = self.submitter.session().to_owned();
        let deadline = tokio::time::Instant::now() + BOUND_GONE;
        let mut left = self.pods_of(&session).await;
        while !left.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            left = self.pods_of(&session).await;
        }
        let names: Vec<_> = left.iter().map(|p| p.metadata.name.clone()).collect();
        assert!(
            names.is_empty(),
            "pods left in {} after {BOUND_GONE:?}: {names:?}",
            self.namespace.name
        );
    }
}

/// How long pods, claims and Leases may take to go.
pub const BOUND_GONE: Duration = Duration::from_secs(120);

/// A submitter on the cluster in `namespace`, staging in the configured
/// store, shipping this program (its default executable).
pub async fn connect(
    config: &Config,
    client: &kube::Client,
    namespace: &str,
    configure: impl FnOnce(KubeCluster) -> KubeCluster,
) -> Result<Submitter, String> {
    let cluster = configure(KubeCluster::from_client(client.clone()).namespace(namespace));
    let connecting = Submitter::builder(cluster)
        .staging(config.staging.clone())
        .build();
    let submitter = tokio::time::timeout(Duration::from_secs(120), connecting)
        .await
        .map_err(|_| "connecting took over 120 s".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    if submitter.shipped_executable().is_none() {
        return Err("the submitter ships nothing: the e2e target tests shipping".to_owned());
    }
    Ok(submitter)
}

/// Objects of kind `K` of `session` in `namespace`.
pub async fn objects<K>(client: &kube::Client, namespace: &str, session: &str) -> Vec<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&format!("{SESSION_LABEL}={session}"));
    api.list(&params)
        .await
        .unwrap_or_else(|e| panic!("list in {namespace}: {e}"))
        .items
}

/// What of `session` is in `namespace`: pods, claims, Leases, by name.
pub async fn session_objects(client: &kube::Client, namespace: &str, session: &str) -> Vec<String> {
    fn names<K: kube::Resource>(kind: &str, items: Vec<K>) -> Vec<String> {
        items
            .iter()
            .map(|o| format!("{kind} {}", o.meta().name.clone().unwrap_or_default()))
            .collect()
    }
    let mut left = names("pod", objects::<Pod>(client, namespace, session).await);
    left.extend(names(
        "claim",
        objects::<PersistentVolumeClaim>(client, namespace, session).await,
    ));
    left.extend(names(
        "lease",
        objects::<Lease>(client, namespace, session).await,
    ));
    left
}

/// Waits up to `bound` until nothing of `session` is in `namespace`;
/// gives what is left then.
pub async fn wait_for_none(
    client: &kube::Client,
    namespace: &str,
    session: &str,
    bound: Duration,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let left = session_objects(client, namespace, session).await;
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Creates a Secret in `namespace`.
pub async fn create_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    data: BTreeMap<String, Vec<u8>>,
) {
    let secrets: Api<KubeSecret> = Api::namespaced(client.clone(), namespace);
    let secret = KubeSecret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, k8s_openapi::ByteString(v)))
                .collect(),
        ),
        ..KubeSecret::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|e| panic!("create secret {name} in {namespace}: {e}"));
}
