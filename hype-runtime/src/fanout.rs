//! Fan-out: many calls of one function through one submitter, a bounded
//! number at a time ([`Submitter::map`], [`Submitter::try_map`]).
//!
//! Calls are taken from the caller's iterator, encoded and submitted only
//! as slots free up, so a queue of 100,000 calls holds 100,000 argument
//! values (the caller's) but only `concurrency` encoded envelopes. Results
//! come back paired with their input index, in input order by default:
//! finished results wait for the earlier ones in a window of
//! [`REORDER_WINDOW`] times the concurrency, so one slow call holds back
//! at most that many (and memory stays bounded) rather than all of them.
//!
//! Dropping a fan-out cancels the calls in flight: each call's execution
//! is stopped and removed, as for a dropped [`Submitter::run`].
//!
//! When it ends, a fan-out sums up its calls' phases (`report`: a block on
//! stderr with progress on, a `tracing` event without) and writes its
//! timeline when asked ([`Map::timeline`], `HYPE_TIMELINE`).

mod progress;
mod report;

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::{FuturesUnordered, Stream, StreamExt as _};

use self::progress::Progress;
use self::report::Report;
use crate::environment::RunEnvironment;
use crate::error::Error;
use crate::logs::LogMode;
use crate::phases::{Phases, Summary};
use crate::remote::{Call, RemoteFn};
use crate::submitter::Submitter;

/// How many calls a fan-out runs at once unless told otherwise. Each call
/// costs a Kubernetes API server two writes (create, delete) and a share
/// of one watch; 32 at once stays far below an API server's default
/// limit of in-flight mutating requests (200) even when pods are short,
/// while keeping a cluster's nodes busy for calls of a few seconds or more.
/// Raise it with [`Map::concurrency`] for larger clusters.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// In input order, results may run ahead of the oldest unfinished call by
/// at most this many times the concurrency before new calls wait.
pub const REORDER_WINDOW: usize = 4;

/// One call in flight: its input index, its result and its phases.
type Running<T> =
    Pin<Box<dyn Future<Output = (usize, Result<T, Error>, Option<Arc<Phases>>)> + Send>>;

/// Options shared by [`Map`] and [`TryMap`].
#[derive(Debug, Clone)]
struct Options {
    concurrency: usize,
    ordered: bool,
    progress: bool,
    timeline: Option<std::path::PathBuf>,
}

/// A fan-out of calls of `A` (from [`Submitter::map`]): a [`Stream`] of
/// `(input index, result)` pairs, one per call, in input order unless
/// [`Map::unordered`]. Nothing runs until it is polled; options set after
/// the first poll have no effect.
///
/// Any iterator of calls works that is [`Send`]; it is never pinned.
#[must_use = "a Map runs nothing until it is polled as a Stream"]
pub struct Map<A: RemoteFn, I> {
    submitter: Submitter,
    env: Arc<RunEnvironment>,
    // Boxed, so a Map is Unpin whatever the iterator (`next` needs no pin).
    calls: Box<std::iter::Fuse<I>>,
    options: Options,
    // Boxed, so a Map is Unpin whatever the result type.
    state: Option<Box<State<A::Output>>>,
}

/// What a [`Map`] holds once it has started.
struct State<T> {
    in_flight: FuturesUnordered<Running<T>>,
    /// Finished results waiting for earlier ones (in input order).
    held: BTreeMap<usize, Result<T, Error>>,
    /// The index the next call taken from the iterator gets.
    next_index: usize,
    /// The index to yield next (in input order).
    next_yield: usize,
    exhausted: bool,
    progress: Progress,
    /// When the fan-out began: its calls wait for a slot from then.
    began: std::time::Instant,
    /// The calls' phases, summed up (and kept for the timeline) at the end.
    report: Report,
}

impl Submitter {
    /// Runs every call in `calls` in `env`, at most
    /// [`DEFAULT_CONCURRENCY`] at once ([`Map::concurrency`] to change
    /// it), and streams back `(index, result)` pairs in input order
    /// ([`Map::unordered`]: as they finish). A progress bar shows on a
    /// terminal ([`Map::progress`]). Each call fails or succeeds on its
    /// own; [`Submitter::try_map`] stops at the first error instead.
    ///
    /// ```no_run
    /// # async fn demo(submitter: hype_runtime::Submitter) {
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct SquareArgs { x: u64 }
    /// # impl hype_runtime::RemoteFn for SquareArgs {
    /// #     type Output = u64; const ID: &'static str = "demo::square"; const SIGNATURE: u64 = 1;
    /// #     fn invoke(self) -> hype_runtime::Invoke<u64> { hype_runtime::Invoke::Ready(self.x * self.x) }
    /// # }
    /// # fn square(x: u64) -> hype_runtime::Call<SquareArgs> { hype_runtime::Call::new(SquareArgs { x }) }
    /// use futures::StreamExt as _;
    ///
    /// // #[hype::remote]
    /// // fn square(x: u64) -> u64 { x * x }
    ///
    /// let env = hype_runtime::RunEnvironment::local();
    /// let mut results = submitter.map((0..100).map(square), &env).concurrency(10);
    /// while let Some((index, result)) = results.next().await {
    ///     match result {
    ///         Ok(value) => println!("{index}: {value}"),
    ///         Err(err) => eprintln!("{index} failed: {err}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn map<A, I>(&self, calls: I, env: &RunEnvironment) -> Map<A, I::IntoIter>
    where
        A: RemoteFn,
        I: IntoIterator<Item = Call<A>>,
        I::IntoIter: Send,
    {
        Map {
            submitter: self.clone(),
            env: Arc::new(env.clone()),
            calls: Box::new(calls.into_iter().fuse()),
            options: Options {
                concurrency: DEFAULT_CONCURRENCY,
                ordered: true,
                progress: true,
                timeline: None,
            },
            state: None,
        }
    }

    /// Runs every call in `calls` in `env` as [`Submitter::map`] does, and
    /// gives back all results in input order, or the first error. On that
    /// error it stops: no further call starts, and the calls in flight are
    /// cancelled, their executions stopped and removed (in the background;
    /// [`Submitter::close`] waits for that). Await it:
    ///
    /// ```no_run
    /// # async fn demo(submitter: hype_runtime::Submitter) -> Result<(), hype_runtime::Error> {
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct SquareArgs { x: u64 }
    /// # impl hype_runtime::RemoteFn for SquareArgs {
    /// #     type Output = u64; const ID: &'static str = "demo::square"; const SIGNATURE: u64 = 1;
    /// #     fn invoke(self) -> hype_runtime::Invoke<u64> { hype_runtime::Invoke::Ready(self.x * self.x) }
    /// # }
    /// # fn square(x: u64) -> hype_runtime::Call<SquareArgs> { hype_runtime::Call::new(SquareArgs { x }) }
    /// let env = hype_runtime::RunEnvironment::local();
    /// let squares: Vec<u64> = submitter.try_map((0..100).map(square), &env).await?;
    /// # Ok(()) }
    /// ```
    pub fn try_map<A, I>(&self, calls: I, env: &RunEnvironment) -> TryMap<A, I::IntoIter>
    where
        A: RemoteFn,
        I: IntoIterator<Item = Call<A>>,
        I::IntoIter: Send,
    {
        // Unordered inside: an error stops the fan-out when it arrives,
        // not when the calls before it have finished. The Vec is put in
        // input order by index.
        TryMap {
            map: self.map(calls, env).unordered(),
        }
    }
}

impl<A: RemoteFn, I> Map<A, I> {
    /// Runs at most `n` calls at once (default [`DEFAULT_CONCURRENCY`]).
    /// Zero is refused: every call then fails with [`Error::Config`].
    pub fn concurrency(mut self, n: usize) -> Self {
        self.options.concurrency = n;
        self
    }

    /// Yields results as they finish instead of in input order.
    pub fn unordered(mut self) -> Self {
        self.options.ordered = false;
        self
    }

    /// Shows progress (default): a bar on a terminal, else `tracing`
    /// events at most every few seconds, and the summary of the calls'
    /// phases on stderr at the end. `false` turns the progress off and
    /// makes the summary a `tracing` event at info level.
    pub fn progress(mut self, show: bool) -> Self {
        self.options.progress = show;
        self
    }

    /// Writes the fan-out's timeline to `path` when it ends (instead of
    /// `HYPE_TIMELINE`'s): a Chrome trace-event JSON file, one track per
    /// call and one slice per phase of each attempt, that Perfetto and
    /// `chrome://tracing` open.
    pub fn timeline(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.options.timeline = Some(path.into());
        self
    }

    /// The summary of the calls' phases (as printed at the end), once the
    /// fan-out has ended; `None` before.
    pub fn summary(&self) -> Option<&Summary> {
        self.state.as_ref().and_then(|state| state.report.summary())
    }
}

impl<A, I> Stream for Map<A, I>
where
    A: RemoteFn,
    I: Iterator<Item = Call<A>> + Send,
{
    type Item = (usize, Result<A::Output, Error>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let options = &this.options;
        let state = this.state.get_or_insert_with(|| {
            let (low, high) = this.calls.size_hint();
            let total = (Some(low) == high).then_some(low as u64);
            let began = std::time::Instant::now();
            Box::new(State {
                began,
                report: Report::new(A::ID, began, options.progress, options.timeline.clone()),
                in_flight: FuturesUnordered::new(),
                held: BTreeMap::new(),
                next_index: 0,
                next_yield: 0,
                exhausted: false,
                progress: Progress::new(options.progress, A::ID, total),
            })
        });
        let window = options.concurrency.max(1).saturating_mul(REORDER_WINDOW);
        loop {
            // Start calls while there are free slots (and, in input order,
            // while the results ahead of the oldest unfinished call fit
            // the window).
            while !state.exhausted
                && state.in_flight.len() < options.concurrency.max(1)
                && (!options.ordered || state.next_index < state.next_yield + window)
            {
                let Some(call) = this.calls.next() else {
                    state.exhausted = true;
                    break;
                };
                let index = state.next_index;
                state.next_index += 1;
                state.progress.started();
                if options.concurrency == 0 {
                    let refused = Error::Config {
                        message: "a fan-out's concurrency must be at least 1, not 0".to_owned(),
                    };
                    state
                        .in_flight
                        .push(Box::pin(async move { (index, Err(refused), None) }));
                    continue;
                }
                let submitter = this.submitter.clone();
                let env = Arc::clone(&this.env);
                let began = state.began;
                state.in_flight.push(Box::pin(async move {
                    let (result, phases) = submitter
                        .run_recorded(call, &env, LogMode::OnFailure, Some(began))
                        .await;
                    (index, result, phases)
                }));
            }
            if options.ordered
                && let Some(result) = state.held.remove(&state.next_yield)
            {
                let index = state.next_yield;
                state.next_yield += 1;
                return Poll::Ready(Some((index, result)));
            }
            match state.in_flight.poll_next_unpin(cx) {
                Poll::Ready(Some((index, result, phases))) => {
                    state.progress.finished(result.is_ok());
                    state.report.add(index, result.is_ok(), phases);
                    if !options.ordered {
                        return Poll::Ready(Some((index, result)));
                    }
                    state.held.insert(index, result);
                }
                Poll::Ready(None) if state.exhausted && state.held.is_empty() => {
                    state.progress.finish();
                    state.report.end();
                    return Poll::Ready(None);
                }
                // Nothing in flight: start more (or yield what is held).
                Poll::Ready(None) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A fan-out that stops at the first error (from [`Submitter::try_map`]).
/// Await it for `Result<Vec<A::Output>, Error>`: every result in input
/// order, or the first error to arrive.
#[must_use = "a TryMap runs nothing until it is awaited"]
pub struct TryMap<A: RemoteFn, I> {
    map: Map<A, I>,
}

impl<A: RemoteFn, I> TryMap<A, I> {
    /// As [`Map::concurrency`].
    pub fn concurrency(self, n: usize) -> Self {
        TryMap {
            map: self.map.concurrency(n),
        }
    }

    /// Accepted for symmetry with [`Map::unordered`], and what a `TryMap`
    /// always does: it takes results as they finish, so an error stops it
    /// as soon as it arrives; the returned `Vec` is in input order either
    /// way.
    pub fn unordered(self) -> Self {
        self
    }

    /// As [`Map::progress`].
    pub fn progress(self, show: bool) -> Self {
        TryMap {
            map: self.map.progress(show),
        }
    }

    /// As [`Map::timeline`]: written when it ends, also when it stops at
    /// an error (with the calls that had ended).
    pub fn timeline(self, path: impl Into<std::path::PathBuf>) -> Self {
        TryMap {
            map: self.map.timeline(path),
        }
    }
}

impl<A, I> IntoFuture for TryMap<A, I>
where
    A: RemoteFn,
    I: Iterator<Item = Call<A>> + Send,
{
    type Output = Result<Vec<A::Output>, Error>;
    type IntoFuture = TryMapFuture<A, I>;

    fn into_future(self) -> Self::IntoFuture {
        TryMapFuture {
            map: Some(self.map),
            results: Box::default(),
        }
    }
}

/// The future of an awaited [`TryMap`].
#[must_use = "futures do nothing unless awaited"]
pub struct TryMapFuture<A: RemoteFn, I> {
    map: Option<Map<A, I>>,
    // Boxed, so the future is Unpin whatever the result type (a `Vec<T>`
    // is Unpin only when `T` is).
    #[allow(clippy::box_collection)]
    results: Box<Vec<Option<A::Output>>>,
}

impl<A, I> Future for TryMapFuture<A, I>
where
    A: RemoteFn,
    I: Iterator<Item = Call<A>> + Send,
{
    type Output = Result<Vec<A::Output>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(map) = this.map.as_mut() else {
            return Poll::Ready(Err(Error::Config {
                message: "a finished try_map was polled again".to_owned(),
            }));
        };
        loop {
            match map.poll_next_unpin(cx) {
                Poll::Ready(Some((index, Ok(value)))) => {
                    if this.results.len() <= index {
                        this.results.resize_with(index + 1, || None);
                    }
                    this.results[index] = Some(value);
                }
                Poll::Ready(Some((index, Err(err)))) => {
                    tracing::debug!(function = A::ID, index, %err, "try_map stops at a failed call");
                    // Dropping the map cancels the calls in flight.
                    if let Some(mut map) = this.map.take()
                        && let Some(state) = map.state.as_mut()
                    {
                        state.progress.abandon(index);
                        state.report.end();
                    }
                    return Poll::Ready(Err(err));
                }
                Poll::Ready(None) => {
                    this.map = None;
                    let results = std::mem::take(&mut *this.results);
                    return Poll::Ready(Ok(results.into_iter().flatten().collect()));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
