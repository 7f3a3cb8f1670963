//! Staging locations and URIs: `LocalStaging::from_uri` (never a panic; an
//! accepted `file://` location is its own location, names the directory
//! after `file://`, parses again to the same store, and is a valid
//! reference), and content addresses: the blob URI of any location names
//! its digest again (`blob_uri` then `digest_in_uri`), and a digest found
//! in any URI is 64 hex digits ending it. The verdict is `from_uri`'s, for
//! `file://` inputs only.
#![no_main]

use std::path::Path;

use hype_runtime::LocalStaging;
use hype_runtime::Staging as _;
use hype_runtime::__tools::fuzzing::{blob_uri, digest_in_uri};
use hype_runtime::wire::{Reference, sha256_hex};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let local = LocalStaging::from_uri(text);
    if let Ok(store) = &local {
        assert_eq!(store.location(), text, "a location is not its own location");
        assert_eq!(store.root(), Path::new(&text["file://".len()..]));
        let again = LocalStaging::from_uri(store.location()).expect("a location parses again");
        assert_eq!(again.root(), store.root());
        assert!(
            matches!(Reference::parse(text), Ok(Reference::Object(_))),
            "{text:?} is a location but not a reference"
        );
    }
    let hex = sha256_hex(data);
    let blob = blob_uri(text, &hex);
    assert_eq!(digest_in_uri(&blob), Some(hex.as_str()), "{blob:?}");
    if local.is_ok() {
        assert!(LocalStaging::from_uri(&blob).is_ok(), "{blob:?}");
    }
    if let Some(digest) = digest_in_uri(text) {
        assert!(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(text.ends_with(digest));
    }
    if text.starts_with("file://") {
        hype_fuzz::verdict(local.is_ok());
    }
});
