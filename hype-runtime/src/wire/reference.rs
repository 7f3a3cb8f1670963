//! An envelope as text, [`Reference`]: `inline:<base64>` or the URI of a
//! staged object. This is the `hype-run` argument and the termination
//! message.

use std::fmt;

use base64::Engine as _;

use crate::error::Error;

/// An envelope as text: the `hype-run` argument, the termination message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `inline:<base64>`: the envelope's bytes, standard base64 with padding.
    Inline(Vec<u8>),
    /// A URI of a staged object holding the envelope (`file:///…`, `gs://…`).
    Object(String),
}

impl Reference {
    /// The prefix of inline references.
    pub const INLINE_PREFIX: &'static str = "inline:";

    /// Parses `inline:<base64>` or a URI with a scheme.
    pub fn parse(text: &str) -> Result<Reference, Error> {
        let text = text.trim_end_matches(['\n', '\r']);
        if let Some(encoded) = text.strip_prefix(Self::INLINE_PREFIX) {
            return base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map(Reference::Inline)
                .map_err(|err| Error::malformed("inline reference", format!("bad base64: {err}")));
        }
        match text.split_once("://") {
            Some((scheme, rest))
                if !scheme.is_empty()
                    && !rest.is_empty()
                    && scheme.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.'
                    }) =>
            {
                Ok(Reference::Object(text.to_owned()))
            }
            _ => {
                let shown: String = text.chars().take(40).collect();
                Err(Error::malformed(
                    "reference",
                    format!(
                        "expected `inline:<base64>` or a staging URI such as file:///dir/blobs/sha256/<hex>, got {shown:?}"
                    ),
                ))
            }
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Inline(bytes) => {
                f.write_str(Self::INLINE_PREFIX)?;
                f.write_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            Reference::Object(uri) => f.write_str(uri),
        }
    }
}

/// The length of `inline:<base64>` for `len` bytes.
pub fn inline_text_len(len: usize) -> usize {
    Reference::INLINE_PREFIX.len() + len.div_ceil(3) * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_print() {
        let r = Reference::Inline(vec![1, 2, 3]);
        assert_eq!(r.to_string(), "inline:AQID");
        assert_eq!(Reference::parse("inline:AQID\n").unwrap(), r);
        assert_eq!(
            Reference::parse("gs://b/p/blobs/sha256/00").unwrap(),
            Reference::Object("gs://b/p/blobs/sha256/00".into())
        );
        assert!(Reference::parse("inline:!!").is_err());
        assert!(Reference::parse("hello").is_err());
        assert!(Reference::parse("://x").is_err());
        assert_eq!(inline_text_len(3), "inline:AQID".len());
        assert_eq!(inline_text_len(4), "inline:".len() + 8);
    }

    #[test]
    fn schemes_are_letters_digits_plus_minus_and_dot() {
        for uri in [
            "git+ssh://host/x",
            "x-y://a",
            "a.b://c",
            "S3://bucket/key",
            "file:///tmp/s/blobs/sha256/00",
        ] {
            assert_eq!(
                Reference::parse(uri).unwrap(),
                Reference::Object(uri.into()),
                "{uri}"
            );
        }
        for bad in [
            "a_b://x",
            "a b://x",
            "a/b://x",
            "a:b://x",
            "caf\u{e9}://x",
            "gs://",
            "",
        ] {
            let err = Reference::parse(bad).unwrap_err();
            assert!(err.to_string().contains("staging URI"), "{bad}: {err}");
        }
    }
}
