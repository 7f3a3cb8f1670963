//! The HTTP routes: the core/v1 subset `kube::Client` uses for pods,
//! persistent volume claims and secrets, and coordination.k8s.io/v1
//! leases (with merge patches and replaces, as their holders renew them),
//! merge patches of pods (a submitter writes its warm workers' states),
//! `pods/attach` and `pods/exec` as WebSocket streams (`streams.rs`),
//! answering with the JSON and Status objects the apiserver sends.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimStatus, Pod, PodStatus, Secret,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Shared;
use super::kubelet;
use super::store::{
    Expired, FieldSelector, Filter, Key, Kind, LabelSelector, Object, Versions, key_of, watch_line,
};
use super::streams;
use super::validate::{self, FieldError};

mod namespaces;

/// The routes, recording every request in the server's log.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(api_versions))
        .route("/api/v1", get(api_resources))
        .route("/apis", get(api_groups))
        .route("/api/v1/pods", get(list_all::<Pod>))
        .route(
            "/api/v1/namespaces",
            axum::routing::post(namespaces::create),
        )
        .route(
            "/api/v1/namespaces/{ns}",
            axum::routing::delete(namespaces::delete),
        )
        .route(
            "/api/v1/namespaces/{ns}/serviceaccounts/{name}",
            get(namespaces::service_account),
        )
        .route(
            "/api/v1/persistentvolumeclaims",
            get(list_all::<PersistentVolumeClaim>),
        )
        .route("/api/v1/secrets", get(list_all::<Secret>))
        .route(
            "/api/v1/namespaces/{ns}/pods",
            get(list::<Pod>)
                .post(create::<Pod>)
                .delete(delete_collection::<Pod>),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(get_one::<Pod>)
                .delete(delete::<Pod>)
                .patch(patch::<Pod>),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(logs))
        .route("/api/v1/namespaces/{ns}/events", get(list_events))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/attach",
            get(streams::attach).post(streams::spdy),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/exec",
            get(streams::exec).post(streams::spdy),
        )
        .route(
            "/api/v1/namespaces/{ns}/persistentvolumeclaims",
            get(list::<PersistentVolumeClaim>)
                .post(create::<PersistentVolumeClaim>)
                .delete(delete_collection::<PersistentVolumeClaim>),
        )
        .route(
            "/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}",
            get(get_one::<PersistentVolumeClaim>).delete(delete::<PersistentVolumeClaim>),
        )
        .route(
            "/api/v1/namespaces/{ns}/secrets",
            get(list::<Secret>)
                .post(create::<Secret>)
                .delete(delete_collection::<Secret>),
        )
        .route(
            "/api/v1/namespaces/{ns}/secrets/{name}",
            get(get_one::<Secret>).delete(delete::<Secret>),
        )
        .route(
            "/apis/coordination.k8s.io/v1/leases",
            get(list_all::<Lease>),
        )
        .route(
            "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
            get(list::<Lease>)
                .post(create::<Lease>)
                .delete(delete_collection::<Lease>),
        )
        .route(
            "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}",
            get(get_one::<Lease>)
                .delete(delete::<Lease>)
                .patch(patch::<Lease>)
                .put(replace::<Lease>),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let uri = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| request.uri().path().to_owned());
    shared
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((request.method().as_str().to_owned(), uri));
    next.run(request).await
}

/// A failure, answered as a `Status` object.
#[derive(Debug)]
pub(crate) struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
    details: Option<Value>,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// A failure with details.
    pub(crate) fn with_details(
        code: u16,
        reason: &'static str,
        message: impl Into<String>,
        details: Value,
    ) -> ApiError {
        ApiError {
            details: Some(details),
            ..ApiError::new(code, reason, message)
        }
    }

    /// 400 BadRequest.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 404 NotFound for an object.
    pub(crate) fn not_found(kind: Kind, name: &str) -> ApiError {
        ApiError {
            details: Some(json!({"name": name, "kind": kind.plural()})),
            ..ApiError::new(
                404,
                "NotFound",
                format!("{} {name:?} not found", kind.plural()),
            )
        }
    }

    fn already_exists(kind: Kind, name: &str) -> ApiError {
        ApiError {
            details: Some(json!({"name": name, "kind": kind.plural()})),
            ..ApiError::new(
                409,
                "AlreadyExists",
                format!("{} {name:?} already exists", kind.plural()),
            )
        }
    }

    /// 409 Conflict (a failed precondition).
    pub(crate) fn conflict(kind: Kind, name: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            details: Some(json!({"name": name, "kind": kind.plural()})),
            ..ApiError::new(409, "Conflict", message)
        }
    }

    /// 403 Forbidden, worded as the RBAC authorizer words it.
    fn forbidden(verb: &str, kind: Kind, namespace: Option<&str>) -> ApiError {
        let group = kind.api_version().rsplit_once('/').map_or("", |(g, _)| g);
        let scope = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        ApiError {
            details: Some(json!({"kind": kind.plural()})),
            ..ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} is forbidden: User \"system:serviceaccount:default:hype-test\" cannot {verb} resource \"{}\" in API group \"{group}\" {scope}",
                    kind.plural(),
                    kind.plural()
                ),
            )
        }
    }

    fn invalid(kind: Kind, name: &str, errors: &[FieldError]) -> ApiError {
        let (message, causes) = validate::invalid_status(kind.name(), name, errors);
        ApiError {
            details: Some(json!({"name": name, "kind": kind.plural(), "causes": causes})),
            ..ApiError::new(422, "Invalid", message)
        }
    }

    fn injected(code: u16, retry_after: u64) -> ApiError {
        let (reason, message) = match code {
            429 => (
                "TooManyRequests",
                "Too many requests, please try again later.".to_owned(),
            ),
            500 => (
                "InternalError",
                "Internal error occurred: injected by the test double".to_owned(),
            ),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request".to_owned(),
            ),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted".to_owned(),
            ),
            _ => ("InternalError", format!("injected failure {code}")),
        };
        ApiError {
            details: (code == 429).then(|| json!({"retryAfterSeconds": retry_after})),
            retry_after: (code == 429).then_some(retry_after),
            ..ApiError::new(code, reason, message)
        }
    }

    fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_response(self.code, &self.status());
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&seconds.to_string()).expect("digits"),
            );
        }
        response
    }
}

fn json_response(code: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

type Params = Query<HashMap<String, String>>;

async fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource (the Kubernetes test double serves a subset of the API)",
    )
}

async fn version() -> Response {
    json_response(
        200,
        &json!({
            "major": "1",
            "minor": "34",
            "gitVersion": "v1.34.0-hype-test-double",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
    )
}

async fn api_versions() -> Response {
    json_response(
        200,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        }),
    )
}

async fn api_groups() -> Response {
    json_response(
        200,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
            "name": "coordination.k8s.io",
            "versions": [{"groupVersion": "coordination.k8s.io/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "coordination.k8s.io/v1", "version": "v1"},
        }]}),
    )
}

async fn api_resources() -> Response {
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "watch"
    ]);
    json_response(
        200,
        &json!({
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": verbs, "shortNames": ["po"]},
                {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
                {"name": "persistentvolumeclaims", "singularName": "persistentvolumeclaim", "namespaced": true, "kind": "PersistentVolumeClaim", "verbs": verbs, "shortNames": ["pvc"]},
                {"name": "secrets", "singularName": "secret", "namespaced": true, "kind": "Secret", "verbs": verbs},
            ],
        }),
    )
}

/// Kind-specific behaviour of the generic handlers.
pub(crate) trait ApiKind: Object {
    /// Whether injected create failures apply to this kind.
    const INJECTABLE: bool;

    /// A problem the apiserver finds while decoding (400), if any.
    fn decode_problem(&self) -> Option<String> {
        None
    }

    /// Server-side defaults, before validation.
    fn admit(&mut self);

    /// Validation errors (422).
    fn validate(&self, generated: bool) -> Vec<FieldError>;

    /// What admission control refuses of the object in `namespace`
    /// (after validation, as validating admission runs after it).
    fn admission(&self, _shared: &Arc<Shared>, _namespace: &str) -> Option<ApiError> {
        None
    }

    /// After the object is stored.
    fn created(_shared: &Arc<Shared>, _obj: &Self) {}

    /// Deletes the object.
    fn delete(shared: &Arc<Shared>, key: &Key, options: &DeleteOptions) -> Result<Self, ApiError> {
        let mut state = shared.store.lock();
        let obj = state
            .get::<Self>(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(Self::STORED, &key.1))?;
        check_preconditions(Self::STORED, &obj.metadata().clone(), options)?;
        Ok(state
            .remove::<Self>(key, None, |o| {
                o.metadata_mut().deletion_timestamp = Some(super::store::now());
                o.metadata_mut().deletion_grace_period_seconds = Some(0);
            })
            .expect("present under the lock"))
    }
}

/// Refuses a delete whose preconditions do not hold (409).
pub(crate) fn check_preconditions(
    kind: Kind,
    meta: &ObjectMeta,
    options: &DeleteOptions,
) -> Result<(), ApiError> {
    let name = meta.name.clone().unwrap_or_default();
    let Some(pre) = &options.preconditions else {
        return Ok(());
    };
    if let Some(uid) = &pre.uid
        && meta.uid.as_ref() != Some(uid)
    {
        return Err(ApiError::conflict(
            kind,
            &name,
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta.uid.clone().unwrap_or_default()
            ),
        ));
    }
    if let Some(rv) = &pre.resource_version
        && meta.resource_version.as_ref() != Some(rv)
    {
        return Err(ApiError::conflict(
            kind,
            &name,
            format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta.resource_version.clone().unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

/// Fields the server owns are reset on create.
fn reset_server_fields(meta: &mut ObjectMeta) {
    meta.uid = None;
    meta.resource_version = None;
    meta.creation_timestamp = None;
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    meta.generation = None;
    meta.managed_fields = None;
}

impl ApiKind for Pod {
    const INJECTABLE: bool = true;

    fn decode_problem(&self) -> Option<String> {
        validate::bad_quantities(self)
    }

    fn admit(&mut self) {
        reset_server_fields(&mut self.metadata);
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.node_name = None;
        spec.restart_policy.get_or_insert_with(|| "Always".into());
        spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
        spec.scheduler_name
            .get_or_insert_with(|| "default-scheduler".into());
        spec.termination_grace_period_seconds.get_or_insert(30);
        spec.security_context.get_or_insert_with(Default::default);
        spec.service_account_name
            .get_or_insert_with(|| "default".into());
        spec.enable_service_links.get_or_insert(true);
        spec.priority.get_or_insert(0);
        let mut qos = (false, true); // (any resources, all guaranteed)
        for c in &mut spec.containers {
            c.termination_message_path
                .get_or_insert_with(|| "/dev/termination-log".into());
            c.termination_message_policy
                .get_or_insert_with(|| "File".into());
            let image = c.image.clone().unwrap_or_default();
            let last = image.rsplit('/').next().unwrap_or_default();
            let latest = !last.contains(':') || last.ends_with(":latest");
            c.image_pull_policy
                .get_or_insert_with(|| if latest { "Always" } else { "IfNotPresent" }.into());
            let resources = c.resources.get_or_insert_with(Default::default);
            if let Some(limits) = resources.limits.clone() {
                let requests = resources.requests.get_or_insert_with(Default::default);
                for (name, q) in limits {
                    requests.entry(name).or_insert(q);
                }
            }
            let requests = resources.requests.clone().unwrap_or_default();
            let limits = resources.limits.clone().unwrap_or_default();
            qos.0 |= !requests.is_empty() || !limits.is_empty();
            qos.1 &= ["cpu", "memory"]
                .iter()
                .all(|r| limits.contains_key(*r) && limits.get(*r) == requests.get(*r));
        }
        for v in spec.volumes.iter_mut().flatten() {
            if let Some(s) = &mut v.secret {
                s.default_mode.get_or_insert(0o644);
            }
        }
        let qos_class = match qos {
            (false, _) => "BestEffort",
            (true, true) => "Guaranteed",
            (true, false) => "Burstable",
        };
        self.status = Some(PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some(qos_class.into()),
            ..PodStatus::default()
        });
    }

    fn validate(&self, generated: bool) -> Vec<FieldError> {
        validate::pod(self, generated)
    }

    fn admission(&self, shared: &Arc<Shared>, namespace: &str) -> Option<ApiError> {
        let labels = shared.namespace_labels(namespace);
        let message = super::pod_security::refusal(&labels, self)?;
        let name = self.metadata.name.clone().unwrap_or_default();
        Some(ApiError {
            details: Some(json!({"name": name, "kind": "pods"})),
            ..ApiError::new(403, "Forbidden", message)
        })
    }

    fn created(shared: &Arc<Shared>, pod: &Pod) {
        kubelet::admit(shared, pod);
    }

    fn delete(shared: &Arc<Shared>, key: &Key, options: &DeleteOptions) -> Result<Pod, ApiError> {
        kubelet::delete_pod(shared, key, options)
    }
}

impl ApiKind for PersistentVolumeClaim {
    const INJECTABLE: bool = true;

    fn admit(&mut self) {
        reset_server_fields(&mut self.metadata);
        self.metadata.finalizers = Some(vec!["kubernetes.io/pvc-protection".into()]);
        let uid = super::store::new_uid();
        self.metadata.uid = Some(uid.clone());
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
        spec.storage_class_name
            .get_or_insert_with(|| "standard".into());
        spec.volume_name = Some(format!("pvc-{uid}"));
        let capacity = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .cloned()
            .unwrap_or_else(|| Quantity("0".into()));
        self.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            access_modes: spec.access_modes.clone(),
            capacity: Some([("storage".to_owned(), capacity)].into()),
            ..PersistentVolumeClaimStatus::default()
        });
    }

    fn validate(&self, generated: bool) -> Vec<FieldError> {
        validate::pvc(self, generated)
    }

    fn delete(
        shared: &Arc<Shared>,
        key: &Key,
        options: &DeleteOptions,
    ) -> Result<PersistentVolumeClaim, ApiError> {
        kubelet::delete_claim(shared, key, options)
    }
}

impl ApiKind for Secret {
    const INJECTABLE: bool = false;

    fn admit(&mut self) {
        reset_server_fields(&mut self.metadata);
        if let Some(strings) = self.string_data.take() {
            let data = self.data.get_or_insert_with(Default::default);
            for (k, v) in strings {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
        self.type_.get_or_insert_with(|| "Opaque".into());
    }

    fn validate(&self, generated: bool) -> Vec<FieldError> {
        validate::secret(self, generated)
    }
}

impl ApiKind for Lease {
    const INJECTABLE: bool = false;

    fn admit(&mut self) {
        reset_server_fields(&mut self.metadata);
    }

    fn validate(&self, generated: bool) -> Vec<FieldError> {
        validate::lease(self, generated)
    }
}

/// Creates an object as the API does (defaults, validation, name
/// generation, conflicts), without HTTP and without injected faults.
pub(crate) fn create_object<K: ApiKind>(
    shared: &Arc<Shared>,
    namespace: &str,
    mut obj: K,
    dry_run: bool,
) -> Result<K, ApiError> {
    let kind = K::STORED;
    match obj.metadata().namespace.as_deref() {
        Some(ns) if !ns.is_empty() && ns != namespace => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        _ => obj.metadata_mut().namespace = Some(namespace.to_owned()),
    }
    if let Some(problem) = obj.decode_problem() {
        return Err(ApiError::bad_request(problem));
    }
    let generate = obj
        .metadata()
        .name
        .as_deref()
        .unwrap_or_default()
        .is_empty()
        && !obj
            .metadata()
            .generate_name
            .as_deref()
            .unwrap_or_default()
            .is_empty();
    let base: String = obj
        .metadata()
        .generate_name
        .clone()
        .unwrap_or_default()
        .chars()
        .take(58)
        .collect();
    if generate {
        obj.metadata_mut().name = Some(format!("{base}{}", super::store::random_suffix()));
    }
    obj.admit();
    let errors = obj.validate(generate);
    if !errors.is_empty() {
        let name = obj.metadata().name.clone().unwrap_or_default();
        return Err(ApiError::invalid(kind, &name, &errors));
    }
    if let Some(refused) = obj.admission(shared, namespace) {
        return Err(refused);
    }
    if dry_run {
        return Ok(obj);
    }
    let mut state = shared.store.lock();
    let mut attempts = 0;
    let created = loop {
        match state.create(obj.clone()) {
            Ok(created) => break created,
            Err(_) if generate && attempts < 8 => {
                attempts += 1;
                obj.metadata_mut().name = Some(format!("{base}{}", super::store::random_suffix()));
            }
            Err(_) => return Err(ApiError::already_exists(kind, &key_of(&obj).1)),
        }
    };
    drop(state);
    K::created(shared, &created);
    Ok(created)
}

async fn create<K: ApiKind>(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    // A create whose answer is to be lost is stored first: it takes no
    // injected failure.
    let lose_answer = K::INJECTABLE && shared.faults.take_lost_create();
    if K::INJECTABLE
        && !lose_answer
        && let Some((code, retry_after)) = shared.faults.take_create_failure()
    {
        return ApiError::injected(code, retry_after).into_response();
    }
    if K::STORED == Kind::Pod {
        shared
            .traffic
            .pod_create_bytes
            .fetch_add(body.len() as u64, Ordering::SeqCst);
    }
    let obj: K = match serde_json::from_slice(&body) {
        Ok(obj) => obj,
        Err(err) => {
            let kind = K::STORED.name();
            return ApiError::bad_request(format!(
                "{kind} in version \"v1\" cannot be handled as a {kind}: {err}"
            ))
            .into_response();
        }
    };
    if K::INJECTABLE
        && let Some((code, reason, message)) = shared.faults.take_create_refusal()
    {
        let name = obj.metadata().name.clone().unwrap_or_default();
        return ApiError {
            details: Some(json!({"name": name, "kind": K::STORED.plural()})),
            ..ApiError::new(code, reason, message.replace("{name}", &name))
        }
        .into_response();
    }
    let dry_run = params.get("dryRun").is_some_and(|v| v == "All");
    match create_object(&shared, &ns, obj, dry_run) {
        Ok(_) if lose_answer && !dry_run => {
            // Stored, but the client never learns: its answer is lost.
            ApiError::injected(504, 0).into_response()
        }
        Ok(obj) => json_response(201, &to_json(&obj)),
        Err(err) => err.into_response(),
    }
}

/// A JSON merge patch (RFC 7386) of one object; strategic merge patches
/// are applied the same way (right for the maps and scalars hype patches).
async fn patch<K: ApiKind>(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    request: Request,
) -> Response {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !matches!(
        content_type.as_str(),
        "application/merge-patch+json" | "application/strategic-merge-patch+json"
    ) {
        return ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (the test double's subset); got {content_type:?}"),
        )
        .into_response();
    }
    let body = match axum::body::to_bytes(request.into_body(), 1 << 20).await {
        Ok(body) => body,
        Err(err) => return ApiError::bad_request(err.to_string()).into_response(),
    };
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(err) => return ApiError::bad_request(format!("invalid patch: {err}")).into_response(),
    };
    update::<K>(&shared, (ns, name), |current| {
        merge_patch(current, &patch);
        Ok(())
    })
}

/// A replace (PUT) of one object; a stale `resourceVersion` is a conflict.
async fn replace<K: ApiKind>(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let new: Value = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(err) => return ApiError::bad_request(format!("invalid object: {err}")).into_response(),
    };
    let kind = K::STORED;
    let key_name = name.clone();
    update::<K>(&shared, (ns, name), move |current| {
        let sent = new.pointer("/metadata/resourceVersion").cloned();
        if let Some(sent) = sent
            && Some(&sent) != current.pointer("/metadata/resourceVersion")
        {
            return Err(ApiError::conflict(
                kind,
                &key_name,
                format!(
                    "Operation cannot be fulfilled on {} \"{key_name}\": the object has been modified; please apply your changes to the latest version and try again",
                    kind.plural()
                ),
            ));
        }
        let meta = current.get("metadata").cloned().unwrap_or_default();
        *current = new.clone();
        current["metadata"] = meta;
        if let Some(labels) = new.pointer("/metadata/labels") {
            current["metadata"]["labels"] = labels.clone();
        }
        if let Some(annotations) = new.pointer("/metadata/annotations") {
            current["metadata"]["annotations"] = annotations.clone();
        }
        Ok(())
    })
}

/// Applies `change` to the stored object's JSON, keeping the fields the
/// server owns, and stores it as a MODIFIED event.
fn update<K: ApiKind>(
    shared: &Arc<Shared>,
    key: Key,
    change: impl FnOnce(&mut Value) -> Result<(), ApiError>,
) -> Response {
    let mut state = shared.store.lock();
    let Some(current) = state.get::<K>(&key).cloned() else {
        return ApiError::not_found(K::STORED, &key.1).into_response();
    };
    let mut json = to_json(&current);
    if let Err(err) = change(&mut json) {
        return err.into_response();
    }
    let mut changed: K = match serde_json::from_value(json) {
        Ok(changed) => changed,
        Err(err) => {
            let kind = K::STORED.name();
            return ApiError::bad_request(format!("{kind} cannot be handled as a {kind}: {err}"))
                .into_response();
        }
    };
    {
        // What the server owns stays the server's.
        let (meta, old) = (changed.metadata_mut(), current.metadata());
        meta.name.clone_from(&old.name);
        meta.namespace.clone_from(&old.namespace);
        meta.uid.clone_from(&old.uid);
        meta.creation_timestamp.clone_from(&old.creation_timestamp);
        meta.deletion_timestamp.clone_from(&old.deletion_timestamp);
    }
    let errors = changed.validate(false);
    if !errors.is_empty() {
        return ApiError::invalid(K::STORED, &key.1, &errors).into_response();
    }
    match state.modify::<K>(&key, None, |obj| *obj = changed) {
        Some(obj) => json_response(200, &to_json(&obj)),
        None => ApiError::not_found(K::STORED, &key.1).into_response(),
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn to_json<K: Object>(obj: &K) -> Value {
    serde_json::to_value(obj).expect("objects serialise")
}

async fn get_one<K: ApiKind>(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match shared.store.get::<K>(&ns, &name) {
        Some(obj) => json_response(200, &to_json(&obj)),
        None => ApiError::not_found(K::STORED, &name).into_response(),
    }
}

fn delete_options(body: &Bytes) -> Result<DeleteOptions, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DeleteOptions::default());
    }
    serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("invalid DeleteOptions: {err}")))
}

async fn delete<K: ApiKind>(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    let result = delete_options(&body).and_then(|mut options| {
        if let Some(grace) = params.get("gracePeriodSeconds") {
            options.grace_period_seconds = grace.parse().ok();
        }
        K::delete(&shared, &(ns, name), &options)
    });
    match result {
        Ok(obj) => json_response(200, &to_json(&obj)),
        Err(err) => err.into_response(),
    }
}

fn filter_from(kind: Kind, params: &HashMap<String, String>) -> Result<Filter, ApiError> {
    let labels = LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(kind, params.get("fieldSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    Ok(Filter { labels, fields })
}

async fn delete_collection<K: ApiKind>(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    if let Some(code) = shared.faults.delete_collection_refusal() {
        return match code {
            404 => not_found().await.into_response(),
            405 => method_not_allowed().await.into_response(),
            code => ApiError::injected(code, 1).into_response(),
        };
    }
    let result = (|| {
        let options = delete_options(&body)?;
        let filter = filter_from(K::STORED, &params)?;
        let (items, rv) = shared.store.list::<K>(Some(&ns), &filter);
        let mut deleted = Vec::new();
        for item in items {
            let name = item
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            match K::delete(&shared, &(ns.clone(), name), &options) {
                Ok(obj) => deleted.push(list_item(to_json(&obj))),
                Err(err) if err.code == 404 => {}
                Err(err) => return Err(err),
            }
        }
        let rv = shared.store.versions().text(rv);
        Ok(list_body(K::STORED, deleted, &rv))
    })();
    match result {
        Ok(body) => json_response(200, &body),
        Err(err) => err.into_response(),
    }
}

/// List items carry no kind or apiVersion, as on the apiserver.
fn list_item(mut item: Value) -> Value {
    if let Some(map) = item.as_object_mut() {
        map.remove("kind");
        map.remove("apiVersion");
    }
    item
}

fn list_body(kind: Kind, items: Vec<Value>, rv: &str) -> Value {
    json!({
        "kind": format!("{}List", kind.name()),
        "apiVersion": kind.api_version(),
        "metadata": {"resourceVersion": rv},
        "items": items,
    })
}

async fn list<K: ApiKind>(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    Query(params): Params,
) -> Response {
    list_or_watch::<K>(shared, Some(ns), params)
}

/// The events of a namespace (read-only, never watched), filtered by the
/// field selector `involvedObject.name=NAME` when given: what a reader of
/// one pod's events asks. Any other field selector is refused, as a
/// reminder that the double knows only this one.
async fn list_events(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    Query(params): Params,
) -> Response {
    if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return ApiError::bad_request("the double does not watch events".to_owned())
            .into_response();
    }
    let mut name = None;
    for term in params
        .get("fieldSelector")
        .map_or("", String::as_str)
        .split(',')
        .filter(|t| !t.is_empty())
    {
        match term.split_once('=') {
            Some(("involvedObject.name", value)) => name = Some(value.to_owned()),
            _ => {
                return ApiError::bad_request(format!(
                    "field label not supported by the double: {term}"
                ))
                .into_response();
            }
        }
    }
    let items: Vec<Value> = shared
        .events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|e| e.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|e| name.is_none() || e.involved_object.name == name)
        .map(|e| serde_json::to_value(e).expect("an event is JSON"))
        .collect();
    let list = json!({
        "kind": "EventList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": shared.store.versions().text(shared.store.lock().rv())},
        "items": items,
    });
    json_response(200, &list)
}

async fn list_all<K: ApiKind>(
    State(shared): State<Arc<Shared>>,
    Query(params): Params,
) -> Response {
    list_or_watch::<K>(shared, None, params)
}

fn list_or_watch<K: ApiKind>(
    shared: Arc<Shared>,
    namespace: Option<String>,
    params: HashMap<String, String>,
) -> Response {
    let filter = match filter_from(K::STORED, &params) {
        Ok(filter) => filter,
        Err(err) => return err.into_response(),
    };
    if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
        if shared.faults.watches_forbidden() {
            return ApiError::forbidden("watch", K::STORED, namespace.as_deref()).into_response();
        }
        return watch::<K>(shared, namespace, filter, &params);
    }
    let (items, rv) = shared.store.list::<K>(namespace.as_deref(), &filter);
    let items = items.into_iter().map(list_item).collect();
    let rv = shared.store.versions().text(rv);
    json_response(200, &list_body(K::STORED, items, &rv))
}

struct Watch {
    shared: Arc<Shared>,
    kind: Kind,
    namespace: Option<String>,
    filter: Filter,
    cursor: u64,
    queue: std::collections::VecDeque<String>,
    done: bool,
    deadline: Instant,
    bookmarks: bool,
    last_sent: Instant,
    changes: tokio::sync::watch::Receiver<u64>,
    drops: tokio::sync::watch::Receiver<u64>,
    silence: tokio::sync::watch::Receiver<u64>,
    silent: bool,
}

fn bookmark(kind: Kind, rv: &str, initial_events_end: bool) -> String {
    let mut meta = json!({"resourceVersion": rv});
    if initial_events_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let object = json!({"kind": kind.name(), "apiVersion": kind.api_version(), "metadata": meta});
    watch_line("BOOKMARK", &object.to_string())
}

/// The 410 Expired Status of a watch from a version the history no
/// longer has.
fn expired_status(versions: Versions, expired: &Expired) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "too old resource version: {} ({})",
            versions.text(expired.requested),
            versions.text(expired.oldest)
        ),
        "reason": "Expired",
        "code": 410,
    })
}

fn expired_line(versions: Versions, expired: &Expired) -> String {
    watch_line("ERROR", &expired_status(versions, expired).to_string())
}

fn watch<K: ApiKind>(
    shared: Arc<Shared>,
    namespace: Option<String>,
    filter: Filter,
    params: &HashMap<String, String>,
) -> Response {
    let kind = K::STORED;
    let requested = params
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let send_initial = params.get("sendInitialEvents").is_some_and(|v| v == "true");
    let bookmarks = params
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true" || v == "1");
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let versions = shared.store.versions();
    let since = match requested {
        "" | "0" => None,
        rv => match versions.parse(rv) {
            Some(rv) => Some(rv),
            None => {
                return ApiError::bad_request(format!("invalid resource version: {rv:?}"))
                    .into_response();
            }
        },
    };
    shared.watch_connections.fetch_add(1, Ordering::SeqCst);

    let mut changes = shared.store.subscribe();
    changes.borrow_and_update();
    let mut drops = shared.store.subscribe_drops();
    drops.borrow_and_update();
    let mut silence = shared.store.subscribe_silence();
    silence.borrow_and_update();
    let mut queue = std::collections::VecDeque::new();
    let mut done = shared.closing.load(Ordering::SeqCst);
    let cursor = match since {
        Some(rv) if !send_initial => rv,
        _ => {
            // "Get state and start at most recent": the current objects as
            // ADDED events, then every later change.
            let state = shared.store.lock();
            let rv = state.rv();
            let objects = K::table(&state)
                .iter()
                .filter(|((ns, _), _)| namespace.as_ref().is_none_or(|n| n == ns))
                .map(|(_, obj)| to_json(obj))
                .filter(|v| filter.matches(v))
                .collect::<Vec<_>>();
            drop(state);
            for object in objects {
                queue.push_back(watch_line("ADDED", &object.to_string()));
            }
            if send_initial && bookmarks {
                queue.push_back(bookmark(kind, &versions.text(rv), true));
            }
            rv
        }
    };
    if let Some(rv) = since
        && !send_initial
        && let Err(expired) = shared
            .store
            .events_since(kind, namespace.as_deref(), rv, &filter)
    {
        if shared.faults.expired_watches_refused() {
            // Some API servers answer the request itself, not with an
            // ERROR event on a 200 stream.
            shared.watch_connections.fetch_sub(1, Ordering::SeqCst);
            return json_response(410, &expired_status(versions, &expired));
        }
        queue.push_back(expired_line(versions, &expired));
        done = true;
    }
    let now = Instant::now();
    let watch = Watch {
        shared,
        kind,
        namespace,
        filter,
        cursor,
        queue,
        done,
        deadline: now + timeout,
        bookmarks,
        last_sent: now,
        changes,
        drops,
        silence,
        silent: false,
    };
    let stream = futures::stream::unfold(watch, |mut w| async move {
        let line = w.next_line().await?;
        Some((Ok::<_, Infallible>(Bytes::from(line)), w))
    });
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("a valid response")
}

impl Watch {
    async fn next_line(&mut self) -> Option<String> {
        loop {
            if self.silent || self.silence.has_changed().unwrap_or(false) {
                // Silent for good: only a drop (or the server's end) ends it.
                let _ = self.drops.changed().await;
                return None;
            }
            if let Some(line) = self.queue.pop_front() {
                self.last_sent = Instant::now();
                self.shared
                    .traffic
                    .watch_bytes
                    .fetch_add(line.len() as u64, Ordering::SeqCst);
                return Some(line);
            }
            if self.done {
                return None;
            }
            self.changes.borrow_and_update();
            match self.shared.store.events_since(
                self.kind,
                self.namespace.as_deref(),
                self.cursor,
                &self.filter,
            ) {
                Err(expired) => {
                    let versions = self.shared.store.versions();
                    self.queue.push_back(expired_line(versions, &expired));
                    self.done = true;
                    continue;
                }
                Ok((lines, cursor)) => {
                    self.cursor = cursor;
                    if !lines.is_empty() {
                        self.queue.extend(lines);
                        continue;
                    }
                }
            }
            let bookmark_at = self.last_sent + self.shared.bookmark_interval;
            tokio::select! {
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.drops.changed() => return None,
                _ = self.silence.changed() => self.silent = true,
                _ = tokio::time::sleep_until(self.deadline) => return None,
                _ = tokio::time::sleep_until(bookmark_at), if self.bookmarks => {
                    let rv = self.shared.store.versions().text(self.cursor);
                    self.queue.push_back(bookmark(self.kind, &rv, false));
                }
            }
        }
    }
}

/// An injected `pods/log` failure, worded as a real API server words it.
fn log_failure(code: u16, namespace: &str, name: &str) -> ApiError {
    let kubelet = format!(
        "Get \"https://10.128.0.7:10250/containerLogs/{namespace}/{name}/hype-run\": dial tcp 10.128.0.7:10250: i/o timeout"
    );
    match code {
        403 => ApiError {
            details: Some(json!({"name": name, "kind": "pods"})),
            ..ApiError::new(
                403,
                "Forbidden",
                format!(
                    "pods \"{name}\" is forbidden: User \"system:serviceaccount:default:hype-test\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"{namespace}\""
                ),
            )
        },
        500 => ApiError::new(500, "InternalError", kubelet),
        502 => ApiError::new(
            502,
            "InternalError",
            format!("error trying to reach service: {kubelet}"),
        ),
        code => ApiError::injected(code, 1),
    }
}

/// A `follow=true` log: the file's bytes as they are written, until the
/// container has terminated and the file is read to its end (or the pod
/// is gone). A [`Faults::break_next_log_stream`](super::Faults::break_next_log_stream)
/// fault ends the stream after its first chunk, as a broken connection
/// would.
fn follow_log(
    shared: Arc<Shared>,
    key: Key,
    container: String,
    path: std::path::PathBuf,
) -> Response {
    let broken = shared.faults.take_log_break();
    let state = (shared, key, container, path, 0u64, false);
    let stream = futures::stream::unfold(state, move |state| async move {
        let (shared, key, container, path, offset, sent) = state;
        if broken && sent {
            // An error item aborts the response mid-body: the client sees a
            // broken connection, not the log's end.
            let broke = Err(std::io::Error::other(
                "the log stream broke (injected fault)",
            ));
            return Some((broke, (shared, key, container, path, offset, false)));
        }
        loop {
            // Whether it was over before this read: then the read gets all.
            let finished = kubelet::log_finished(&shared, &key, &container);
            let bytes = read_from(&path, offset);
            if !bytes.is_empty() {
                let next = offset + bytes.len() as u64;
                let chunk = Ok::<_, std::io::Error>(Bytes::from(bytes));
                return Some((chunk, (shared, key, container, path, next, true)));
            }
            if finished {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Up to 64 KiB of `path` from `offset` (nothing if it cannot be read).
fn read_from(path: &std::path::Path, offset: u64) -> Vec<u8> {
    use std::io::{Read as _, Seek as _};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut bytes = Vec::new();
    if file.seek(std::io::SeekFrom::Start(offset)).is_ok() {
        let _ = file.take(64 * 1024).read_to_end(&mut bytes);
    }
    bytes
}

#[derive(Debug, Default)]
pub(crate) struct LogQuery {
    pub(crate) container: Option<String>,
    pub(crate) tail_lines: Option<usize>,
    pub(crate) limit_bytes: Option<usize>,
}

async fn logs(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    let query = LogQuery {
        container: params.get("container").cloned(),
        tail_lines: params.get("tailLines").and_then(|v| v.parse().ok()),
        limit_bytes: params.get("limitBytes").and_then(|v| v.parse().ok()),
    };
    if let Some(code) = shared.faults.log_failure() {
        return log_failure(code, &ns, &name).into_response();
    }
    let key = (ns, name);
    if params.get("follow").map(String::as_str) == Some("true") {
        return match kubelet::log_file(&shared, &key, &query) {
            Ok((path, container)) => follow_log(shared, key, container, path),
            Err(err) => err.into_response(),
        };
    }
    match kubelet::logs(&shared, &key, &query) {
        Ok(text) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response(),
        Err(err) => err.into_response(),
    }
}
