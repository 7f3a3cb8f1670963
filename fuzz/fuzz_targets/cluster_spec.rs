//! `HYPE_CLUSTER` parsing (`ClusterSpec::parse`): never a panic; a parsed
//! spec written back as text (`hype_fuzz::cluster_text`) parses to the same
//! spec, and names its cargo feature.
#![no_main]

use hype_runtime::__tools::ClusterSpec;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return hype_fuzz::verdict(false);
    };
    let Ok(spec) = ClusterSpec::parse(text) else {
        return hype_fuzz::verdict(false);
    };
    let written = hype_fuzz::cluster_text(&spec);
    assert_eq!(
        ClusterSpec::parse(&written).expect("a written spec parses"),
        spec,
        "{text:?} was written as {written:?}"
    );
    let _ = spec.feature();
    hype_fuzz::verdict(true);
});
