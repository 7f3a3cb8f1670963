//! A test double of Google's side of a GKE cluster, for the tests of
//! `ContainerEngineCluster`:
//!
//! - the GKE API's `projects.locations.clusters.get`
//!   (`GET /v1/projects/{p}/locations/{l}/clusters/{c}`), answering per
//!   cluster as told: running, not found (404), permission denied (403),
//!   API disabled (403 `SERVICE_DISABLED`), still provisioning;
//! - an OAuth token endpoint (`POST /token`) that issues numbered access
//!   tokens (`tok-1`, `tok-2`, …) with a set lifetime, for
//!   `authorized_user` credentials whose `token_uri` points here;
//! - the cluster's Kubernetes endpoint over TLS, with a certificate for
//!   `127.0.0.1` signed by a CA made for the run (the CA the GKE API
//!   reports), answering `GET /version` and recording the bearer token of
//!   every request and whether it was valid then; told to
//!   ([`GkeServer::forward_kube_to`]), it forwards every other request
//!   with a valid token to a Kubernetes test double.
//!
//! It is not Google: only the fields hype reads are there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock, so that tests on paused time see tokens expire in it.
use tokio::time::Instant;

use crate::backends::google_cloud_auth::credentials::Credentials;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;

/// What the GKE API answers for a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterAnswer {
    /// 200 with the endpoint and CA of this server's Kubernetes endpoint.
    Running,
    /// 200 with the endpoint, but the CA of another cluster.
    ForeignCa,
    /// 200 without an endpoint, status `PROVISIONING`.
    Provisioning,
    /// 403 `PERMISSION_DENIED` (no `container.clusters.get`).
    PermissionDenied,
    /// 403 with `ErrorInfo.reason = SERVICE_DISABLED`.
    ApiDisabled,
}

/// One request the double saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request path.
    pub path: String,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// Whether the token was one this double issued and had not expired.
    pub valid: bool,
    /// When it arrived.
    pub at: Instant,
}

struct Issued {
    token: String,
    expires: Instant,
}

struct Shared {
    token_lifetime: Duration,
    issued: Mutex<Vec<Issued>>,
    clusters: Mutex<HashMap<String, ClusterAnswer>>,
    api_requests: Mutex<Vec<Seen>>,
    kube_requests: Mutex<Vec<Seen>>,
    kube_endpoint: String,
    ca_pem: String,
    foreign_ca_pem: String,
    /// Where the Kubernetes endpoint forwards what it does not answer
    /// itself (a Kubernetes test double's URL), if anywhere.
    forward: Mutex<Option<String>>,
}

impl Shared {
    fn check(&self, path: &str, headers: &HeaderMap) -> Seen {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let now = Instant::now();
        let valid = token.as_ref().is_some_and(|t| {
            self.issued
                .lock()
                .unwrap()
                .iter()
                .any(|i| &i.token == t && i.expires > now)
        });
        Seen {
            path: path.to_owned(),
            token,
            valid,
            at: now,
        }
    }
}

/// The running double; stops when dropped.
pub struct GkeServer {
    shared: Arc<Shared>,
    api_url: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for GkeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GkeServer")
            .field("api_url", &self.api_url)
            .field("kube_endpoint", &self.shared.kube_endpoint)
            .finish()
    }
}

impl Drop for GkeServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl GkeServer {
    /// Starts the double on two free loopback ports, on the current tokio
    /// runtime. Access tokens live `token_lifetime`.
    pub async fn start(token_lifetime: Duration) -> GkeServer {
        crate::gcs_server::http_client(); // installs the rustls provider
        let (tls, ca_pem) = tls_config();
        let (_, foreign_ca_pem) = tls_config();
        let kube_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Kubernetes endpoint");
        let kube_endpoint = kube_listener.local_addr().expect("its address").to_string();
        let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the GKE API");
        let api_url = format!("http://{}", api_listener.local_addr().expect("its address"));
        let shared = Arc::new(Shared {
            token_lifetime,
            issued: Mutex::new(Vec::new()),
            clusters: Mutex::new(HashMap::new()),
            api_requests: Mutex::new(Vec::new()),
            kube_requests: Mutex::new(Vec::new()),
            kube_endpoint,
            ca_pem,
            foreign_ca_pem,
            forward: Mutex::new(None),
        });

        let api = Router::new()
            .route("/token", post(issue_token))
            .route(
                "/v1/projects/{project}/locations/{location}/clusters/{cluster}",
                get(get_cluster),
            )
            .with_state(shared.clone());
        let api_task = tokio::spawn(async move {
            let _ = axum::serve(api_listener, api).await;
        });

        let kube = Router::new()
            .route("/version", get(version))
            .fallback(kube_fallback)
            .with_state(shared.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let kube_task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = kube_listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let kube = kube.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(kube);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        GkeServer {
            shared,
            api_url,
            tasks: vec![api_task, kube_task],
        }
    }

    /// The GKE API endpoint, `http://127.0.0.1:PORT`.
    pub fn api_endpoint(&self) -> &str {
        &self.api_url
    }

    /// The token endpoint.
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.api_url)
    }

    /// The Kubernetes endpoint as the GKE API reports it, `127.0.0.1:PORT`.
    pub fn kube_endpoint(&self) -> &str {
        &self.shared.kube_endpoint
    }

    /// Sets what the GKE API answers for a cluster; unknown clusters are 404.
    pub fn set_cluster(&self, project: &str, location: &str, cluster: &str, answer: ClusterAnswer) {
        self.shared.clusters.lock().unwrap().insert(
            format!("projects/{project}/locations/{location}/clusters/{cluster}"),
            answer,
        );
    }

    /// Makes the Kubernetes endpoint forward every request other than
    /// `/version` that carries a valid token to `url` (a
    /// [`KubeTestServer`](crate::kube_double::KubeTestServer)'s), whole
    /// answers only (no watches): the GKE cluster then holds what that
    /// double holds. Requests without a valid token get 401.
    pub fn forward_kube_to(&self, url: &str) {
        *self.shared.forward.lock().unwrap() = Some(url.trim_end_matches('/').to_owned());
    }

    /// The [`credentials`](Self::credentials) as the JSON of an
    /// `authorized_user` file (what `GOOGLE_APPLICATION_CREDENTIALS` may
    /// name), for a process that finds them as Application Default
    /// Credentials.
    pub fn credentials_json(&self) -> String {
        serde_json::json!({
            "type": "authorized_user",
            "client_id": "hype-test-client",
            "client_secret": "hype-test-secret",
            "refresh_token": "hype-test-refresh-token",
            "token_uri": self.token_uri(),
        })
        .to_string()
    }

    /// `authorized_user` credentials (what `gcloud auth application-default
    /// login` writes) whose tokens come from this double. Call inside a
    /// tokio runtime: google-cloud-auth starts its refresh task here.
    pub fn credentials(&self) -> Credentials {
        let json: serde_json::Value = serde_json::from_str(&self.credentials_json()).expect("JSON");
        crate::backends::google_cloud_auth::credentials::user_account::Builder::new(json)
            .build()
            .expect("authorized_user credentials")
    }

    /// The access tokens issued so far, in order.
    pub fn tokens_issued(&self) -> Vec<String> {
        let issued = self.shared.issued.lock().unwrap();
        issued.iter().map(|i| i.token.clone()).collect()
    }

    /// Requests to the GKE API so far.
    pub fn api_requests(&self) -> Vec<Seen> {
        self.shared.api_requests.lock().unwrap().clone()
    }

    /// Requests to the Kubernetes endpoint so far.
    pub fn kube_requests(&self) -> Vec<Seen> {
        self.shared.kube_requests.lock().unwrap().clone()
    }
}

async fn issue_token(State(shared): State<Arc<Shared>>, body: String) -> Response {
    let request: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if request["grant_type"] != "refresh_token"
        || request["refresh_token"] != "hype-test-refresh-token"
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let mut issued = shared.issued.lock().unwrap();
    let token = format!("tok-{}", issued.len() + 1);
    issued.push(Issued {
        token: token.clone(),
        expires: Instant::now() + shared.token_lifetime,
    });
    axum::Json(serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": shared.token_lifetime.as_secs(),
    }))
    .into_response()
}

fn google_error(
    status: StatusCode,
    code: &str,
    message: &str,
    details: serde_json::Value,
) -> Response {
    (
        status,
        axum::Json(serde_json::json!({
            "error": {
                "code": status.as_u16(),
                "message": message,
                "status": code,
                "details": details,
            }
        })),
    )
        .into_response()
}

async fn get_cluster(
    State(shared): State<Arc<Shared>>,
    Path((project, location, cluster)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let name = format!("projects/{project}/locations/{location}/clusters/{cluster}");
    let seen = shared.check(&format!("/v1/{name}"), &headers);
    let valid = seen.valid;
    shared.api_requests.lock().unwrap().push(seen);
    if !valid {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
            serde_json::json!([]),
        );
    }
    let answer = shared.clusters.lock().unwrap().get(&name).copied();
    match answer {
        None => google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Not found: {name}."),
            serde_json::json!([]),
        ),
        Some(ClusterAnswer::PermissionDenied) => google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!("Required \"container.clusters.get\" permission(s) for \"{name}\"."),
            serde_json::json!([]),
        ),
        Some(ClusterAnswer::ApiDisabled) => google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!(
                "Kubernetes Engine API has not been used in project {project} before or it is disabled."
            ),
            serde_json::json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "SERVICE_DISABLED",
                "domain": "googleapis.com",
                "metadata": {"service": "container.googleapis.com"},
            }]),
        ),
        Some(ClusterAnswer::Provisioning) => axum::Json(serde_json::json!({
            "name": cluster,
            "location": location,
            "status": "PROVISIONING",
        }))
        .into_response(),
        Some(answer @ (ClusterAnswer::Running | ClusterAnswer::ForeignCa)) => {
            let ca = if answer == ClusterAnswer::Running {
                &shared.ca_pem
            } else {
                &shared.foreign_ca_pem
            };
            axum::Json(serde_json::json!({
                "name": cluster,
                "location": location,
                "status": "RUNNING",
                "endpoint": shared.kube_endpoint,
                "masterAuth": {
                    "clusterCaCertificate": base64::engine::general_purpose::STANDARD.encode(ca),
                },
            }))
            .into_response()
        }
    }
}

async fn version(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let seen = shared.check("/version", &headers);
    let valid = seen.valid;
    shared.kube_requests.lock().unwrap().push(seen);
    if !valid {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401,
            })),
        )
            .into_response();
    }
    axum::Json(serde_json::json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.1-gke.1",
        "gitCommit": "0", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64",
    }))
    .into_response()
}

async fn kube_fallback(
    State(shared): State<Arc<Shared>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let seen = shared.check(uri.path(), &headers);
    let valid = seen.valid;
    shared.kube_requests.lock().unwrap().push(seen);
    let forward = shared.forward.lock().unwrap().clone();
    let status = |code: StatusCode, reason: &str, message: &str| {
        (
            code,
            axum::Json(serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": message, "reason": reason, "code": code.as_u16(),
            })),
        )
            .into_response()
    };
    let Some(forward) = forward else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the GKE test double serves only /version",
        );
    };
    if !valid {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    let path = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let mut request = reqwest::Client::new()
        .request(method, format!("{forward}{path}"))
        .body(body);
    if let Some(content_type) = headers.get("content-type") {
        request = request.header("content-type", content_type);
    }
    match request.send().await {
        Ok(answer) => {
            let code = answer.status();
            let content_type = answer.headers().get("content-type").cloned();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = (code, bytes).into_response();
            if let Some(content_type) = content_type {
                response.headers_mut().insert("content-type", content_type);
            }
            response
        }
        Err(err) => status(
            StatusCode::BAD_GATEWAY,
            "InternalError",
            &format!("the GKE test double cannot forward: {err}"),
        ),
    }
}

/// A CA made for this run, and a server certificate for 127.0.0.1 signed
/// by it: the TLS config of the Kubernetes endpoint and the CA's PEM.
fn tls_config() -> (rustls::ServerConfig, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "hype GKE test double CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("a CA key"))
        .expect("a CA certificate");
    let server_key = KeyPair::generate().expect("a server key");
    let mut server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("server parameters");
    server_params
        .distinguished_name
        .push(DnType::CommonName, "kubernetes");
    let server = server_params
        .signed_by(&server_key, &ca)
        .expect("a server certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![server.der().clone()], key)
    .expect("the server certificate");
    (config, ca.pem())
}
