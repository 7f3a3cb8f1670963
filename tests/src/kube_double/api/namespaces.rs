//! Namespaces as far as a test run needs them: `POST /api/v1/namespaces`
//! answers the namespace created (Active) and keeps its labels (what Pod
//! Security admission reads, see `pod_security`), and `DELETE
//! /api/v1/namespaces/{name}` deletes every pod (at once, grace period 0),
//! claim, secret and Lease in it and answers it Terminating, as the
//! namespace controller would end it. Every namespace has the service
//! account `default` (`GET …/serviceaccounts/default`). The double stores
//! no namespaces:
//! every namespace still exists for every other route, and creating one
//! twice is not refused.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse as _, Response};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use serde_json::{Value, json};

use super::super::Shared;
use super::super::store::{Filter, now};
use super::{ApiError, ApiKind, json_response};

/// `POST /api/v1/namespaces`.
pub(super) async fn create(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let namespace: Namespace = match serde_json::from_slice(&body) {
        Ok(namespace) => namespace,
        Err(err) => {
            return ApiError::bad_request(format!("invalid Namespace: {err}")).into_response();
        }
    };
    let Some(name) = namespace.metadata.name.clone().filter(|n| !n.is_empty()) else {
        return ApiError::new(
            422,
            "Invalid",
            "Namespace \"\" is invalid: metadata.name: Required value: name or generateName is required",
        )
        .into_response();
    };
    for (key, value) in namespace.metadata.labels.clone().unwrap_or_default() {
        shared.label_namespace(&name, &key, &value);
    }
    json_response(201, &answer(namespace, &name, "Active"))
}

/// `DELETE /api/v1/namespaces/{name}`.
pub(super) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Response {
    let at_once = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    let result = empty::<Pod>(&shared, &name, &at_once)
        .and_then(|()| empty::<PersistentVolumeClaim>(&shared, &name, &at_once))
        .and_then(|()| empty::<Secret>(&shared, &name, &at_once))
        .and_then(|()| empty::<Lease>(&shared, &name, &at_once));
    match result {
        Ok(()) => json_response(200, &answer(Namespace::default(), &name, "Terminating")),
        Err(err) => err.into_response(),
    }
}

/// Deletes every object of kind `K` in `namespace`.
fn empty<K: ApiKind>(
    shared: &Arc<Shared>,
    namespace: &str,
    options: &DeleteOptions,
) -> Result<(), ApiError> {
    let (items, _) = shared.store.list::<K>(Some(namespace), &Filter::default());
    for item in items {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match K::delete(shared, &(namespace.to_owned(), name), options) {
            Ok(_) => {}
            Err(err) if err.code == 404 => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// The namespace as the apiserver answers it, in `phase`.
fn answer(mut namespace: Namespace, name: &str, phase: &str) -> Value {
    namespace.metadata.name = Some(name.to_owned());
    namespace.metadata.creation_timestamp = Some(now());
    let mut value = serde_json::to_value(&namespace).unwrap_or_else(|_| json!({}));
    value["kind"] = json!("Namespace");
    value["apiVersion"] = json!("v1");
    value["status"] = json!({"phase": phase});
    value
}

/// `GET /api/v1/namespaces/{ns}/serviceaccounts/{name}`: `default`, which
/// the service account controller makes in every namespace; no other.
pub(super) async fn service_account(Path((ns, name)): Path<(String, String)>) -> Response {
    if name != "default" {
        return ApiError::new(
            404,
            "NotFound",
            format!("serviceaccounts \"{name}\" not found"),
        )
        .into_response();
    }
    json_response(
        200,
        &json!({
            "kind": "ServiceAccount",
            "apiVersion": "v1",
            "metadata": {"name": "default", "namespace": ns, "creationTimestamp": now()},
        }),
    )
}
