//! Resource quantities (`750m`, `512Mi`, `1e3`): never a panic; a parsed
//! quantity's canonical text (`hype_runtime::__tools::fuzzing::quantity`) parses to
//! an equal quantity and is its own canonical text, and gives the same
//! Docker numbers (`NanoCpus`, memory bytes); `RunEnvironment::validate`
//! accepts exactly the quantities that parse and are not negative. With a
//! second line, the two are compared: the order is antisymmetric, the
//! Docker numbers follow it, and `validate` refuses a request above its
//! limit exactly when the order says so. Accepted: the first line parses.
#![no_main]

use std::cmp::Ordering;

use hype_runtime::RunEnvironment;
use hype_runtime::__tools::fuzzing::{memory_bytes, nano_cpus, quantity, quantity_cmp};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return hype_fuzz::verdict(false);
    };
    let (first, second) = match text.split_once('\n') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let canonical = check_one(first);
    if let (Some(second), Some(_)) = (second, &canonical)
        && check_one(second).is_some()
    {
        compare(first, second);
    }
    hype_fuzz::verdict(canonical.is_some());
});

/// Checks one quantity; its canonical text if it parses.
fn check_one(text: &str) -> Option<String> {
    let validated = RunEnvironment::local().with_request("cpu", text).validate();
    let Ok(canonical) = quantity(text) else {
        assert!(nano_cpus(text).is_err() && memory_bytes(text).is_err());
        assert!(validated.is_err(), "{text:?} does not parse but validates");
        return None;
    };
    assert_eq!(
        quantity(&canonical).as_ref(),
        Ok(&canonical),
        "{text:?} is {canonical:?}, which is not its own canonical text"
    );
    assert_eq!(
        quantity_cmp(text, &canonical),
        Ok(Ordering::Equal),
        "{text:?} vs {canonical:?}"
    );
    assert_eq!(nano_cpus(text).ok(), nano_cpus(&canonical).ok(), "{text:?}");
    assert_eq!(
        memory_bytes(text).ok(),
        memory_bytes(&canonical).ok(),
        "{text:?}"
    );
    let negative = canonical.starts_with('-');
    assert_eq!(validated.is_ok(), !negative, "{text:?}: {validated:?}");
    if let Ok(nanos) = nano_cpus(text) {
        assert!(nanos >= 1 && !negative);
    }
    if let Ok(bytes) = memory_bytes(text) {
        assert!(bytes >= 1 && !negative);
    }
    Some(canonical)
}

/// Checks the order of two quantities that parse.
fn compare(a: &str, b: &str) {
    let order = quantity_cmp(a, b).expect("both parse");
    assert_eq!(quantity_cmp(b, a), Ok(order.reverse()), "{a:?} vs {b:?}");
    for convert in [nano_cpus, memory_bytes] {
        if let (Ok(x), Ok(y)) = (convert(a), convert(b)) {
            assert!(
                x.cmp(&y) == order || x == y,
                "{a:?} vs {b:?}: {order:?} but the engine numbers are {x} and {y}"
            );
        }
    }
    let env = RunEnvironment::local()
        .with_request("cpu", a)
        .with_limit("cpu", b);
    let negative = a.trim().starts_with('-') || b.trim().starts_with('-');
    if !negative {
        assert_eq!(
            env.validate().is_err(),
            order == Ordering::Greater,
            "request {a:?}, limit {b:?}"
        );
    }
}
