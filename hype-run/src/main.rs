//! `hype-run`: the generic launcher of a hype env image. It holds none of
//! your remote functions: a call names the executable that does (staged by
//! the submitter), and `hype-run` fetches it into `HYPE_CACHE_DIR`,
//! verifies it, and runs the call with it. See `docker/README.md`.
//!
//! ```text
//! hype-run inline:<base64> | hype-run <staging URI> | hype-run --list
//! ```

fn main() {
    std::process::exit(hype_runtime::__tools::launcher_main());
}
