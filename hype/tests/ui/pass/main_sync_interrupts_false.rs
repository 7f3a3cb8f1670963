//! `interrupts = false` on a plain `main`, with `crate = "…"`: no signal
//! handler is installed, and the program's own gets the signals.
#![deny(warnings)]

use std::sync::atomic::{AtomicI32, Ordering};

mod reexport {
    pub use hype;
}

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
/// `SIG_DFL` and `SIG_IGN`: what a process starts with.
const NOT_A_HANDLER: [usize; 2] = [0, 1];

unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn raise(signum: i32) -> i32;
}

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signum: i32) {
    RECEIVED.store(signum, Ordering::SeqCst);
}

#[reexport::hype::main(crate = "reexport::hype", interrupts = false)]
fn main() {
    for signum in [SIGINT, SIGTERM] {
        // SAFETY: signal(2) with a handler that only stores to an atomic.
        let before = unsafe { signal(signum, on_signal as extern "C" fn(i32) as usize) };
        assert!(
            NOT_A_HANDLER.contains(&before),
            "signal {signum} already had a handler"
        );
        // SAFETY: raise(3) of a signal this program handles.
        assert_eq!(unsafe { raise(signum) }, 0);
        assert_eq!(RECEIVED.swap(0, Ordering::SeqCst), signum);
    }
}
