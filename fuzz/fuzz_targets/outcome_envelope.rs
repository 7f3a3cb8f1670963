//! Outcome envelope decoding (`HYPO`): never a panic; a decoded envelope
//! round-trips as a call does, and a `Failed` outcome's failure survives
//! the trip through the caller's error (see `hype_fuzz::check_outcome`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hype_fuzz::verdict(hype_fuzz::check_outcome(data));
});
