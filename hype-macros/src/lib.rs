//! Procedural macros of hype: `#[hype::remote]` and `#[hype::main]`.
//!
//! Use them through the `hype` crate (`#[hype::remote]`), which also provides
//! the runtime items the generated code names through `::hype::__private`
//! (or, under `crate = "PATH"`, `PATH::__private`). This crate has no API of
//! its own beyond the two attributes.

// The work flows through the modules in order: `args` parses the attributes'
// own arguments, `ast` validates the item into a model (running the signature
// and type checks of `check`), and `expand` generates code from that model.
// Every problem on the way is collected in a `ctxt::Ctxt`; `tokens` prints
// tokens for the messages. Modules only use modules further down:
// lib -> expand -> ast -> {args, check} -> ctxt, ast and check -> tokens, and
// args -> values -> quantity (the attribute's defaults).
pub(crate) mod args;
pub(crate) mod ast;
pub(crate) mod check;
pub(crate) mod ctxt;
pub(crate) mod expand;
pub(crate) mod tokens;
pub(crate) mod values;

// The runtime's quantity parser, compiled into the macro as it is: the
// attribute's `cpu` and `memory` are checked with the very grammar the
// runtime uses, without a dependency on hype-runtime (tokio, kube…) at
// build time. The parser needs only `std`.
#[path = "../../hype-runtime/src/environment/quantity.rs"]
#[allow(dead_code)]
mod quantity;

use proc_macro::TokenStream;

/// Makes a function runnable in another process, container or pod.
///
/// Put it on a free `fn` or `async fn` whose arguments and return type are
/// owned serde types (`Serialize + DeserializeOwned + Send + 'static`; a
/// missing return type means `()`). Calling the function then runs nothing:
/// it returns a `hype::Call` holding the arguments, which runs where it is
/// sent (`call.run_on_cluster(&env)`, `submitter.run(call, &env)`, or
/// `call.run_here()` in a unit test). For example:
///
/// ```text
/// /// Counts the words of a text.
/// #[hype::remote]
/// pub fn word_count(text: String) -> usize {
///     text.split_whitespace().count()
/// }
///
/// let n: usize = word_count("a b c".into()).run_on_cluster(&env).await?;
/// ```
///
/// # What it generates
///
/// For `pub fn word_count(text: String) -> usize` in module `jobs`:
///
/// - `pub fn word_count(text: String) -> hype::Call<WordCountArgs>`, keeping
///   the function's doc comments and other attributes;
/// - `pub struct WordCountArgs { pub text: String }`: the arguments, with
///   serde derives (no serde dependency needed in your crate). The name is
///   the function's name in UpperCamelCase followed by `Args`; the struct
///   and its fields have the function's visibility;
/// - an implementation of `hype::RemoteFn` for `WordCountArgs`, whose
///   `invoke` runs your body unchanged (`mut` arguments, `#[allow]`s and
///   `async` included);
/// - a registration of the function in the binary, so `hype-run` can find
///   it by ID.
///
/// Inside the body, the function's own name still means the generated
/// wrapper: calling it builds another `Call`, which is how a remote function
/// fans out sub-calls.
///
/// # Arguments
///
/// - `name = "…"`: the stable ID of the function. By default it is
///   `module_path!()` + `::` + the function name (`my_crate::jobs::word_count`),
///   which changes when the function moves; give a name to keep the ID when
///   you move or rename it. Two functions with one ID are an error when the
///   binary starts.
///
/// ```text
/// #[hype::remote(name = "jobs::word_count")]
/// fn word_count(text: String) -> usize { … }
/// ```
///
/// - `crate = "…"`: the path to the `hype` crate, for a crate that
///   re-exports hype and whose users do not depend on it themselves, as
///   `tokio::main`'s `crate` option. The generated code names `PATH::…`
///   instead of `::hype::…`. The path is resolved where the attribute is
///   written, as any path in that module: `"my_crate::hype"`,
///   `"crate::reexport::hype"`, `"::hype"` (the default).
///
/// ```text
/// // In `my_crate`: `pub use hype;`. In its users:
/// #[my_crate::hype::remote(crate = "my_crate::hype")]
/// fn word_count(text: String) -> usize { … }
/// ```
///
/// ## Per-function defaults
///
/// `cpu`, `memory`, `gpu`, `timeout`, `retries` and `spot` give the
/// function defaults for where it runs, checked at compile time:
///
/// ```text
/// #[hype::remote(cpu = "2", memory = "4Gi", gpu = "nvidia-l4:1", timeout = "10m", retries = 2, spot)]
/// fn embed(batch: Vec<String>) -> Vec<Vec<f32>> { … }
/// ```
///
/// | key | value | as the environment's |
/// |---|---|---|
/// | `cpu` | a Kubernetes quantity string, not negative (`"2"`, `"750m"`) | `with_cpu` |
/// | `memory` | a Kubernetes quantity string (`"4Gi"`) | `with_memory` |
/// | `gpu` | `"MODEL:COUNT"` or `"COUNT"`, count 1 to 16 (`"nvidia-l4:1"`, `"2"`) | `with_gpu(Gpu::nvidia(COUNT).model(MODEL))` |
/// | `timeout` | a whole number and `ms`, `s`, `m` or `h`, above zero (`"10m"`) | `with_timeout` |
/// | `retries` | a whole number (`2`) | `with_retries` |
/// | `spot` | alone, or `= true` / `= false` | `with_spot` |
///
/// Quantities are checked with the runtime's own parser. The call's
/// `RunEnvironment` wins key by key: a default applies only when the
/// environment does not set its key. The environment sets `cpu` or
/// `memory` when it has a request or a limit of it (`with_cpu`,
/// `with_request`, `with_limit`), `gpu` with `with_gpu` or a limit of
/// `nvidia.com/gpu`, and `timeout`, `retries` and `spot` when their
/// `with_*` was called (even `with_spot(false)` or `with_retries(0)`). The
/// one-hour timeout and Spot's two retries are fallbacks, not settings, so
/// the function's defaults replace them. So an environment with only
/// `with_cpu("4")` runs `embed` on 4 cpus with 4Gi of memory, one L4 GPU,
/// on Spot, a 10-minute timeout and 2 retries. `hype-run --list` prints
/// each function's defaults after its signature.
///
/// # Signature hash
///
/// Each function also gets a `SIGNATURE`: a hash of its argument names and
/// types, in order, and its return type, checked by `hype-run` so that a
/// pod running a binary built from other source refuses the call instead of
/// misreading its bytes. It is the 64-bit FNV-1a hash (offset basis
/// `0xcbf29ce484222325`, prime `0x100000001b3`) of the UTF-8 bytes of the
/// normalised text
///
/// ```text
/// "hype-sig-v2(" + arguments as "name:type" joined by "," + ")->" + return type
/// ```
///
/// where each name is as written without `mut` or `r#`, each type is its
/// tokens as written with all whitespace removed, and the return type is
/// `()` when there is none. So `fn f(a: Vec<u8>, b: String) -> Result<u64,
/// E>` has the text `hype-sig-v2(a:Vec<u8>,b:String)->Result<u64,E>`.
/// Swapping two arguments of one type changes it. Types are compared as
/// written: `String` and `std::string::String` give different signatures.
/// `hype::wire::fnv1a64` computes the same hash at run time.
///
/// # Errors
///
/// Every problem is reported at once, each on the tokens at fault, and the
/// function is still emitted unchanged so the rest of the crate keeps
/// compiling. Rejected:
///
/// - borrowed arguments or return types (`&str`, `&[u8]`, `Cow<'a, str>`, any
///   lifetime): the values travel to another process, so use owned types
///   (`String`, `Vec<u8>`);
/// - generic, lifetime and const parameters, and `where` clauses;
/// - `self` receivers: put it on a free function;
/// - `impl Trait` arguments and return types;
/// - patterns as arguments (`(a, b): (u8, u8)`, `_`, `ref x`); `mut x` is fine;
/// - `const fn`, `unsafe fn`, `extern "C" fn` and variadic functions;
/// - `#[cfg]` on an argument (put it on the function);
/// - unknown or duplicate attribute arguments, an empty `name`, a `name`
///   or `crate` that is not a string literal, and a `crate` string that is
///   not a path;
/// - a `cpu` or `memory` that is not a quantity, a `timeout` that is not a
///   duration, a `gpu` that is not `MODEL:COUNT` or `COUNT` (or a count
///   outside 1 to 16), `retries` that are not a whole number, and `spot`
///   given anything but `true` or `false`;
/// - argument and return types that are not serde types, `Send` and
///   `'static`: reported by the type checker on the type, as "cannot cross
///   the wire";
/// - in an `async fn`, a future that is not `Send`.
#[proc_macro_attribute]
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::remote(attr.into(), item.into()).into()
}

/// Makes `main` serve remote calls when the binary runs as `hype-run`.
///
/// The binary of a hype program is also the entrypoint of its containers.
/// When the process is invoked as `hype-run` (the basename of `argv[0]`, or
/// a first argument `hype-run`), `main` executes the call it was given and
/// exits with the outcome's code; otherwise your `main` runs as written.
/// `hype::dispatch_if_hype_run()` does the same for programs that prefer
/// not to use the attribute: call it first thing in `main`.
///
/// Put it on `fn main()` or `async fn main()`, with any return type. An
/// `async fn main` runs on a multi-threaded tokio runtime, as with
/// `#[tokio::main]` (use one attribute or the other, not both):
///
/// ```text
/// #[hype::main]
/// async fn main() -> anyhow::Result<()> {
///     let n = word_count("a b c".into()).run_on_cluster(&RunEnvironment::local()).await?;
///     println!("{n}");
///     Ok(())
/// }
/// ```
///
/// Under the attribute, Ctrl-C (SIGINT) and SIGTERM cancel the calls in
/// flight and close every live submitter (within 30 s), then the program
/// exits with 130 or 143; a second Ctrl-C exits at once
/// (`hype::interrupt`). `interrupts = false` leaves the signals to the
/// program.
///
/// # Arguments
///
/// - `crate = "…"`: the path to the `hype` crate, for a crate that
///   re-exports hype, as in `#[hype::remote(crate = "…")]`.
/// - `interrupts = false`: install no handling of SIGINT and SIGTERM; they
///   keep whatever the program gives them (left alone, they end it without
///   closing its submitters). hype installs no other handler in the program:
///   building a submitter or running a call installs none. Such a program
///   may still call `hype::interrupt::install()` itself later. The default
///   is `interrupts = true`.
///
/// ```text
/// #[hype::main(interrupts = false)]
/// async fn main() -> anyhow::Result<()> {
///     // This program handles Ctrl-C itself.
///     …
/// }
/// ```
///
/// `tokio::main`'s runtime options (`flavor`, `worker_threads`) are not
/// arguments: an `async fn main` always runs on the multi-threaded runtime.
///
/// # Errors
///
/// Unknown or duplicate arguments, a `crate` that is not a string holding a
/// path, and an `interrupts` that is not `true` or `false` are rejected, as
/// are a function that takes arguments (read them with `std::env::args()`)
/// or is generic.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::main(attr.into(), item.into()).into()
}
