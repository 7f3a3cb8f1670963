//! `hype`: hype's own command (`hype gc`, `hype ps`, `hype logs`,
//! `hype timeline`); see
//! `hype --help` and [`hype_cli::cli`].

fn main() {
    std::process::exit(hype_cli::cli::run(std::env::args_os()));
}
