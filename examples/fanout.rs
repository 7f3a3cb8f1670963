//! fanout: 1,000 calls at a concurrency of 50 on the embedded default
//! (child processes of this binary), with a progress bar on a terminal and
//! a few failing items.
//!
//! ```text
//! cargo run --example fanout
//! ```
//!
//! It shows the two ways to fan out: `map`, a stream of `(index, result)`
//! pairs where each call fails or succeeds on its own, and `try_map`,
//! which gives back every result or stops at the first failure and cancels
//! the calls still running; then retries, for calls whose execution is lost
//! (here: killed by SIGKILL, as by an OOM killer or a lost node).
//!
//! Each fan-out with progress on prints a summary of where its time went
//! when it ends; `HYPE_TIMELINE=timeline.json` also writes each one's
//! timeline (the first to `timeline.json`, the next to `timeline-2.json`,
//! …), which Perfetto opens and `hype timeline` draws.

use futures::StreamExt as _;
use hype::{RunEnvironment, Submitter};

/// The number of steps the Collatz sequence of `n` takes to reach 1.
/// Multiples of 97 are refused with a typed error; 666 panics.
#[hype::remote]
fn collatz_steps(n: u64) -> Result<u32, String> {
    if n == 666 {
        panic!("666 is not a number this function will touch");
    }
    if n.is_multiple_of(97) {
        return Err(format!("{n} is a multiple of 97"));
    }
    let (mut x, mut steps) = (n.max(1), 0);
    while x != 1 {
        x = if x.is_multiple_of(2) {
            x / 2
        } else {
            3 * x + 1
        };
        steps += 1;
    }
    Ok(steps)
}

/// Returns `n`, but the first time it runs for `n` (no marker file in
/// `dir` yet) its process is killed with SIGKILL before it can answer.
#[hype::remote]
fn lost_once(n: u64, dir: String) -> u64 {
    let marker = std::path::Path::new(&dir).join(n.to_string());
    if std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(marker)
        .is_ok()
    {
        // SAFETY: kill(2) of this process; no memory is involved.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    n
}

#[hype::main]
async fn main() -> anyhow::Result<()> {
    let submitter = Submitter::default_submitter().await?;
    let env = RunEnvironment::local();

    // map: every call gets its own result, in input order.
    let mut results = submitter
        .map((1..=1_000).map(collatz_steps), &env)
        .concurrency(50);
    let (mut longest, mut refused, mut failed) = ((0, 0), Vec::new(), Vec::new());
    while let Some((index, result)) = results.next().await {
        let n = index as u64 + 1;
        match result {
            Ok(Ok(steps)) if steps > longest.1 => longest = (n, steps),
            Ok(Ok(_)) => {}
            Ok(Err(reason)) => refused.push(reason),
            Err(err) => failed.push(format!("{n}: {err}")),
        }
    }
    println!(
        "map: 1000 calls; the longest sequence starts at {} ({} steps); {} refused (typed errors), {} failed",
        longest.0,
        longest.1,
        refused.len(),
        failed.len()
    );
    for failure in &failed {
        println!("  failed: {failure}");
    }
    // At its end a map prints a summary on stderr (calls done, failed and
    // retried, the wall time, p50, p95 and max of each phase, the slowest
    // calls); code reads the same from `summary()`.
    if let Some(summary) = results.summary() {
        println!(
            "map summary: {} done, {} failed, {} retried; the function took {:?} at most",
            summary.done(),
            summary.failed(),
            summary.retried(),
            summary.max(hype::Phase::Function).unwrap_or_default()
        );
    }

    // try_map: all results or the first failure; here all succeed.
    let steps = submitter
        .try_map((1..=96).map(collatz_steps), &env)
        .concurrency(50)
        .await?;
    let total: u32 = steps.iter().map(|s| s.as_ref().copied().unwrap_or(0)).sum();
    println!("try_map: 96 calls, {total} steps in all");

    // try_map stops at the panic of 666 and cancels the calls in flight.
    match submitter
        .try_map((600..=700).map(collatz_steps), &env)
        .concurrency(50)
        .progress(false)
        .await
    {
        Ok(_) => println!("try_map: 600..=700 all succeeded (unexpected)"),
        Err(err) => println!("try_map: 600..=700 stopped at the first failure: {err}"),
    }

    // Retries: each of these calls is killed once; with_retries runs it
    // again as a new execution, after a short backoff.
    let dir = std::env::temp_dir().join(format!("hype-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let marker_dir = dir.display().to_string();
    let retried = env
        .clone()
        .with_retries(2)
        .with_retry_backoff(std::time::Duration::from_millis(100));
    let back = submitter
        .try_map((1..=20).map(|n| lost_once(n, marker_dir.clone())), &retried)
        .progress(false)
        .await;
    std::fs::remove_dir_all(&dir)?;
    println!(
        "retries: 20 calls, each killed once, {} came back after a retry",
        back?.len()
    );
    Ok(())
}
