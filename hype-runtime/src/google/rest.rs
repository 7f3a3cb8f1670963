//! What the Google REST APIs hype calls directly (the Cloud Storage JSON
//! API, the GKE API) share: sending a request with bounded retries of
//! transient failures ([`send`], on the crate's one retry policy), reading
//! a Google error body, describing a failed request with its causes, and
//! encoding a path segment.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::HeaderMap;
use reqwest::{Method, StatusCode};

use crate::error::Error;
use crate::retry::{self, Retryable as _};

/// How one REST request should be sent and retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sending {
    /// The bound of one attempt.
    pub(crate) timeout: Duration,
    /// How many attempts in all (at least 1).
    pub(crate) attempts: u32,
    /// The first wait between attempts.
    pub(crate) min_delay: Duration,
    /// The longest wait between attempts.
    pub(crate) max_delay: Duration,
}

/// Why [`send`] gave no answer.
#[derive(Debug)]
pub(crate) enum SendFailure {
    /// The credentials gave no headers (not retried).
    Headers(Error),
    /// Every attempt failed to get an answer: what the last one met, and
    /// how many attempts were made.
    Unanswered { what: String, attempts: u32 },
}

enum Attempt {
    Headers(Error),
    Transient(StatusCode, bytes::Bytes),
    Unanswered(String),
}

/// Sends a body-less request with fresh credential headers, retrying
/// connection failures, timeouts, 408, 429 and 5xx with the crate's backoff
/// until `sending.attempts` run out. The last answer is returned whatever
/// its status, for the caller to read.
pub(crate) async fn send<H, F>(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    sending: Sending,
    headers: H,
) -> Result<(StatusCode, bytes::Bytes), SendFailure>
where
    H: Fn() -> F,
    F: Future<Output = Result<HeaderMap, Error>>,
{
    let made = AtomicU32::new(0);
    let attempt = || async {
        made.fetch_add(1, Ordering::Relaxed);
        let headers = headers().await.map_err(Attempt::Headers)?;
        let sent = http
            .request(method.clone(), url)
            .headers(headers)
            .timeout(sending.timeout)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                let transient = status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error();
                match response.bytes().await {
                    Ok(body) if transient => Err(Attempt::Transient(status, body)),
                    Ok(body) => Ok((status, body)),
                    Err(err) => Err(Attempt::Unanswered(format!(
                        "reading the response failed: {}",
                        describe_send_error(&err)
                    ))),
                }
            }
            Err(err) => Err(Attempt::Unanswered(describe_send_error(&err))),
        }
    };
    let policy = retry::backoff(
        sending.min_delay,
        sending.max_delay,
        Some(sending.attempts.max(1)),
    );
    let answer = attempt
        .retry(policy)
        .sleep(tokio::time::sleep)
        .when(|attempt| !matches!(attempt, Attempt::Headers(_)))
        .notify(|attempt, delay| {
            let what = match attempt {
                Attempt::Transient(status, _) => format!("HTTP {status}"),
                Attempt::Unanswered(what) => what.clone(),
                Attempt::Headers(_) => String::new(),
            };
            tracing::debug!(%url, %what, ?delay, "retrying a Google API request");
        })
        .await;
    match answer {
        Ok(answer) => Ok(answer),
        Err(Attempt::Transient(status, body)) => Ok((status, body)),
        Err(Attempt::Headers(err)) => Err(SendFailure::Headers(err)),
        Err(Attempt::Unanswered(what)) => Err(SendFailure::Unanswered {
            what,
            attempts: made.load(Ordering::Relaxed),
        }),
    }
}

/// The `error.message` of a Google API error body, else the body itself
/// (shortened).
pub(crate) fn api_message(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(message) = json
            .pointer("/error/message")
            .and_then(|m| m.as_str())
            .filter(|m| !m.is_empty())
    {
        return message.to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "no details".to_owned();
    }
    let mut end = text.len().min(300);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].replace(['\n', '\r'], " ")
}

/// A reqwest error with its causes ("error sending request" alone says
/// nothing).
pub(crate) fn describe_send_error(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "no answer in time".to_owned()
    } else if err.is_connect() {
        "cannot connect".to_owned()
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Every byte but the unreserved ones (RFC 3986: letters, digits, `-`,
/// `.`, `_`, `~`) is percent-encoded in a path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one URL path segment, so `/` in an object name becomes
/// `%2F` as the JSON API wants.
pub(crate) fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_object_names_as_one_segment() {
        assert_eq!(encode("hype/blobs/sha256/ab"), "hype%2Fblobs%2Fsha256%2Fab");
        assert_eq!(encode("a b~c"), "a%20b~c");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn api_messages_come_from_the_error_body() {
        let body = br#"{"error": {"code": 404, "message": "No such object: b/o"}}"#;
        assert_eq!(api_message(body), "No such object: b/o");
        assert_eq!(api_message(b"  plain\ntext "), "plain text");
        assert_eq!(api_message(b""), "no details");
    }
}
