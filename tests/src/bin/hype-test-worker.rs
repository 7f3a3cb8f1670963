//! The worker binary of the integration tests: run as `hype-run`, it
//! executes calls of the remote functions in `hype_tests`.

/// Which build of the worker this is: 1 here, 2 in `hype-test-worker-v2`
/// (the same function with another body, as after a code change).
#[hype::remote(name = "hype_tests::build_number")]
fn build_number() -> u32 {
    1
}

// Not `#[hype::main]`: spans are exported (when a test asks) from before
// the call runs, so the exporter is installed first, then `hype-run` is
// dispatched, as a user's program that exports its spans does.
fn main() {
    let provider = hype_tests::spans::install_if_asked();
    if provider.is_some() {
        // `dispatch_if_hype_run` exits: the simple processor has exported
        // each span as it ended.
        std::mem::forget(provider);
    }
    hype::dispatch_if_hype_run();
    hype_tests::link();
    let _ = build_number();
    eprintln!("hype-test-worker: run me as `hype-test-worker hype-run <call>`");
    std::process::exit(2);
}
