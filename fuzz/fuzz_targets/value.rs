//! Value decoding (`decode_value`, MessagePack with structs as arrays) into
//! recursive and nested types: never a panic and never a stack overflow
//! (nesting too deep must be an error); a decoded value re-encodes and
//! decodes to an equal value, and for types without a `HashMap` the
//! encoding is a fixed point. Accepted: some type decoded the input.
#![no_main]

use std::collections::BTreeMap;

use hype_fuzz::{AddArgs, Branch, Tree, TreeArgs, check_value};
use hype_runtime::Bytes;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let decoded = [
        check_value::<Tree>(data, false),
        check_value::<TreeArgs>(data, false),
        check_value::<Branch>(data, true),
        check_value::<AddArgs>(data, true),
        check_value::<Result<i64, String>>(data, true),
        check_value::<()>(data, true),
        check_value::<Bytes>(data, true),
        check_value::<Vec<Option<Box<Tree>>>>(data, false),
        check_value::<BTreeMap<String, Vec<(u8, Option<String>)>>>(data, true),
    ];
    hype_fuzz::verdict(decoded.contains(&true));
});
