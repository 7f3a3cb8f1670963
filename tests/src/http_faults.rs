//! An HTTP proxy on `127.0.0.1` in front of a test server that answers
//! chosen requests itself with an error status (503 Service Unavailable,
//! say) instead of passing them on, as an overloaded or failing service
//! does. Everything else is forwarded to the server as it is, and its
//! answer sent back as it is (bodies buffered: test payloads).
//!
//! Where [`FaultProxy`](crate::fault_proxy::FaultProxy) cuts connections,
//! this one answers: the client sees a real HTTP status.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use tokio::task::JoinHandle;

/// The next requests to answer with an error: method, a piece of the path
/// and query, the status, and how many are left.
#[derive(Debug, Default)]
struct Plan {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    method: String,
    contains: String,
    status: u16,
    left: usize,
}

#[derive(Debug)]
struct Shared {
    target: String,
    client: reqwest::Client,
    plan: Mutex<Plan>,
    injected: AtomicUsize,
    forwarded: AtomicUsize,
}

/// The proxy; dropping it stops it.
#[derive(Debug)]
pub struct HttpFaults {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for HttpFaults {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpFaults {
    /// Proxies to `target` (`http://127.0.0.1:PORT`), on the current tokio
    /// runtime. Panics outside a runtime or if it cannot bind: test code.
    pub async fn start(target: &str) -> HttpFaults {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy to 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let shared = Arc::new(Shared {
            target: target.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
            plan: Mutex::default(),
            injected: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpFaults { url, shared, task }
    }

    /// The proxy's URL, to give clients instead of the server's.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers the next `n` requests with `method` whose path and query
    /// contain `contains` with `status` (and a JSON error body, as Google
    /// APIs send).
    pub fn fail_next(&self, n: usize, method: &str, contains: &str, status: u16) {
        self.lock().rules.push(Rule {
            method: method.to_owned(),
            contains: contains.to_owned(),
            status,
            left: n,
        });
    }

    /// How many requests were answered with an injected error.
    pub fn injected(&self) -> usize {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// How many requests were passed on to the server.
    pub fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.shared
            .plan
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let injected = {
        let mut plan = shared
            .plan
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        plan.rules
            .iter_mut()
            .find(|r| r.left > 0 && r.method == method && path.contains(&r.contains))
            .map(|rule| {
                rule.left -= 1;
                rule.status
            })
    };
    if let Some(status) = injected {
        shared.injected.fetch_add(1, Ordering::SeqCst);
        let body = format!(
            r#"{{"error":{{"code":{status},"message":"injected by the test's HTTP fault proxy","errors":[]}}}}"#
        );
        return Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap_or_default();
    }
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return status_only(StatusCode::BAD_REQUEST);
    };
    let mut headers = parts.headers.clone();
    headers.remove("host");
    let answer = shared
        .client
        .request(parts.method, format!("{}{path}", shared.target))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(answer) = answer else {
        return status_only(StatusCode::BAD_GATEWAY);
    };
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        // The body is sent whole: its length is recomputed.
        if name.as_str() != "transfer-encoding" && name.as_str() != "content-length" {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    response.body(Body::from(bytes)).unwrap_or_default()
}

fn status_only(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap_or_default()
}
