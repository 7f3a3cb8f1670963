//! `#[hype::main(interrupts = false)]` on `async fn main`: SIGINT and
//! SIGTERM stay the program's. hype installs no handler, not when `main`
//! starts nor when a submitter is built or runs a call; a handler of the
//! program's own gets the signals and the program goes on.
#![deny(warnings)]

use std::sync::atomic::{AtomicI32, Ordering};

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

/// Installs `on_signal` for `signum`, checking that no handler was there
/// (hype's would be), then raises it: the program's handler gets it.
fn own(signum: i32) {
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

#[hype::remote]
fn double(n: u32) -> u32 {
    n * 2
}

#[hype::main(interrupts = false)]
async fn main() -> Result<(), hype::Error> {
    let submitter = hype::Submitter::builder(hype::LocalCluster::new())
        .build()
        .await?;
    let doubled = submitter
        .run(double(21), &hype::RunEnvironment::local())
        .await?;
    assert_eq!(doubled, 42);
    own(SIGINT);
    own(SIGTERM);
    submitter.close().await
}
