//! The local round trip of a trivial remote call, against spawning the same
//! binary doing nothing, in the same run.
//!
//! `cargo bench --bench local_round_trip` (add `-- --quick` for fewer samples).
//! Target: median round trip at most 2x the bare spawn.

mod measure;

use std::time::Instant;

use hype::{LocalCluster, RunEnvironment, Submitter};
use measure::{interleave, quick, ratio, rounds_text, verdict};

/// The trivial remote call.
#[hype::remote]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn main() {
    hype::dispatch_if_hype_run();
    if std::env::args().any(|a| a == "--noop") {
        return;
    }
    hype_tests::link();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let exe = std::env::current_exe().expect("current exe");
    let submitter = Submitter::builder(LocalCluster::new().program(&exe))
        .build()
        .await
        .expect("submitter");
    let env = RunEnvironment::local();
    let (warmup, samples) = if quick() { (5, 40) } else { (20, 300) };

    let [spawn, call] = interleave(
        [
            "bare spawn of the binary (--noop)",
            "remote call round trip (local runner)",
        ],
        warmup,
        samples,
        async |turn| {
            let start = Instant::now();
            if turn.side == 0 {
                let status = tokio::process::Command::new(&exe)
                    .arg("--noop")
                    .status()
                    .await
                    .expect("spawn");
                let took = start.elapsed();
                assert!(status.success());
                took
            } else {
                let i = turn.round as u64;
                let sum = submitter.run(add(i, 1), &env).await.expect("call");
                let took = start.elapsed();
                assert_eq!(sum, i + 1);
                took
            }
        },
    )
    .await;
    println!("local round trip ({})", rounds_text(2, warmup, samples));
    println!("  {}", spawn.line());
    println!("  {}", call.line());
    let ratio = ratio(&call, &spawn);
    println!("  ratio round trip / bare spawn (medians): {ratio:.2}x (target <= 2x)");
    verdict(
        ratio <= 2.0,
        &format!("local round trip {ratio:.2}x the bare spawn (target <= 2x)"),
    );
}
