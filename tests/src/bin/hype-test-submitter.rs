//! The submitter of the interrupt tests (`tests/tests/interrupt.rs`): a
//! `#[hype::main]` program that runs long local calls of its own remote
//! function, so the tests can kill or interrupt it and look at what is
//! left.
//!
//! - `hype-test-submitter calls DIR`: three calls of [`sleeper`], two on a
//!   submitter of its own and one through the default submitter
//!   (`run_on_cluster`); each call's process starts a grandchild `sleep`
//!   and writes `<its pid> <the sleep's pid>` to `DIR/<index>`. Call 0
//!   mounts a transient volume. The calls would take two minutes.
//! - `hype-test-submitter idle DIR`: builds a submitter (the first
//!   temporary directory of the process, which sweeps those of dead
//!   processes) and waits two minutes.
//! - `hype-test-submitter stuck DIR`: a submitter built on a
//!   current-thread runtime that nobody drives afterwards, so a close on it
//!   never ends: for the second Ctrl-C.
//! - `hype-test-submitter chatter -`: 100 local calls (8 at a time) of
//!   [`chatty`], each printing 200 lines of 100 bytes to its stdout and
//!   stderr, streamed back to this process's stderr; then prints
//!   `done <calls that returned>` on stdout. For the logs tests, which run
//!   it with its stderr closed, a broken pipe, or a pipe nobody reads.
//!
//! Each mode but `chatter` prints `ready <pid>` on stdout when it is set
//! up.

use std::time::Duration;

use hype::{LocalCluster, RunEnvironment, Submitter, VolumeRequest};

/// Starts a grandchild `sleep`, writes both PIDs to `dir/<index>`, waits for
/// the grandchild.
#[hype::remote(name = "hype_test_submitter::sleeper")]
fn sleeper(dir: String, index: u32, seconds: u64) {
    let mut child = std::process::Command::new("sleep")
        .arg(seconds.to_string())
        .spawn()
        .expect("spawn sleep");
    let path = std::path::Path::new(&dir).join(index.to_string());
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{} {}", std::process::id(), child.id())).expect("write pids");
    std::fs::rename(&tmp, &path).expect("rename pids");
    let _ = child.wait();
}

/// Prints `lines` lines of 100 bytes to stdout and as many to stderr.
#[hype::remote(name = "hype_test_submitter::chatty")]
fn chatty(lines: u32) -> u32 {
    for i in 0..lines {
        println!("out {i:06} {}", "o".repeat(89));
        eprintln!("err {i:06} {}", "e".repeat(89));
    }
    lines
}

#[hype::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: hype-test-submitter calls|idle|stuck|chatter DIR");
        std::process::exit(2);
    };
    match mode.as_str() {
        "calls" => calls(dir.clone()).await,
        "chatter" => chatter().await,
        "idle" => {
            let submitter = Submitter::builder(LocalCluster::new())
                .build()
                .await
                .expect("build a submitter");
            ready();
            tokio::time::sleep(Duration::from_secs(120)).await;
            drop(submitter);
        }
        "stuck" => {
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                let submitter = runtime
                    .block_on(Submitter::builder(LocalCluster::new()).build())
                    .expect("build a submitter");
                ready();
                // The runtime is not driven from now on.
                std::thread::sleep(Duration::from_secs(120));
                drop(submitter);
            });
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}

fn ready() {
    println!("ready {}", std::process::id());
}

async fn calls(dir: String) {
    let own = Submitter::builder(LocalCluster::new())
        .build()
        .await
        .expect("build a submitter");
    let env = RunEnvironment::local().with_timeout(Duration::from_secs(300));
    let mut tasks = Vec::new();
    // Call 0 has a transient volume.
    let with_volume = env
        .clone()
        .with_mount(VolumeRequest::new("standard", "1Gi").mount_read_write("/scratch"));
    for (index, env) in [(0, with_volume), (1, env.clone())] {
        let (own, dir) = (own.clone(), dir.clone());
        tasks.push(tokio::spawn(async move {
            own.run(sleeper(dir, index, 120), &env).await
        }));
    }
    {
        let (env, dir) = (env.clone(), dir.clone());
        tasks.push(tokio::spawn(async move {
            sleeper(dir, 2, 120).run_on_cluster(&env).await
        }));
    }
    ready();
    for (index, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok(result) => eprintln!("call {index}: {result:?}"),
            Err(err) => eprintln!("call {index}: the task failed: {err}"),
        }
    }
}

async fn chatter() {
    let submitter = Submitter::builder(LocalCluster::new())
        .build()
        .await
        .expect("build a submitter");
    let env = RunEnvironment::local()
        .with_timeout(Duration::from_secs(60))
        .with_log_mode(hype::LogMode::Stream);
    let mut running = tokio::task::JoinSet::new();
    let mut returned = 0;
    for _ in 0..100 {
        if running.len() == 8 {
            returned += u32::from(matches!(running.join_next().await, Some(Ok(Ok(200)))));
        }
        let (submitter, env) = (submitter.clone(), env.clone());
        running.spawn(async move { submitter.run(chatty(200), &env).await });
    }
    while let Some(result) = running.join_next().await {
        returned += u32::from(matches!(result, Ok(Ok(200))));
    }
    println!("done {returned}");
}
