//! Passing SIGTERM and SIGINT on to the launched executable, without
//! losing one that arrives while the child is being started.
//!
//! One atomic word holds the whole hand-over, so a handler and the
//! launching thread can never each see the other's half:
//!
//! | state | meaning | a signal arriving |
//! |---|---|---|
//! | 0 | no child yet | is stored as pending (−n) |
//! | −n | no child yet, signal n arrived | replaces it |
//! | pid > 0 | the child runs | is sent to it |
//! | [`DONE`] | the child has ended | is dropped (the launcher is ending) |
//!
//! The launching thread swaps the pid in ([`started`]): what it swaps out
//! is either nothing or the pending signal, which it then sends itself. A
//! handler that lost a compare-and-swap against it sees the pid next time
//! round. The state turns [`DONE`] before the child is reaped (it is
//! waited for with `WNOWAIT` first), so a handler never signals a pid the
//! kernel may have given to another process.
//!
//! The handlers are actions of `signal-hook-registry`, which keeps errno
//! and shares the signals with any other user of the registry (tokio's).

use std::sync::atomic::{AtomicI32, Ordering};

use rustix::process::{Pid, Signal};

/// The signals passed on.
const FORWARDED: [Signal; 2] = [Signal::TERM, Signal::INT];

/// The child has ended: nothing is forwarded any more.
pub(crate) const DONE: i32 = i32::MIN;

/// The hand-over (see the module docs).
static STATE: AtomicI32 = AtomicI32::new(0);

/// What a signal `signal` does to `state`: the pid to send it to, if any.
/// Async-signal-safe (atomics only).
fn on_signal(state: &AtomicI32, signal: i32) -> Option<i32> {
    let mut now = state.load(Ordering::SeqCst);
    loop {
        if now > 0 {
            return Some(now);
        }
        if now == DONE {
            return None;
        }
        match state.compare_exchange(now, -signal, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return None,
            Err(actual) => now = actual,
        }
    }
}

/// The child `pid` has started: the signal that arrived before, if one did.
fn on_started(state: &AtomicI32, pid: i32) -> Option<i32> {
    match state.swap(pid, Ordering::SeqCst) {
        pending if pending < 0 && pending != DONE => Some(-pending),
        _ => None,
    }
}

/// Sends `signal` to the child `pid`. Async-signal-safe (kill(2)).
fn send(pid: i32, signal: i32) {
    if let (Some(pid), Some(signal)) = (Pid::from_raw(pid), Signal::from_named_raw(signal)) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// The action for `signal`: pass it on, or hold it (see [`on_signal`]).
/// The pid it is sent to is a child that has not been reaped (the state
/// turns [`DONE`] before it is).
fn forward(signal: i32) {
    if let Some(pid) = on_signal(&STATE, signal) {
        send(pid, signal);
    }
}

/// Passes SIGTERM and SIGINT on to the launched child from now on (held
/// as pending until [`started`]). Once per process.
pub(crate) fn install() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        for signal in FORWARDED.map(Signal::as_raw) {
            // SAFETY: the action is async-signal-safe: atomics and kill(2).
            let _ = unsafe { signal_hook_registry::register(signal, move || forward(signal)) };
        }
    });
}

/// The child `pid` has started: signals go to it from now on, and one that
/// arrived before goes now.
pub(crate) fn started(pid: i32) {
    if let Some(signal) = on_started(&STATE, pid) {
        send(pid, signal);
    }
}

/// The child has ended (waited for, not yet reaped): nothing is sent to
/// its pid any more.
pub(crate) fn ended() {
    STATE.store(DONE, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_before_the_child_starts_is_sent_once_it_has() {
        let state = AtomicI32::new(0);
        assert_eq!(on_signal(&state, Signal::TERM.as_raw()), None);
        assert_eq!(on_started(&state, 4242), Some(Signal::TERM.as_raw()));
        assert_eq!(on_signal(&state, Signal::INT.as_raw()), Some(4242));
    }

    #[test]
    fn no_signal_before_the_start_sends_nothing_then() {
        let state = AtomicI32::new(0);
        assert_eq!(on_started(&state, 4242), None);
        assert_eq!(on_signal(&state, Signal::TERM.as_raw()), Some(4242));
    }

    #[test]
    fn after_the_end_nothing_is_sent() {
        let state = AtomicI32::new(0);
        on_started(&state, 4242);
        state.store(DONE, Ordering::SeqCst);
        assert_eq!(on_signal(&state, Signal::TERM.as_raw()), None);
        assert_eq!(state.load(Ordering::SeqCst), DONE);
    }

    /// Handlers on other threads racing the start: every signal is either
    /// sent to the child by a handler or handed to the starter, never lost.
    #[test]
    fn a_racing_signal_is_never_lost() {
        for round in 0..2000 {
            let state = std::sync::Arc::new(AtomicI32::new(0));
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            let handler = {
                let (state, barrier) = (state.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    on_signal(&state, Signal::TERM.as_raw())
                })
            };
            barrier.wait();
            let handed_over = on_started(&state, 4242);
            let sent_by_handler = handler.join().unwrap();
            assert!(
                handed_over.is_some() != sent_by_handler.is_some(),
                "round {round}: handed over {handed_over:?}, sent by the handler {sent_by_handler:?}"
            );
        }
    }
}
