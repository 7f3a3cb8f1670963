//! The local round trip of a trivial remote call, against spawning the same
//! binary doing nothing, in the same run.
//!
//! `cargo bench --bench local_round_trip` (add `-- --quick` for fewer samples).
//! Target: median round trip at most 2x the bare spawn.

mod measure;

use std::time::Instant;

use hype::{LocalCluster, RunEnvironment, Submitter};
use measure::{Samples, quick, ratio};

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

    let mut spawn = Samples::new("bare spawn of the binary (--noop)");
    let mut call = Samples::new("remote call round trip (local runner)");
    for i in 0..warmup + samples {
        let start = Instant::now();
        let status = tokio::process::Command::new(&exe)
            .arg("--noop")
            .status()
            .await
            .expect("spawn");
        let spawn_time = start.elapsed();
        assert!(status.success());

        let start = Instant::now();
        let sum = submitter.run(add(i, 1), &env).await.expect("call");
        let call_time = start.elapsed();
        assert_eq!(sum, i + 1);

        if i >= warmup {
            spawn.times.push(spawn_time);
            call.times.push(call_time);
        }
    }
    println!("local round trip ({samples} interleaved samples after {warmup} warm-up)");
    println!("  {}", spawn.line());
    println!("  {}", call.line());
    println!(
        "  ratio round trip / bare spawn (medians): {:.2}x (target <= 2x)",
        ratio(&call, &spawn)
    );
}
