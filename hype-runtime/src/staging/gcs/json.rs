//! The few Cloud Storage JSON API calls the `google-cloud-storage` client
//! does not make over HTTP: object metadata (is a blob already staged?),
//! object deletion, listing (`list`), and bucket metadata (is the bucket missing?). The
//! client's own metadata and delete calls are gRPC (`StorageControl`),
//! which neither the emulator nor every network path serves.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::error::Error;
use crate::google::credentials::GoogleCredentials;
use crate::google::rest::{self, SendFailure, Sending, api_message, encode};

/// An object's size and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ObjectInfo {
    pub(crate) size: u64,
    pub(crate) generation: i64,
}

/// Whether a bucket exists, as far as the credentials can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BucketState {
    Exists,
    Missing,
    Unknown,
}

/// JSON API calls with bounded retries of transient failures.
#[derive(Debug, Clone)]
pub(crate) struct Rest {
    pub(crate) http: reqwest::Client,
    pub(crate) endpoint: String,
    pub(crate) credentials: GoogleCredentials,
    pub(crate) attempts: u32,
    pub(crate) request_timeout: Duration,
    pub(crate) purpose: String,
}

impl Rest {
    /// Metadata of `bucket/name`, or `None` if there is no such object.
    pub(crate) async fn object_info(
        &self,
        bucket: &str,
        name: &str,
        uri: &str,
    ) -> Result<Option<ObjectInfo>, Error> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}?fields=size,generation",
            self.endpoint,
            encode(bucket),
            encode(name)
        );
        let (status, body) = self.send(Method::GET, &url, "read", uri).await?;
        match status {
            StatusCode::OK => {
                let json: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|err| Error::Staging {
                        operation: "read",
                        uri: uri.to_owned(),
                        message: format!("unreadable object metadata: {err}"),
                        source: None,
                    })?;
                // The JSON API writes 64-bit integers as strings.
                let number = |key: &str| {
                    json.get(key).and_then(|v| {
                        v.as_str()
                            .and_then(|s| s.parse().ok())
                            .or_else(|| v.as_i64())
                    })
                };
                Ok(Some(ObjectInfo {
                    size: number("size").unwrap_or(-1).max(0) as u64,
                    generation: number("generation").unwrap_or(0),
                }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            other => Err(self.status_error("read", uri, other, &body)),
        }
    }

    /// Deletes `bucket/name`; an object that is not there is not an error.
    pub(crate) async fn delete_object(
        &self,
        bucket: &str,
        name: &str,
        uri: &str,
    ) -> Result<(), Error> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}",
            self.endpoint,
            encode(bucket),
            encode(name)
        );
        let (status, body) = self.send(Method::DELETE, &url, "delete", uri).await?;
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Ok(()),
            other => Err(self.status_error("delete", uri, other, &body)),
        }
    }

    /// Whether `bucket` exists. Credentials that may use objects but not
    /// read bucket metadata give [`BucketState::Unknown`].
    pub(crate) async fn bucket_state(&self, bucket: &str) -> BucketState {
        let url = format!(
            "{}/storage/v1/b/{}?fields=name",
            self.endpoint,
            encode(bucket)
        );
        match self
            .send(Method::GET, &url, "read", &format!("gs://{bucket}"))
            .await
        {
            Ok((StatusCode::OK, _)) => BucketState::Exists,
            Ok((StatusCode::NOT_FOUND, _)) => BucketState::Missing,
            _ => BucketState::Unknown,
        }
    }

    /// Sends a body-less request with bounded retries ([`rest::send`]).
    pub(super) async fn send(
        &self,
        method: Method,
        url: &str,
        operation: &'static str,
        uri: &str,
    ) -> Result<(StatusCode, bytes::Bytes), Error> {
        let sending = Sending {
            timeout: self.request_timeout,
            attempts: self.attempts,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let headers = || {
            self.credentials
                .headers(&self.purpose, |message| Error::Staging {
                    operation,
                    uri: uri.to_owned(),
                    message,
                    source: None,
                })
        };
        rest::send(&self.http, method, url, sending, headers)
            .await
            .map_err(|failure| match failure {
                SendFailure::Headers(err) => err,
                SendFailure::Unanswered { what, attempts } => Error::StagingUnavailable {
                    operation,
                    uri: uri.to_owned(),
                    message: format!(
                        "{what} (after {attempts} attempt(s) at {}); check that the storage endpoint is reachable",
                        self.endpoint
                    ),
                    source: None,
                },
            })
    }

    pub(super) fn status_error(
        &self,
        operation: &'static str,
        uri: &str,
        status: StatusCode,
        body: &[u8],
    ) -> Error {
        let detail = api_message(body);
        let message = match status {
            StatusCode::UNAUTHORIZED => format!(
                "the storage service rejected {} (401 Unauthorized: {detail})",
                self.credentials.source
            ),
            StatusCode::FORBIDDEN => format!(
                "permission denied for {} (403: {detail}); {}",
                self.credentials.source,
                super::errors::forbidden_hint(
                    &super::location::parse_object_uri(uri)
                        .map(|(bucket, _)| bucket)
                        .unwrap_or_else(|_| uri.trim_start_matches("gs://").to_owned())
                )
            ),
            _ => format!("HTTP {status}: {detail}"),
        };
        if crate::retry::is_transient_status(status.as_u16()) {
            return Error::StagingUnavailable {
                operation,
                uri: uri.to_owned(),
                message,
                source: None,
            };
        }
        Error::Staging {
            operation,
            uri: uri.to_owned(),
            message,
            source: None,
        }
    }
}
