//! `Reference::parse` (the `hype-run` argument, the termination message):
//! never a panic; a parsed reference prints as exactly the text it came
//! from (less a trailing newline: base64 is checked to be canonical) and
//! parses back to itself; the bytes of an inline reference go through both
//! envelope decoders.
#![no_main]

use hype_runtime::wire::Reference;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return hype_fuzz::verdict(false);
    };
    let Ok(reference) = Reference::parse(text) else {
        return hype_fuzz::verdict(false);
    };
    let printed = reference.to_string();
    assert_eq!(
        printed,
        text.trim_end_matches(['\n', '\r']),
        "a parsed reference prints as another text"
    );
    assert_eq!(
        Reference::parse(&printed).expect("a printed reference parses"),
        reference
    );
    if let Reference::Inline(bytes) = &reference {
        hype_fuzz::check_call(bytes);
        hype_fuzz::check_outcome(bytes);
    }
    hype_fuzz::verdict(true);
});
