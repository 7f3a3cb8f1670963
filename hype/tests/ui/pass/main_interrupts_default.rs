//! Without `interrupts = false`, `#[hype::main]` handles SIGINT and
//! SIGTERM itself (the control for `main_interrupts_false`): a handler is
//! installed before the body runs.
#![deny(warnings)]

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
/// `SIG_DFL` and `SIG_IGN`: what a process starts with.
const NOT_A_HANDLER: [usize; 2] = [0, 1];

unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
}

#[hype::main(interrupts = true)]
fn main() {
    for signum in [SIGINT, SIGTERM] {
        // SAFETY: signal(2) reads the handler by setting the default, then
        // puts the handler back as it was.
        let handler = unsafe { signal(signum, 0) };
        unsafe { signal(signum, handler) };
        assert!(
            !NOT_A_HANDLER.contains(&handler),
            "no handler for signal {signum}"
        );
    }
}
