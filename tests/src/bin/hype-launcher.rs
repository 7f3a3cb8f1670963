//! A generic launcher for the tests: the same `main` as the `hype-run`
//! package's (`hype_runtime::__tools::launcher_main`), built in this package
//! so the tests can find it (`CARGO_BIN_EXE_hype-launcher`; a test cannot
//! name another package's binary). It does not link `hype_tests`, so it
//! holds none of the test functions: every call it runs names the
//! executable that has them. It links hype-runtime with the tests'
//! features, more than the `hype-run` package's `gcs`; the launcher's code
//! is the same either way.

fn main() {
    std::process::exit(hype_runtime::__tools::launcher_main());
}
