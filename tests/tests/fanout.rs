//! Fan-out (`Submitter::map`, `Submitter::try_map`) on every backend: the
//! local runner, the Kubernetes runner against the test double (pods as
//! processes, and as Docker containers), and the Docker runner.
//!
//! Each call of `fanout::timed` reports when it ran by the machine's clock,
//! which every backend here shares, so the number of executions alive at
//! once is counted from what the calls themselves saw.
//!
//! Without a Docker engine the Docker variants skip with a loud message,
//! unless `HYPE_REQUIRE_DOCKER=1` (as `.ci/run` sets), which makes them
//! fail.

mod common;

use std::future::IntoFuture as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::backend::{Backend, Setup};
use futures::StreamExt as _;
use hype::Error;
use hype_tests::fanout::{self, Ran};

/// `timed` calls: `millis(index)` long, failing where `fail(index)`.
fn calls(
    s: &Setup,
    n: u64,
    millis: impl Fn(u64) -> u64,
    fail: impl Fn(u64) -> bool,
) -> Vec<hype::Call<fanout::TimedArgs>> {
    let dir = s
        .pids
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    (0..n)
        .map(|i| fanout::timed(i, millis(i), fail(i), dir.clone()))
        .collect()
}

on_every_backend!(
    results_come_back_in_input_order_with_the_cap_held,
    unordered_yields_every_result_once_as_it_finishes,
    try_map_stops_at_the_first_error_and_leaves_nothing_running,
);

/// A bound on a whole fan-out, so a hang fails the test instead of CI.
const BOUND: Duration = Duration::from_secs(180);

async fn results_come_back_in_input_order_with_the_cap_held(backend: Backend) {
    let Some(s) = Setup::new(backend, "results_come_back_in_input_order").await else {
        return;
    };
    const N: u64 = 9;
    const CAP: usize = 3;
    // Later calls are shorter, so they finish before earlier ones and the
    // order has to be restored.
    let calls = calls(&s, N, |i| 300 + (N - i) * 40, |_| false);
    let results: Vec<(usize, Result<Ran, Error>)> = tokio::time::timeout(
        BOUND,
        s.submitter
            .map(calls, &s.env)
            .concurrency(CAP)
            .progress(false)
            .collect(),
    )
    .await
    .expect("the fan-out ends within its bound");
    let indices: Vec<usize> = results.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, (0..N as usize).collect::<Vec<_>>());
    let ran: Vec<Ran> = results
        .into_iter()
        .map(|(i, r)| {
            let ran = r.unwrap_or_else(|err| panic!("call {i} failed: {err}"));
            assert_eq!(ran.index, i as u64, "result {i} is its own call's");
            ran
        })
        .collect();
    let most = fanout::max_overlap(&ran);
    assert!(
        most <= CAP,
        "{most} calls ran at once, over the cap of {CAP}"
    );
    assert!(most >= 2, "the calls never overlapped: they ran one by one");
    s.finish().await;
}

async fn unordered_yields_every_result_once_as_it_finishes(backend: Backend) {
    let Some(s) = Setup::new(backend, "unordered_yields_every_result_once").await else {
        return;
    };
    const N: u64 = 4;
    // Index 0 sleeps longest by far: it comes last.
    let calls = calls(&s, N, |i| if i == 0 { 4_000 } else { 200 }, |_| false);
    let mut results = s
        .submitter
        .map(calls, &s.env)
        .concurrency(N as usize)
        .unordered()
        .progress(false);
    let mut seen = Vec::new();
    tokio::time::timeout(BOUND, async {
        while let Some((index, result)) = results.next().await {
            let ran = result.unwrap_or_else(|err| panic!("call {index} failed: {err}"));
            assert_eq!(ran.index, index as u64);
            seen.push(index);
        }
    })
    .await
    .expect("the fan-out ends within its bound");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, (0..N as usize).collect::<Vec<_>>(), "each once");
    assert_eq!(seen.last(), Some(&0), "the slowest came last: {seen:?}");
    drop(results);
    s.finish().await;
}

async fn try_map_stops_at_the_first_error_and_leaves_nothing_running(backend: Backend) {
    let Some(s) = Setup::new(backend, "try_map_stops_at_the_first_error").await else {
        return;
    };
    // Call 1 fails after a moment; the others would run for minutes.
    let calls = calls(&s, 12, |i| if i == 1 { 500 } else { 300_000 }, |i| i == 1);
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(
        BOUND,
        s.submitter
            .try_map(calls, &s.env)
            .concurrency(4)
            .progress(false)
            .into_future(),
    )
    .await
    .expect("try_map ends within its bound");
    match result {
        Err(Error::RemotePanic { message, .. }) => {
            assert!(message.contains("call 1 fails as asked"), "{message}");
        }
        other => panic!("expected call 1's panic, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "try_map waited for the long calls"
    );
    // The three long calls in flight were cancelled; none of the rest
    // started.
    s.assert_nothing_left(Duration::from_secs(30)).await;
    if let Some(pids) = &s.pids {
        let started = std::fs::read_dir(pids).unwrap().count();
        assert!(started <= 4, "{started} calls started, over the cap of 4");
    }
    s.finish().await;
}

#[tokio::test]
async fn a_concurrency_of_zero_is_refused_for_every_call() {
    let s = Setup::new(Backend::Local, "zero").await.unwrap();
    let results: Vec<_> = s
        .submitter
        .map(calls(&s, 3, |_| 0, |_| false), &s.env)
        .concurrency(0)
        .progress(false)
        .collect()
        .await;
    assert_eq!(results.len(), 3);
    for (_, result) in results {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::Config { message, .. } if message.contains("concurrency")),
            "{err}"
        );
    }
    let err = s
        .submitter
        .try_map(calls(&s, 3, |_| 0, |_| false), &s.env)
        .concurrency(0)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
    assert_eq!(
        std::fs::read_dir(s.pids.as_ref().unwrap()).unwrap().count(),
        0,
        "nothing ran"
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_taken_from_the_iterator_only_as_slots_free_up() {
    let s = Setup::new(Backend::Local, "lazy").await.unwrap();
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&taken);
    // 100,000 calls, none of which exists before the fan-out asks for it.
    let calls = (0..100_000u64).map(move |i| {
        counter.fetch_add(1, Ordering::SeqCst);
        fanout::timed(i, 0, false, String::new())
    });
    const CAP: usize = 2;
    let mut results = s
        .submitter
        .map(calls, &s.env)
        .concurrency(CAP)
        .progress(false);
    for expected in 0..3 {
        let (index, result) = tokio::time::timeout(BOUND, results.next())
            .await
            .expect("bounded")
            .expect("a result");
        assert_eq!(index, expected);
        result.unwrap();
    }
    let pulled = taken.load(Ordering::SeqCst);
    // Three results out, at most CAP in flight, and in input order at most
    // the reorder window ahead.
    assert!(
        pulled <= 3 + CAP * hype::fanout::REORDER_WINDOW,
        "{pulled} calls taken for 3 results"
    );
    drop(results);
    s.finish().await;
}

/// An iterator that is not `Unpin` (it holds a `PhantomPinned`).
struct Pinned<I> {
    calls: I,
    _pinned: std::marker::PhantomPinned,
}

impl<I: Iterator> Iterator for Pinned<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        self.calls.next()
    }
}

/// `map` and `try_map` take any `Send` iterator: one that is not `Unpin`
/// needs no boxing (the fan-out never pins it), and the fan-out can be
/// spawned on another task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iterator_that_is_not_unpin_needs_no_box() {
    let s = Setup::new(Backend::Local, "not_unpin").await.unwrap();
    let pinned = |n| Pinned {
        calls: calls(&s, n, |_| 0, |_| false).into_iter(),
        _pinned: std::marker::PhantomPinned,
    };
    let map = s.submitter.map(pinned(5), &s.env).progress(false);
    let results: Vec<_> = tokio::time::timeout(BOUND, tokio::spawn(map.collect::<Vec<_>>()))
        .await
        .expect("bounded")
        .expect("the task ran");
    assert_eq!(results.len(), 5);
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    let all = tokio::time::timeout(
        BOUND,
        s.submitter
            .try_map(pinned(3), &s.env)
            .progress(false)
            .into_future(),
    )
    .await
    .expect("bounded")
    .unwrap();
    assert_eq!(all.len(), 3);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_returns_every_result_in_input_order() {
    let s = Setup::new(Backend::Local, "try_map_ok").await.unwrap();
    let calls = calls(&s, 20, |i| (20 - i) * 5, |_| false);
    let ran = tokio::time::timeout(
        BOUND,
        s.submitter
            .try_map(calls, &s.env)
            .concurrency(8)
            .unordered()
            .progress(false)
            .into_future(),
    )
    .await
    .expect("bounded")
    .expect("every call succeeds");
    let indices: Vec<u64> = ran.iter().map(|r| r.index).collect();
    assert_eq!(indices, (0..20).collect::<Vec<_>>());
    s.finish().await;
}
