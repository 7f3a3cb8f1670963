//! Google Kubernetes Engine clusters (the `gke` feature):
//! [`ContainerEngineCluster`] looks a cluster up in the GKE API and connects
//! the Kubernetes runner to it.
//!
//! 1. `GET https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{cluster}`
//!    (`projects.locations.clusters.get`; `location` is a zone or a region)
//!    gives the control plane's endpoint and CA certificate.
//! 2. A kube client is built for `https://{endpoint}`, trusting only that
//!    CA, with a `tower` layer that puts a Google access token on every
//!    request. Tokens come from Application Default Credentials (the key
//!    file `GOOGLE_APPLICATION_CREDENTIALS` names, gcloud's
//!    application-default file, or the metadata server), which
//!    google-cloud-auth caches and refreshes in the background before they
//!    expire, so a submitter that lives for days keeps working (no
//!    kubeconfig, no `gke-gcloud-auth-plugin`).
//! 3. The client becomes a [`KubeCluster`], which does the rest.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use google_cloud_auth::credentials::Credentials;
use http::{HeaderMap, Request, StatusCode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::KubeCluster;
use crate::backend::{Cluster, Connection, Runner};
use crate::error::Error;
use crate::google::credentials::{GoogleCredentials, ensure_crypto_provider};
use crate::google::rest::{self, SendFailure, Sending, api_message, encode};
use futures::future::BoxFuture;

/// The GKE API.
pub const DEFAULT_API_ENDPOINT: &str = "https://container.googleapis.com";
/// How long one request to the GKE API may take.
const API_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a transient failure of the GKE API is tried.
const API_ATTEMPTS: u32 = 3;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A GKE cluster, found by project, location (zone or region) and name,
/// reached with Application Default Credentials.
///
/// ```no_run
/// # async fn demo() -> Result<(), hype_runtime::Error> {
/// use hype_runtime::{ContainerEngineCluster, Submitter};
/// let cluster = ContainerEngineCluster::new("gcp-project-id", "europe-west1-b", "gke-cluster-id");
/// let submitter = Submitter::new("gs://my-staging-bucket", cluster).await?;
/// # Ok(()) }
/// ```
///
/// The caller's credentials need `container.clusters.get` on the cluster
/// (for instance `roles/container.developer`) and Kubernetes permission to
/// create, watch and delete pods (and claims, when calls mount volumes) in
/// the namespace. The pods' access to the staging bucket is separate: see
/// the README ("Giving pods access to the bucket").
#[derive(Clone)]
#[must_use]
pub struct ContainerEngineCluster {
    project: String,
    location: String,
    cluster: String,
    api_endpoint: String,
    credentials: Option<Credentials>,
    namespace: Option<String>,
    pending_timeout: Option<Duration>,
    scale_up_timeout: Option<Duration>,
    keep_pods: bool,
}

impl std::fmt::Debug for ContainerEngineCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerEngineCluster")
            .field("name", &self.name())
            .field("api_endpoint", &self.api_endpoint)
            .field(
                "credentials",
                &if self.credentials.is_some() {
                    "given"
                } else {
                    "application default"
                },
            )
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Where a GKE cluster's control plane is, as the GKE API says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEndpoint {
    /// The control plane's URL, `https://{endpoint}`.
    pub url: String,
    /// The cluster CA's certificates (DER), the only roots the client trusts.
    pub ca_certificates: Vec<Vec<u8>>,
    /// The cluster's status (`RUNNING`, `RECONCILING`, …).
    pub status: String,
}

impl ContainerEngineCluster {
    /// The cluster `cluster` in `project` at `location` (a zone such as
    /// `europe-west1-b`, or a region such as `europe-west1`).
    pub fn new(
        project: impl Into<String>,
        location: impl Into<String>,
        cluster: impl Into<String>,
    ) -> Self {
        ContainerEngineCluster {
            project: project.into(),
            location: location.into(),
            cluster: cluster.into(),
            api_endpoint: DEFAULT_API_ENDPOINT.to_owned(),
            credentials: None,
            namespace: None,
            pending_timeout: None,
            scale_up_timeout: None,
            keep_pods: false,
        }
    }

    /// The GKE API endpoint (default `https://container.googleapis.com`), for a
    /// private endpoint or a test server.
    pub fn api_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.api_endpoint = endpoint.into().trim_end_matches('/').to_owned();
        self
    }

    /// The credentials that read the cluster and authenticate to it
    /// (default: Application Default Credentials). Build them with
    /// `google-cloud-auth`, for instance from a service account key.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The namespace of the pods and claims (default `default`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// How long a pod may stay unschedulable before its call fails (see
    /// [`KubeCluster::pending_timeout`]).
    pub fn pending_timeout(mut self, timeout: Duration) -> Self {
        self.pending_timeout = Some(timeout);
        self
    }

    /// How long a pod may stay unschedulable while the cluster autoscaler
    /// adds a node for it (see [`KubeCluster::scale_up_timeout`]).
    pub fn scale_up_timeout(mut self, timeout: Duration) -> Self {
        self.scale_up_timeout = Some(timeout);
        self
    }

    /// Keeps finished pods instead of deleting them, for debugging.
    pub fn keep_pods(mut self, keep: bool) -> Self {
        self.keep_pods = keep;
        self
    }

    /// The cluster's resource name,
    /// `projects/{project}/locations/{location}/clusters/{cluster}`.
    pub fn name(&self) -> String {
        format!(
            "projects/{}/locations/{}/clusters/{}",
            self.project, self.location, self.cluster
        )
    }

    fn purpose(&self) -> String {
        format!("GKE cluster {}", self.name())
    }

    fn google_credentials(&self) -> Result<GoogleCredentials, Error> {
        match &self.credentials {
            Some(credentials) => Ok(GoogleCredentials::injected(credentials.clone())),
            None => GoogleCredentials::application_default(&self.purpose()),
        }
    }

    /// Reads the cluster's endpoint and CA certificate from the GKE API.
    pub async fn endpoint(&self) -> Result<ClusterEndpoint, Error> {
        ensure_crypto_provider();
        let credentials = self.google_credentials()?;
        self.lookup(&credentials).await
    }

    async fn lookup(&self, credentials: &GoogleCredentials) -> Result<ClusterEndpoint, Error> {
        let operation = format!("get GKE cluster {}", self.name());
        let fail = |message: String| Error::Cluster {
            operation: operation.clone(),
            message,
            source: None,
        };
        let http = reqwest::Client::builder()
            .build()
            .map_err(|err| fail(format!("cannot create an HTTP client: {err}")))?;
        let url = format!(
            "{}/v1/{}",
            self.api_endpoint,
            self.name()
                .split('/')
                .map(encode)
                .collect::<Vec<_>>()
                .join("/")
        );
        let sending = Sending {
            timeout: API_TIMEOUT,
            attempts: API_ATTEMPTS,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(1),
        };
        let purpose = self.purpose();
        let headers = || credentials.headers(&purpose, &fail);
        let (status, body) = rest::send(&http, reqwest::Method::GET, &url, sending, headers)
            .await
            .map_err(|failure| match failure {
                SendFailure::Headers(err) => err,
                SendFailure::Unanswered { what, attempts } => fail(format!(
                    "{what} (after {attempts} attempts at {}); check the network and the API endpoint",
                    self.api_endpoint
                )),
            })?;
        let detail = api_message(&body);
        let message = match status {
            StatusCode::OK => return self.parse_cluster(&body).map_err(fail),
            StatusCode::NOT_FOUND => format!(
                "not found: project {} has no cluster {} at location {} ({detail}); check the name and the zone or region (`gcloud container clusters list --project {}`)",
                self.project, self.cluster, self.location, self.project
            ),
            StatusCode::FORBIDDEN if service_disabled(&body) => format!(
                "the Kubernetes Engine API is disabled in project {}: enable it (`gcloud services enable container.googleapis.com --project {}`) and retry ({detail})",
                self.project, self.project
            ),
            StatusCode::FORBIDDEN => format!(
                "permission denied for {}: it needs container.clusters.get on the cluster (for instance roles/container.developer) ({detail})",
                credentials.source
            ),
            StatusCode::UNAUTHORIZED => format!(
                "the GKE API rejected {} (401 Unauthorized: {detail})",
                credentials.source
            ),
            other => format!("HTTP {other}: {detail}"),
        };
        // A refusal for good (a missing cluster, a disabled API, no
        // permission) is not tried again; the rest passes.
        if crate::retry::is_permanent_status(status.as_u16()) {
            return Err(Error::Rejected {
                api: "the GKE API",
                operation,
                code: status.as_u16(),
                message,
                source: None,
            });
        }
        Err(fail(message))
    }

    fn parse_cluster(&self, body: &[u8]) -> Result<ClusterEndpoint, String> {
        let json: serde_json::Value = serde_json::from_slice(body)
            .map_err(|err| format!("the GKE API answered with unreadable JSON: {err}"))?;
        let text = |pointer: &str| {
            json.pointer(pointer)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let status = text("/status");
        let endpoint = text("/endpoint");
        if endpoint.is_empty() {
            return Err(format!(
                "the cluster has no endpoint yet (status {}); wait until it is RUNNING",
                if status.is_empty() {
                    "unknown"
                } else {
                    &status
                }
            ));
        }
        let ca = text("/masterAuth/clusterCaCertificate");
        let ca_certificates = parse_ca(&ca)?;
        let url = if endpoint.contains("://") {
            endpoint
        } else {
            format!("https://{endpoint}")
        };
        Ok(ClusterEndpoint {
            url,
            ca_certificates,
            status,
        })
    }

    /// A kube client for the cluster: its endpoint, its CA, and a Google
    /// access token on every request, refreshed before it expires.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        ensure_crypto_provider();
        let credentials = self.google_credentials()?;
        let endpoint = self.lookup(&credentials).await?;
        let fail = |message: String| Error::Config {
            message: format!(
                "cannot configure the Kubernetes client for {}: {message}",
                self.purpose()
            ),
        };
        let uri: http::Uri = endpoint
            .url
            .parse()
            .map_err(|err| fail(format!("endpoint {}: {err}", endpoint.url)))?;
        let mut config = kube::Config::new(uri);
        config.root_cert = Some(endpoint.ca_certificates);
        config.default_namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let layer = GoogleAuthLayer {
            credentials,
            purpose: Arc::from(self.purpose()),
        };
        let builder =
            kube::client::ClientBuilder::try_from(config).map_err(|err| fail(err.to_string()))?;
        tracing::debug!(cluster = %self.name(), status = %endpoint.status, "connecting to GKE");
        Ok(builder.with_layer(&layer).build())
    }

    /// The [`KubeCluster`] this cluster is, with the namespace, pending
    /// and scale-up timeouts and pod keeping set here.
    pub async fn kube_cluster(&self) -> Result<KubeCluster, Error> {
        let client = self.client().await?;
        let mut cluster = KubeCluster::from_client(client).keep_pods(self.keep_pods);
        if let Some(namespace) = &self.namespace {
            cluster = cluster.namespace(namespace.clone());
        }
        if let Some(timeout) = self.pending_timeout {
            cluster = cluster.pending_timeout(timeout);
        }
        if let Some(timeout) = self.scale_up_timeout {
            cluster = cluster.scale_up_timeout(timeout);
        }
        Ok(cluster)
    }
}

impl Cluster for ContainerEngineCluster {
    fn needs_shared_staging(&self) -> Option<&'static str> {
        Some("its pods cannot read this machine's temporary files")
    }

    fn connect(self, connection: Connection) -> BoxFuture<'static, Result<Arc<dyn Runner>, Error>> {
        Box::pin(async move { self.kube_cluster().await?.connect(connection).await })
    }
}

/// Whether a 403 body says the API is disabled in the project (newer
/// `ErrorInfo.reason = SERVICE_DISABLED`, older `accessNotConfigured`).
fn service_disabled(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    text.contains("SERVICE_DISABLED") || text.contains("accessNotConfigured")
}

/// `masterAuth.clusterCaCertificate`: base64 of PEM certificates, as DER.
fn parse_ca(base64_pem: &str) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine as _;
    if base64_pem.is_empty() {
        return Err("the cluster has no CA certificate (masterAuth.clusterCaCertificate)".into());
    }
    let pem = base64::engine::general_purpose::STANDARD
        .decode(base64_pem.trim())
        .map_err(|err| format!("the cluster CA certificate is not base64: {err}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .map(|cert| cert.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("the cluster CA certificate is not PEM: {err}"))?;
    if certs.is_empty() {
        return Err("the cluster CA certificate holds no certificate".into());
    }
    Ok(certs)
}

/// Puts a Google access token on every request to the cluster.
#[derive(Clone)]
struct GoogleAuthLayer {
    credentials: GoogleCredentials,
    purpose: Arc<str>,
}

impl<S> tower::Layer<S> for GoogleAuthLayer {
    type Service = GoogleAuth<S>;

    fn layer(&self, inner: S) -> GoogleAuth<S> {
        GoogleAuth {
            inner,
            credentials: self.credentials.clone(),
            purpose: self.purpose.clone(),
            pending: None,
            ready: None,
        }
    }
}

/// The service of [`GoogleAuthLayer`]. Getting the token is part of being
/// ready: `poll_ready` asks the credentials for their (cached) headers,
/// `call` puts them on the request. google-cloud-auth refreshes the token
/// in the background before it expires, so asking per request is cheap and
/// never yields an expired token.
struct GoogleAuth<S> {
    inner: S,
    credentials: GoogleCredentials,
    purpose: Arc<str>,
    pending: Option<BoxFuture<'static, Result<HeaderMap, Error>>>,
    ready: Option<HeaderMap>,
}

impl<S, B> tower::Service<Request<B>> for GoogleAuth<S>
where
    S: tower::Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.ready.is_none() {
            let pending = self.pending.get_or_insert_with(|| {
                let credentials = self.credentials.clone();
                let purpose = self.purpose.clone();
                Box::pin(async move {
                    credentials
                        .headers(&purpose, |message| Error::Cluster {
                            operation: format!("authenticate to {purpose}"),
                            message,
                            source: None,
                        })
                        .await
                })
            });
            let headers = std::task::ready!(pending.as_mut().poll(cx));
            self.pending = None;
            match headers {
                Ok(headers) => self.ready = Some(headers),
                Err(err) => return Poll::Ready(Err(Box::new(err))),
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let Some(headers) = self.ready.take() else {
            return Box::pin(async {
                Err("GoogleAuth::call before poll_ready gave a token".into())
            });
        };
        // Only the token: the quota-project header is for Google APIs.
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
        }
        let future = self.inner.call(request);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        let cluster = ContainerEngineCluster::new("p", "europe-west1-b", "c");
        assert_eq!(
            cluster.name(),
            "projects/p/locations/europe-west1-b/clusters/c"
        );
        let regional = ContainerEngineCluster::new("p", "europe-west1", "c")
            .api_endpoint("http://127.0.0.1:9/");
        assert_eq!(regional.api_endpoint, "http://127.0.0.1:9");
    }

    #[test]
    fn api_disabled_is_recognised_in_both_forms() {
        assert!(service_disabled(
            br#"{"error":{"code":403,"status":"PERMISSION_DENIED","details":[{"reason":"SERVICE_DISABLED"}]}}"#
        ));
        assert!(service_disabled(
            br#"{"error":{"errors":[{"reason":"accessNotConfigured"}]}}"#
        ));
        assert!(!service_disabled(
            br#"{"error":{"code":403,"status":"PERMISSION_DENIED"}}"#
        ));
    }

    #[test]
    fn ca_certificates_are_base64_pem() {
        use base64::Engine as _;
        let der = b"not really a certificate, but DER bytes all the same";
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        let field = base64::engine::general_purpose::STANDARD.encode(pem);
        assert_eq!(parse_ca(&field).unwrap(), vec![der.to_vec()]);
        assert!(parse_ca("").unwrap_err().contains("no CA"));
        assert!(parse_ca("%%%").unwrap_err().contains("base64"));
        let empty = base64::engine::general_purpose::STANDARD.encode("no pem here");
        assert!(parse_ca(&empty).unwrap_err().contains("no certificate"));
    }
}
