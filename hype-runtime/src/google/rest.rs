//! What the Google REST APIs hype calls directly (the Cloud Storage JSON
//! API, the GKE API) share: reading a Google error body, describing a
//! failed request with its causes, and encoding a path segment.

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
