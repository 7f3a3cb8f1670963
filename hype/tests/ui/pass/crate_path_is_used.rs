//! `crate = "…"` is the path the generated code names, not `::hype`: here
//! it leads to a wrapper whose `__private` replaces two items (`Call` and
//! `dispatch_if_hype_run`) by its own, and what the macros generate uses
//! those.
#![deny(warnings)]

use std::sync::atomic::{AtomicBool, Ordering};

static DISPATCHED: AtomicBool = AtomicBool::new(false);

/// hype as a crate wrapping it could present it.
mod wrapper {
    /// hype's generated-code support, with two items of the wrapper's own.
    pub mod __private {
        pub use hype::__private::*;

        /// Not hype's `Call`: a type only this path has.
        pub struct Call<A: hype::RemoteFn>(pub hype::Call<A>);

        impl<A: hype::RemoteFn> Call<A> {
            /// What the generated wrapper calls.
            pub fn new(args: A) -> Self {
                Call(hype::Call::new(args))
            }
        }

        /// Records that the generated `main` called it, then does hype's.
        pub fn dispatch_if_hype_run() {
            super::super::DISPATCHED.store(true, Ordering::SeqCst);
            hype::__private::dispatch_if_hype_run();
        }

        use std::sync::atomic::Ordering;
    }
}

#[hype::remote(crate = "wrapper")]
fn shout(text: String) -> String {
    text.to_uppercase()
}

#[hype::main(crate = "wrapper")]
async fn main() -> Result<(), hype::Error> {
    assert!(DISPATCHED.load(Ordering::SeqCst));
    let call: wrapper::__private::Call<ShoutArgs> = shout("a".into());
    assert_eq!(call.0.run_here().await?, "A");
    Ok(())
}
