//! Listing the objects under a name prefix (the JSON API's `objects.list`,
//! page by page), for `hype gc --staging gs://…`. Deleting one is
//! [`Rest::delete_object`].

use std::time::SystemTime;

use jiff::Timestamp;
use reqwest::{Method, StatusCode};

use super::GcsStaging;
use super::json::Rest;
use crate::error::Error;
use crate::google::rest::encode;

/// At most this many pages (of up to 1000 objects each) are read: a bound
/// on one listing, not a limit any staging store is near.
const MAX_PAGES: usize = 10_000;

/// One object a listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedObject {
    /// Its URI, `gs://bucket/name`.
    pub(crate) uri: String,
    /// Its size in bytes.
    pub(crate) len: u64,
    /// When it was last written.
    pub(crate) updated: SystemTime,
}

impl GcsStaging {
    /// The objects whose names start with `rest` under this store's prefix
    /// (`blobs/sha256/`, `outcomes/`), every page of them.
    pub(crate) async fn list_objects(&self, rest: &str) -> Result<Vec<ListedObject>, Error> {
        let prefix = self.object_name(rest);
        let uri = format!("gs://{}/{prefix}", self.inner.bucket);
        self.bounded("list", &uri, 0, async {
            self.clients()
                .await?
                .rest
                .list(&self.inner.bucket, &prefix, &uri)
                .await
        })
        .await
    }
}

impl Rest {
    /// Every object of `bucket` whose name starts with `prefix`.
    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        uri: &str,
    ) -> Result<Vec<ListedObject>, Error> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = format!(
                "{}/storage/v1/b/{}/o?prefix={}&fields=items(name,size,updated),nextPageToken",
                self.endpoint,
                encode(bucket),
                encode(prefix)
            );
            if let Some(token) = &token {
                url.push_str(&format!("&pageToken={}", encode(token)));
            }
            let (status, body) = self.send(Method::GET, &url, "list", uri).await?;
            if status != StatusCode::OK {
                return Err(self.status_error("list", uri, status, &body));
            }
            let (page, next) = parse_page(bucket, &body).map_err(|message| Error::Staging {
                operation: "list",
                uri: uri.to_owned(),
                message,
                source: None,
            })?;
            found.extend(page);
            match next {
                Some(next) => token = Some(next),
                None => return Ok(found),
            }
        }
        Err(Error::Staging {
            operation: "list",
            uri: uri.to_owned(),
            message: format!("more than {MAX_PAGES} pages of objects; list a narrower prefix"),
            source: None,
        })
    }
}

/// One page of `objects.list`: its objects and the next page's token.
fn parse_page(bucket: &str, body: &[u8]) -> Result<(Vec<ListedObject>, Option<String>), String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|err| format!("unreadable object listing: {err}"))?;
    let mut objects = Vec::new();
    for item in json
        .get("items")
        .and_then(|items| items.as_array())
        .into_iter()
        .flatten()
    {
        let Some(name) = item.get("name").and_then(|n| n.as_str()) else {
            continue;
        };
        // The JSON API writes 64-bit integers as strings.
        let len = item
            .get("size")
            .and_then(|v| {
                v.as_str()
                    .and_then(|s| s.parse().ok())
                    .or_else(|| v.as_u64())
            })
            .unwrap_or(0);
        let updated = item
            .get("updated")
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("object {name} has no update time in the listing"))?;
        let updated: Timestamp = updated.parse().map_err(|err| {
            format!("object {name} has an unreadable update time {updated:?}: {err}")
        })?;
        objects.push(ListedObject {
            uri: format!("gs://{bucket}/{name}"),
            len,
            updated: SystemTime::from(updated),
        });
    }
    let next = json
        .get("nextPageToken")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    Ok((objects, next))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn pages_give_objects_and_the_next_token() {
        let body = br#"{"items": [
            {"name": "p/blobs/sha256/ab", "size": "12", "updated": "2026-01-02T03:04:05.500Z"},
            {"name": "p/outcomes/x", "size": 3, "updated": "1970-01-01T00:00:10Z"}
        ], "nextPageToken": "t1"}"#;
        let (objects, next) = parse_page("b", body).unwrap();
        assert_eq!(next.as_deref(), Some("t1"));
        assert_eq!(objects[0].uri, "gs://b/p/blobs/sha256/ab");
        assert_eq!(objects[0].len, 12);
        assert_eq!(objects[1].len, 3);
        assert_eq!(objects[1].updated, UNIX_EPOCH + Duration::from_secs(10));
        let (objects, next) = parse_page("b", b"{}").unwrap();
        assert!(objects.is_empty() && next.is_none());
        let err = parse_page("b", br#"{"items": [{"name": "x", "updated": "soon"}]}"#).unwrap_err();
        assert!(err.contains("object x") && err.contains("soon"), "{err}");
    }
}
