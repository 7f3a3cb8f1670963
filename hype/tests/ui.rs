//! Compile-time behaviour of `#[hype::remote]` and `#[hype::main]`, checked
//! with trybuild: `ui/pass` must compile (and run), `ui/fail` must fail with
//! exactly the diagnostics in the `.stderr` beside each file. One failing
//! file per kind of error.
//!
//! Regenerate the expected output after a deliberate change with
//! `TRYBUILD=overwrite cargo test --workspace --test ui`, then read the diff.
//! Use `--workspace`, as the README's test command does: the two
//! `not_serde_*` cases quote rustc's list of types implementing serde's
//! traits, which depends on the features the whole workspace unifies.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
