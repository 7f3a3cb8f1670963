//! The worker binary of the integration tests: run as `hype-run`, it
//! executes calls of the remote functions in `hype_tests`.

/// Which build of the worker this is: 1 here, 2 in `hype-test-worker-v2`
/// (the same function with another body, as after a code change).
#[hype::remote(name = "hype_tests::build_number")]
fn build_number() -> u32 {
    1
}

#[hype::main]
fn main() {
    hype_tests::link();
    let _ = build_number();
    eprintln!("hype-test-worker: run me as `hype-test-worker hype-run <call>`");
    std::process::exit(2);
}
