//! A generic launcher for the tests: the same `main` as `hype-cli`'s
//! `hype-run` (`hype_runtime::hype_run::launcher_main`), built in this package
//! so the tests can find it (`CARGO_BIN_EXE_hype-launcher`). It does not
//! link `hype_tests`, so it holds none of the test functions: every call it
//! runs names the executable that has them.

fn main() {
    std::process::exit(hype_runtime::hype_run::launcher_main());
}
