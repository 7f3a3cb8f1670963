//! What a failed Cloud Storage call means, in hype's words: a missing
//! object or bucket, credentials and permissions said plainly, and
//! [`Error::StagingUnavailable`] for failures that pass.

use super::GcsStaging;
use super::json::BucketState;
use crate::error::Error;
use crate::google::credentials::arc_source;
use crate::google::rest::api_message;

/// The role a submitter needs on the staging bucket: create, get, list and
/// delete objects (the README's table "Who needs what in Google Cloud").
pub(crate) const SUBMITTER_BUCKET_ROLE: &str = "roles/storage.objectUser";

/// The roles the pods need on the staging bucket: read blobs
/// (`objectViewer`), write outcomes (`objectCreator`).
pub(crate) const POD_BUCKET_ROLES: [&str; 2] =
    ["roles/storage.objectViewer", "roles/storage.objectCreator"];

/// What a 403 from the bucket asks for. The same store serves both sides,
/// so the hint names each side's roles, as the README's table does.
pub(crate) fn forbidden_hint(bucket: &str) -> String {
    format!(
        "grant these credentials what their side needs on gs://{bucket}: a submitter {SUBMITTER_BUCKET_ROLE} (create, get, list and delete objects); the pods {} and {} (read blobs, write outcomes); see \"Who needs what in Google Cloud\" in hype's README",
        POD_BUCKET_ROLES[0], POD_BUCKET_ROLES[1]
    )
}

impl GcsStaging {
    /// The error for a failed client call: missing objects and buckets,
    /// credentials and permissions said plainly.
    pub(super) async fn client_error(
        &self,
        operation: &'static str,
        uri: &str,
        bucket: &str,
        err: google_cloud_storage::Error,
    ) -> Error {
        let Ok(clients) = self.clients().await else {
            return staging_error(operation, uri, err);
        };
        if err.is_authentication() {
            return clients
                .rest
                .credentials
                .failure(&self.purpose(), &err, |message| Error::Staging {
                    operation,
                    uri: uri.to_owned(),
                    message,
                    source: None,
                });
        }
        match err.http_status_code() {
            Some(404) => {
                if clients.rest.bucket_state(bucket).await == BucketState::Missing {
                    return missing_bucket(operation, uri, bucket);
                }
                if operation == "read" {
                    return Error::StagedObjectMissing {
                        uri: uri.to_owned(),
                    };
                }
                staging_error(operation, uri, err)
            }
            Some(403) => Error::Staging {
                operation,
                uri: uri.to_owned(),
                message: format!(
                    "permission denied for {} (403: {}); {}",
                    clients.rest.credentials.source,
                    err.http_payload()
                        .map(|body| api_message(body))
                        .unwrap_or_else(|| err.to_string()),
                    forbidden_hint(bucket)
                ),
                source: arc_source(err),
            },
            _ => staging_error(operation, uri, err),
        }
    }
}

/// A Cloud Storage client failure in hype's words, with the client's error
/// as its source: [`Error::StagingUnavailable`] when it passes (no
/// connection, no answer in time, 408, 429, 5xx), else [`Error::Staging`].
fn staging_error(operation: &'static str, uri: &str, err: google_cloud_storage::Error) -> Error {
    let status = err.http_status_code();
    let (message, transient) = if err.is_connect() {
        ("cannot connect to the storage service".to_owned(), true)
    } else if err.is_timeout() {
        (
            "the storage service did not answer in time".to_owned(),
            true,
        )
    } else if let Some(code) = status {
        (
            format!(
                "HTTP {code}: {}",
                err.http_payload()
                    .map(|body| api_message(body))
                    .unwrap_or_else(|| "no details".to_owned())
            ),
            crate::retry::is_transient_status(code),
        )
    } else if err.is_io() || err.is_transport() {
        (
            "the connection to the storage service failed".to_owned(),
            true,
        )
    } else {
        ("the storage client failed".to_owned(), false)
    };
    let source = arc_source(err);
    if transient {
        Error::StagingUnavailable {
            operation,
            uri: uri.to_owned(),
            message,
            source,
        }
    } else {
        Error::Staging {
            operation,
            uri: uri.to_owned(),
            message,
            source,
        }
    }
}

fn missing_bucket(operation: &'static str, uri: &str, bucket: &str) -> Error {
    Error::Staging {
        operation,
        uri: uri.to_owned(),
        message: format!(
            "bucket {bucket} does not exist: create it (`gcloud storage buckets create gs://{bucket}`) or point the staging location (HYPE_STAGING) at an existing bucket"
        ),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 403 hint, the README and docker/README.md name the same roles,
    /// and no other storage role.
    #[test]
    fn the_forbidden_hint_and_the_docs_name_the_same_roles() {
        let hint = forbidden_hint("b");
        let readme = include_str!("../../../../README.md");
        let table = readme
            .split("### Who needs what in Google Cloud")
            .nth(1)
            .expect("the README's section Who needs what in Google Cloud");
        for role in [
            SUBMITTER_BUCKET_ROLE,
            POD_BUCKET_ROLES[0],
            POD_BUCKET_ROLES[1],
        ] {
            assert!(hint.contains(role), "{hint}");
            assert!(table.contains(role), "the README's IAM table lacks {role}");
        }
        let docker = include_str!("../../../../docker/README.md");
        for (name, text) in [
            ("README.md", readme),
            ("docker/README.md", docker),
            ("hint", &hint),
        ] {
            for (at, _) in text.match_indices("roles/storage.") {
                let role: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '/' || *c == '.')
                    .collect();
                let role = role.trim_end_matches('.');
                assert!(
                    role == SUBMITTER_BUCKET_ROLE || POD_BUCKET_ROLES.contains(&role),
                    "{name} names {role}, which is not in the IAM table"
                );
            }
        }
    }
}
