//! The test worker after a code change: the same remote functions, with
//! `hype_tests::build_number` returning 2 instead of 1. Two executables of
//! one program, for the test that runs both against one image.

/// Which build of the worker this is: 2 here, 1 in `hype-test-worker`.
#[hype::remote(name = "hype_tests::build_number")]
fn build_number() -> u32 {
    2
}

#[hype::main]
fn main() {
    hype_tests::link();
    let _ = build_number();
    eprintln!("hype-test-worker-v2: run me as `hype-test-worker-v2 hype-run <call>`");
    std::process::exit(2);
}
