//! The worker binary of the integration tests: run as `hype-run`, it
//! executes calls of the remote functions in `hype_tests`.

#[hype::main]
fn main() {
    hype_tests::link();
    eprintln!("hype-test-worker: run me as `hype-test-worker hype-run <call>`");
    std::process::exit(2);
}
