//! Encode + decode of a 64 MiB `ByteBuf` argument through the wire, against
//! a plain copy of the same bytes in the same run.
//!
//! The copy gets the buffer treatment hype gives its large buffers (see
//! `hype-runtime/src/bytes.rs`): a buffer allocated once at its final size
//! and advised to use transparent huge pages (`madvise(MADV_HUGEPAGE)`),
//! then one `extend_from_slice`. That is one copy, where a value round trip
//! makes two (encoding copies the bytes into the message, decoding copies
//! them out), so the round trip's floor is about 2x the copy.
//!
//! `cargo bench --bench wire_payload`. Target: at least 1 GB/s.

mod measure;

use std::time::Duration;

use hype::wire::{self, BuildInfo, CallEnvelope, Payload};
use hype::{ByteBuf, Bytes};
use measure::{Samples, interleave_blocking, quick, ratio, rounds_text, time, verdict};

/// A function taking a large binary argument as `serde_bytes::ByteBuf`.
#[hype::remote]
fn checksum(data: ByteBuf) -> u64 {
    data.iter().map(|&b| b as u64).sum()
}

/// The same with `hype::Bytes`.
#[hype::remote]
fn checksum_bytes(data: Bytes) -> u64 {
    data.iter().map(|&b| b as u64).sum()
}

const SIZE: usize = 64 * 1024 * 1024;

/// Buffers at least this large get huge-page advice, as in hype.
const LARGE_BUFFER: usize = 4 << 20;

/// A copy of `data` the way hype copies large buffers: `hype::bytes::
/// vec_with_capacity` (allocate once, `advise_huge_pages`), then
/// `extend_from_slice`. Replicated here, as `hype::bytes` is not public.
fn huge_page_copy(data: &[u8]) -> Vec<u8> {
    let mut vec = Vec::with_capacity(data.len());
    advise_huge_pages(&mut vec);
    vec.extend_from_slice(data);
    vec
}

/// `hype::bytes::advise_huge_pages`: on Linux, `madvise(MADV_HUGEPAGE)`
/// on the 2 MiB-aligned part of a large buffer's allocation.
fn advise_huge_pages(vec: &mut Vec<u8>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        if vec.capacity() < LARGE_BUFFER {
            return;
        }
        let start = vec.as_mut_ptr() as usize;
        let end = start + vec.capacity();
        let aligned_start = (start + HUGE - 1) & !(HUGE - 1);
        let aligned_end = end & !(HUGE - 1);
        if aligned_end > aligned_start {
            // SAFETY: the range lies inside `vec`'s allocation, borrowed
            // mutably here; MADV_HUGEPAGE changes no contents and no
            // mapping the allocator relies on, only how pages are backed.
            unsafe {
                libc::madvise(
                    aligned_start as *mut libc::c_void,
                    aligned_end - aligned_start,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = vec;
}

/// Encodes and decodes `args` as a value, as the submitter and hype-run do.
fn value_round_trip<A: hype::RemoteFn>(args: &A) -> A {
    let bytes = wire::encode_value(A::ID, "arguments", args).expect("encode");
    wire::decode_value::<A>(A::ID, "arguments", &bytes).expect("decode")
}

/// The same, wrapped in a call envelope (an inline payload).
fn envelope_round_trip<A: hype::RemoteFn>(args: &A) -> A {
    let bytes = wire::encode_value(A::ID, "arguments", args).expect("encode");
    let call = CallEnvelope::new(
        A::ID,
        A::SIGNATURE,
        Payload::Inline(wire::Bytes::from(bytes)),
    )
    .with_build(BuildInfo::current());
    let encoded = wire::encode_call(&call).expect("encode call");
    drop(call);
    let call = wire::decode_call(&encoded).expect("decode call");
    let Payload::Inline(bytes) = call.payload else {
        unreachable!()
    };
    wire::decode_value::<A>(A::ID, "arguments", &bytes).expect("decode")
}

/// Times `f`, checks the length of what it made, and frees that outside
/// the timing (freeing 64 MiB is not what is measured).
fn timed<T>(f: impl FnOnce() -> T, len: impl FnOnce(&T) -> usize) -> Duration {
    let (took, out) = time(|| std::hint::black_box(f()));
    assert_eq!(len(&out), SIZE);
    drop(out);
    took
}

fn main() {
    let iterations = if quick() { 5 } else { 20 };
    let warmup = 1;
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let byte_buf = ChecksumArgs {
        data: ByteBuf::from(data.clone()),
    };
    let bytes = ChecksumBytesArgs {
        data: Bytes::from(data.clone()),
    };

    let sides = interleave_blocking(
        [
            "plain copy, huge pages (baseline)",
            "value, serde_bytes::ByteBuf",
            "value, hype::Bytes",
            "value in call envelope, hype::Bytes",
        ],
        warmup,
        iterations,
        |turn| match turn.side {
            0 => timed(|| huge_page_copy(std::hint::black_box(&data)), Vec::len),
            1 => timed(|| value_round_trip(&byte_buf), |out| out.data.len()),
            2 => timed(|| value_round_trip(&bytes), |out| out.data.len()),
            _ => timed(|| envelope_round_trip(&bytes), |out| out.data.len()),
        },
    );
    let [copy, _, value, _] = &sides;
    let gbps = |s: &Samples| SIZE as f64 / s.median().as_secs_f64() / 1e9;
    println!(
        "encode+decode of a 64 MiB argument ({})",
        rounds_text(sides.len(), warmup, iterations)
    );
    for s in &sides {
        println!(
            "  {}  {:>5.2} GB/s  {:.2}x the copy",
            s.line(),
            gbps(s),
            ratio(s, copy)
        );
    }
    let value_gbps = gbps(value);
    println!("  hype::Bytes value encode+decode: {value_gbps:.2} GB/s (target >= 1 GB/s)");
    verdict(
        value_gbps >= 1.0,
        &format!("hype::Bytes value encode+decode at {value_gbps:.2} GB/s (target >= 1 GB/s)"),
    );
}
