//! Call envelope decoding (`HYPC`): never a panic; a decoded envelope
//! re-encodes, decodes to an equal envelope, and its encoding is a fixed
//! point (see `hype_fuzz::check_call`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hype_fuzz::verdict(hype_fuzz::check_call(data));
});
