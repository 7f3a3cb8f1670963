//! Compile-time behaviour of `#[hype::remote]` and `#[hype::main]`, checked
//! with trybuild: `ui/pass` must compile (and run), `ui/fail` must fail with
//! exactly the diagnostics in the `.stderr` beside each file. One failing
//! file per kind of error.
//!
//! Regenerate the expected output after a deliberate change with
//! `TRYBUILD=overwrite cargo test --workspace --test ui`, then read the diff.
//!
//! trybuild builds `hype` with the features it was built with for this
//! test. No workspace member turns on `hype`'s backend features in a plain
//! `cargo test --workspace` (the integration tests take the backends from
//! `hype-runtime`), so the cases compile against `hype` without backends:
//! no second build of kube, the Google clients and bollard, and the two
//! `not_serde_*` cases, which quote rustc's list of types implementing
//! serde's traits, read the same under `-p hype` and `--workspace`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
