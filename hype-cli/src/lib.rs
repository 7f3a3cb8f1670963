//! hype's command-line programs. `hype-run` (`src/bin/hype-run.rs`) is the
//! generic launcher of env images: hype-runtime's entry with no remote
//! functions of its own, and `gs://` staging.
