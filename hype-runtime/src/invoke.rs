//! Running one registered function: decode its arguments, call the user's
//! body (on a tokio runtime if it is `async`), catch a panic with its
//! location, and encode the result. [`crate::registry::Registration`] holds
//! a monomorphised [`execute`] for each remote function; `hype-run`
//! ([`crate::hype_run`]) calls it.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;

use crate::error::Error;
use crate::remote::{Invoke, RemoteFn};
use crate::wire::{self, Failure};

/// How a registered function is executed: decode arguments, run, encode.
pub(crate) type ExecuteFn = fn(&[u8]) -> Executed;

/// What executing a function's body gave.
#[derive(Debug)]
pub(crate) enum Executed {
    /// The body returned; its encoded result.
    Returned(Vec<u8>),
    /// The body panicked.
    Panicked {
        message: String,
        location: Option<String>,
    },
    /// The call could not run (arguments that do not decode, a result that
    /// does not encode, no runtime for an `async` body).
    Failed(Failure),
}

thread_local! {
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records each panic's location for [`execute`], keeping the previous
/// hook's output. Installed once per process.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let location = info.location().map(|l| l.to_string());
            PANIC_LOCATION.with(|cell| *cell.borrow_mut() = location);
            previous(info);
        }));
    });
}

/// The tokio runtime `async` bodies and `hype-run`'s staging requests run
/// on, started on first use. Calls from inside another runtime are refused
/// by the caller ([`crate::hype_run::execute_in_process`]) before they get here.
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())
        })
        .as_ref()
        .map_err(|err| Error::Config {
            message: format!("cannot start a tokio runtime: {err}"),
        })
}

/// Runs a registered function: the monomorphised entry point each
/// [`crate::registry::Registration`] holds.
pub(crate) fn execute<F: RemoteFn>(payload: &[u8]) -> Executed {
    let args: F = match wire::decode_value(F::ID, "arguments", payload) {
        Ok(args) => args,
        Err(err) => return Executed::Failed(Failure::from_error(&err)),
    };
    PANIC_LOCATION.with(|cell| cell.borrow_mut().take());
    let caught = panic::catch_unwind(AssertUnwindSafe(|| match args.invoke() {
        Invoke::Ready(value) => Ok(value),
        Invoke::Pending(future) => {
            if tokio::runtime::Handle::try_current().is_ok() {
                // block_on would panic here, and the panic would pass for the user's.
                return Err(Error::BadInvocation {
                    message: format!(
                        "the async remote function {} was executed from inside a tokio runtime; execute calls from a plain thread (std::thread::spawn or tokio::task::spawn_blocking)",
                        F::ID
                    ),
                });
            }
            runtime().map(|rt| rt.block_on(future))
        }
    }));
    match caught {
        Ok(Ok(value)) => match wire::encode_value(F::ID, "result", &value) {
            Ok(bytes) => Executed::Returned(bytes),
            Err(err) => Executed::Failed(Failure::from_error(&err)),
        },
        Ok(Err(err)) => Executed::Failed(Failure::from_error(&err)),
        Err(payload) => Executed::Panicked {
            message: panic_message(payload.as_ref()),
            location: PANIC_LOCATION.with(|cell| cell.borrow_mut().take()),
        },
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any> (a panic payload that is not a string)".to_owned()
    }
}
