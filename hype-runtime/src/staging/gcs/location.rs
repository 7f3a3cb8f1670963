//! `gs://bucket/prefix` locations and `gs://bucket/name` object URIs:
//! parsed, normalised, and checked against the bucket naming rules.

use crate::error::Error;

/// Splits `gs://bucket/prefix` into bucket and prefix (no slashes at
/// either end), checking the bucket name.
pub(super) fn parse_location(location: &str) -> Result<(String, String), Error> {
    let bad = |why: String| Error::Config {
        message: format!(
            "staging location {location:?} {why}; expected gs://bucket or gs://bucket/prefix"
        ),
    };
    let rest = location
        .strip_prefix("gs://")
        .ok_or_else(|| bad("is not a gs:// URI".to_owned()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    check_bucket_name(bucket).map_err(bad)?;
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|part| part == "." || part == "..") || prefix.contains("//") {
        return Err(bad(format!("has an unusable prefix {prefix:?}")));
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

/// Cloud Storage's bucket naming rules, enough to catch typos early.
pub(super) fn check_bucket_name(bucket: &str) -> Result<(), String> {
    let valid_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let max = if bucket.contains('.') { 222 } else { 63 };
    if bucket.len() < 3
        || bucket.len() > max
        || !valid_chars
        || !ends_ok(bucket.bytes().next())
        || !ends_ok(bucket.bytes().last())
    {
        return Err(format!(
            "names bucket {bucket:?}, which is not a valid bucket name (3 to 63 characters of a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

/// Splits `gs://bucket/name` into bucket and object name.
pub(super) fn parse_object_uri(uri: &str) -> Result<(String, String), Error> {
    let parsed = uri
        .strip_prefix("gs://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(bucket, name)| !bucket.is_empty() && !name.is_empty());
    match parsed {
        Some((bucket, name)) => Ok((bucket.to_owned(), name.to_owned())),
        None => Err(Error::Config {
            message: format!("{uri:?} is not a gs://bucket/object URI"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_uris_split_into_bucket_and_name() {
        assert_eq!(
            parse_object_uri("gs://b/p/outcomes/x").unwrap(),
            ("b".to_owned(), "p/outcomes/x".to_owned())
        );
        assert!(parse_object_uri("gs://b").is_err());
        assert!(parse_object_uri("gs://b/").is_err());
        assert!(parse_object_uri("file:///x").is_err());
    }
}
