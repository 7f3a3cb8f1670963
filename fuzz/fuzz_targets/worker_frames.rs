//! The warm-worker stream's `FrameDecoder` (`docs/protocol.md` §8): the
//! first byte picks the direction (even: requests, odd: events) and how the
//! rest is cut into pieces; never a panic, never more memory than the
//! maximum frame and what was pushed; the messages and the first error are
//! the same however the stream is cut; every decoded message re-encodes to
//! a frame that decodes to it again (see `hype_fuzz::check_frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hype_fuzz::verdict(hype_fuzz::check_frames(data));
});
