//! docker: remote functions run in containers on the local Docker engine.
//!
//! This program ships itself: the Docker runner bind-mounts its executable
//! into each container and runs it there, so the image needs no hype code,
//! only a C library that suits this binary. Build the generic env image
//! once, from the repository root, and run; after a code change, run again
//! without rebuilding the image:
//!
//! ```text
//! docker build -f docker/Dockerfile -t hype-env:1 .
//! HYPE_IMAGE=hype-env:1 cargo run --example docker --features docker
//! ```
//!
//! (Where nothing can be pulled, import a root filesystem instead: see
//! "Without a registry" in docker/README.md.)
//!
//! The engine is `DOCKER_HOST`, else the default socket. Staging is a
//! temporary directory, bind-mounted into each container at the same path.

use std::time::Duration;

use hype::{DockerCluster, RunEnvironment, Submitter, VolumeRequest};
use serde::{Deserialize, Serialize};

/// Counts the words of a text.
#[hype::remote]
fn word_count(text: String) -> usize {
    text.split_whitespace().count()
}

/// Where a call ran.
#[derive(Debug, Serialize, Deserialize)]
struct Whereabouts {
    pid: u32,
    hostname: String,
    vars: Vec<String>,
}

/// The process ID, host name and `HYPE_*`/`GREETING` variables of the
/// process the call runs in.
#[hype::remote]
fn whereabouts() -> Whereabouts {
    let mut vars: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("HYPE_") || k == "GREETING")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vars.sort();
    Whereabouts {
        pid: std::process::id(),
        hostname: std::env::var("HOSTNAME").unwrap_or_default(),
        vars,
    }
}

/// Writes a word to a volume.
#[hype::remote]
fn write_word(path: String, word: String) -> Result<(), String> {
    std::fs::write(hype::mount_path(&path), word).map_err(|e| e.to_string())
}

/// Reads the word back, and says whether writing was refused.
#[hype::remote]
fn read_word(path: String) -> (String, bool) {
    let path = hype::mount_path(&path);
    let word = std::fs::read_to_string(&path).unwrap_or_else(|e| format!("<{e}>"));
    let refused = std::fs::write(path.with_extension("copy"), &word).is_err();
    (word, refused)
}

/// Divides, panicking on zero.
#[hype::remote]
fn divide(a: u32, b: u32) -> u32 {
    if b == 0 {
        panic!("cannot divide {a} by zero");
    }
    a / b
}

#[hype::main]
async fn main() -> anyhow::Result<()> {
    let Ok(image) = std::env::var("HYPE_IMAGE") else {
        anyhow::bail!(
            "set HYPE_IMAGE to an env image (this program ships itself into it); build the generic one once with:\n  docker build -f docker/Dockerfile -t hype-env:1 .\nthen: HYPE_IMAGE=hype-env:1 cargo run --example docker --features docker"
        );
    };
    let staging = std::env::temp_dir().join(format!("hype-docker-example-{}", std::process::id()));
    let submitter = Submitter::new(
        format!("file://{}", staging.display()),
        DockerCluster::new(),
    )
    .await?;
    let result = calls(&submitter, &image).await;
    submitter.close().await?;
    let _ = std::fs::remove_dir_all(&staging);
    result
}

async fn calls(submitter: &Submitter, image: &str) -> anyhow::Result<()> {
    let env = RunEnvironment::new(image)
        .with_env("GREETING", "hello from the caller")
        .with_limit("cpu", "500m")
        .with_limit("memory", "256Mi")
        .with_timeout(Duration::from_secs(120));

    let words = submitter
        .run(
            word_count("the quick brown fox jumps over the lazy dog".into()),
            &env,
        )
        .await?;
    println!("word_count: {words} words");

    let there = submitter.run(whereabouts(), &env).await?;
    println!(
        "whereabouts: ran as pid {} in container {}",
        there.pid, there.hostname
    );
    for var in &there.vars {
        println!("  {var}");
    }

    // The seed's volume flow: one writer, then readers on a read-only mount.
    let volume = VolumeRequest::new("standard", "1Gi");
    let writer = env.clone().with_mount(volume.mount_read_write("/data"));
    submitter
        .run(write_word("/data/word".into(), "hype".into()), &writer)
        .await?
        .map_err(anyhow::Error::msg)?;
    let reader = env.clone().with_mount(volume.mount_read_only("/data"));
    let reads = futures::future::try_join_all(
        (0..3).map(|_| submitter.run(read_word("/data/word".into()), &reader)),
    )
    .await?;
    for (word, refused) in reads {
        println!("read_word: {word:?} (writing refused: {refused})");
    }

    match submitter.run(divide(7, 0), &env).await {
        Ok(q) => println!("divide: {q}"),
        Err(hype::Error::RemotePanic {
            message, location, ..
        }) => println!(
            "divide: panicked: {message} (at {})",
            location.as_deref().unwrap_or("unknown location")
        ),
        Err(other) => return Err(other.into()),
    }
    Ok(())
}
