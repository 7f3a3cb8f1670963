//! Names hype makes up: execution IDs and random suffixes, valid as
//! Kubernetes object names (DNS-1123 labels).

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `len` random characters from `[0-9a-z]` (`fastrand`, seeded per thread
/// from the OS). Not cryptographic: names only need to differ.
pub fn random_suffix(len: usize) -> String {
    (0..len)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// An execution ID for a call of `function_id`: `hype-<name>-<random8>`,
/// where `<name>` is the function's last path segment made DNS-safe. At
/// most 63 characters, a valid DNS-1123 label.
pub fn execution_id(function_id: &str) -> String {
    let name = function_id.rsplit("::").next().unwrap_or(function_id);
    let mut safe: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    safe.truncate(40);
    let safe = safe.trim_matches('-');
    if safe.is_empty() {
        format!("hype-{}", random_suffix(8))
    } else {
        format!("hype-{safe}-{}", random_suffix(8))
    }
}

/// A label value for `text`: at most 63 characters of `[A-Za-z0-9._-]`,
/// starting and ending with an alphanumeric character. The Kubernetes rule,
/// used for pod and container labels alike so the same selectors work on
/// both.
#[cfg(any(feature = "docker", feature = "kubernetes"))]
pub fn label_value(text: &str) -> String {
    let mut value: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    while value.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        value.pop();
    }
    let start = value
        .find(|c: char| c.is_ascii_alphanumeric())
        .unwrap_or(value.len());
    value.split_off(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    #[test]
    fn execution_ids_are_dns_labels() {
        for id in [
            "my_crate::word_count",
            "x::Ünïcode_Fn",
            "a::___",
            "weird-name::with::a_very_long_function_name_that_goes_on_and_on_and_on",
        ] {
            let exec = execution_id(id);
            assert!(is_dns_label(&exec), "{exec} from {id}");
        }
        assert!(execution_id("m::word_count").starts_with("hype-word-count-"));
    }

    #[test]
    fn suffixes_differ() {
        let a: std::collections::HashSet<_> = (0..1000).map(|_| random_suffix(8)).collect();
        assert_eq!(a.len(), 1000);
    }
}
