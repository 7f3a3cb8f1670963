//! Remote functions as values: the [`RemoteFn`] trait that `#[hype::remote]`
//! implements, and the lazy [`Call`] a remote function returns.
//!
//! Calling a remote function runs nothing. It packs the arguments into the
//! generated `{Name}Args` struct and wraps them in a [`Call`]; the call runs
//! where it is sent (`Call::run_on_cluster`, defined with the submitter;
//! `Submitter::run`; or [`Call::run_here`]). This module imports nothing of
//! the submitter.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::wire;

/// A function that can run somewhere else: implemented by `#[hype::remote]`
/// on the generated `{Name}Args` struct, never by hand.
///
/// The implementing type is the function's arguments; [`RemoteFn::invoke`]
/// consumes them and runs the user's body.
pub trait RemoteFn: Serialize + DeserializeOwned + Send + 'static {
    /// The function's return type. A `Result<T, E>` travels as a value, so a
    /// user error comes back typed.
    type Output: Wire;

    /// The stable ID: `module_path::name`, or the `name = "…"` override.
    const ID: &'static str;

    /// FNV-1a 64 hash of the normalised argument names and types, in
    /// order, and the return type (`docs/protocol.md`, section 5). A binary whose signature for [`RemoteFn::ID`]
    /// differs refuses the call instead of misreading its bytes.
    const SIGNATURE: u64;

    /// The defaults of `#[hype::remote(cpu = …, timeout = …, …)]`, merged
    /// under a call's environment where the call is run: the environment
    /// wins key by key ([`FunctionDefaults`](crate::FunctionDefaults)).
    const DEFAULTS: crate::FunctionDefaults = crate::FunctionDefaults::NONE;

    /// Runs the user's body with these arguments.
    fn invoke(self) -> Invoke<Self::Output>;
}

/// A type that can cross the wire as a remote function's argument or
/// result: `Serialize + DeserializeOwned + Send + 'static`, implemented for
/// every such type.
///
/// `#[hype::remote]` checks it for every argument and the return type,
/// spanned on your tokens, so a type without serde support is reported
/// where it is written.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross the wire: #[hype::remote] arguments and return types must be `Serialize + DeserializeOwned + Send + 'static`",
    label = "not serialisable by hype",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it, or use an owned type that has them"
)]
pub trait Wire: Serialize + DeserializeOwned + Send + 'static {}

impl<T> Wire for T where T: Serialize + DeserializeOwned + Send + 'static {}

/// What running a remote function's body gives: a value (plain `fn`) or a
/// future to drive (`async fn`).
pub enum Invoke<T> {
    /// The body of a plain `fn` ran and returned this value.
    Ready(T),
    /// The body of an `async fn`, still to be awaited.
    Pending(Pin<Box<dyn Future<Output = T> + Send + 'static>>),
}

impl<T> Invoke<T> {
    /// Drives the body to completion on the current async context.
    pub async fn finish(self) -> T {
        match self {
            Invoke::Ready(value) => value,
            Invoke::Pending(future) => future.await,
        }
    }
}

impl<T> fmt::Debug for Invoke<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invoke::Ready(_) => f.write_str("Invoke::Ready(..)"),
            Invoke::Pending(_) => f.write_str("Invoke::Pending(..)"),
        }
    }
}

/// A call of a remote function with its arguments, not yet run: the `HFn`
/// of spotify/hype.
///
/// ```no_run
/// # async fn demo() -> Result<(), hype_runtime::Error> {
/// # #[derive(serde::Serialize, serde::Deserialize)] struct WordCountArgs { text: String }
/// # impl hype_runtime::RemoteFn for WordCountArgs {
/// #     type Output = usize; const ID: &'static str = "demo::word_count"; const SIGNATURE: u64 = 1;
/// #     fn invoke(self) -> hype_runtime::Invoke<usize> { hype_runtime::Invoke::Ready(self.text.split_whitespace().count()) }
/// # }
/// # fn word_count(text: String) -> hype_runtime::Call<WordCountArgs> { hype_runtime::Call::new(WordCountArgs { text }) }
/// use hype_runtime::RunEnvironment;
/// let n = word_count("a b c".into()).run_on_cluster(&RunEnvironment::local()).await?;
/// assert_eq!(n, 3);
/// # Ok(()) }
/// ```
#[must_use = "a Call does nothing until it is run: use .run_on_cluster(&env).await, submitter.run(call, &env).await or .run_here().await"]
pub struct Call<A: RemoteFn> {
    args: A,
}

impl<A: RemoteFn> Call<A> {
    /// Wraps arguments into a call. Generated code calls this.
    pub fn new(args: A) -> Self {
        Call { args }
    }

    /// The function's stable ID.
    pub fn id(&self) -> &'static str {
        A::ID
    }

    /// The arguments this call carries.
    pub fn args(&self) -> &A {
        &self.args
    }

    /// Unwraps the arguments.
    pub fn into_args(self) -> A {
        self.args
    }

    /// Runs the call in this process, after the same serialisation round
    /// trip its arguments and result make on the wire: what a unit test of
    /// a remote function wants. A panic in the body propagates as a panic.
    pub async fn run_here(self) -> Result<A::Output, Error> {
        let bytes = wire::encode_value(A::ID, "arguments", &self.args)?;
        let args: A = wire::decode_value(A::ID, "arguments", &bytes)?;
        let output = args.invoke().finish().await;
        let bytes = wire::encode_value(A::ID, "result", &output)?;
        wire::decode_value(A::ID, "result", &bytes)
    }
}

impl<A: RemoteFn + fmt::Debug> fmt::Debug for Call<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("id", &A::ID)
            .field("args", &self.args)
            .finish()
    }
}

impl<A: RemoteFn + Clone> Clone for Call<A> {
    fn clone(&self) -> Self {
        Call {
            args: self.args.clone(),
        }
    }
}
