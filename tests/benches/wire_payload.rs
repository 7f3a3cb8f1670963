//! Encode + decode of a 64 MiB `ByteBuf` argument through the wire, against
//! a plain copy of the same bytes in the same run.
//!
//! `cargo bench --bench wire_payload`. Target: at least 1 GB/s.

mod measure;

use hype::wire::{self, BuildInfo, CallEnvelope, Payload};
use hype::{ByteBuf, Bytes};
use measure::{Samples, quick, ratio, time};

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

fn main() {
    let iterations = if quick() { 5 } else { 20 };
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let byte_buf = ChecksumArgs {
        data: ByteBuf::from(data.clone()),
    };
    let bytes = ChecksumBytesArgs {
        data: Bytes::from(data.clone()),
    };

    let mut copy = Samples::new("plain copy of 64 MiB (baseline)");
    let mut value_bb = Samples::new("value, serde_bytes::ByteBuf");
    let mut value = Samples::new("value, hype::Bytes");
    let mut envelope = Samples::new("value in call envelope, hype::Bytes");
    for i in 0..=iterations {
        let (t_copy, copied) = time(|| std::hint::black_box(std::hint::black_box(&data).clone()));
        assert_eq!(copied.len(), SIZE);
        drop(copied);
        let (t_bb, out) = time(|| value_round_trip(&byte_buf));
        assert_eq!(out.data.len(), SIZE);
        drop(out);
        let (t_value, out) = time(|| value_round_trip(&bytes));
        assert_eq!(out.data.len(), SIZE);
        drop(out);
        let (t_env, out) = time(|| envelope_round_trip(&bytes));
        assert_eq!(out.data.len(), SIZE);
        drop(out);
        if i > 0 {
            copy.times.push(t_copy);
            value_bb.times.push(t_bb);
            value.times.push(t_value);
            envelope.times.push(t_env);
        }
    }
    let gbps = |s: &Samples| SIZE as f64 / s.median().as_secs_f64() / 1e9;
    println!(
        "encode+decode of a 64 MiB argument ({iterations} interleaved samples after 1 warm-up)"
    );
    for s in [&copy, &value_bb, &value, &envelope] {
        println!(
            "  {}  {:>5.2} GB/s  {:.2}x the copy",
            s.line(),
            gbps(s),
            ratio(s, &copy)
        );
    }
    println!(
        "  hype::Bytes value encode+decode: {:.2} GB/s (target >= 1 GB/s)",
        gbps(&value)
    );
}
