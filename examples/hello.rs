//! hello: four remote functions run on the embedded default (child
//! processes of this binary; nothing to configure).
//!
//! ```text
//! cargo run --example hello
//! ```
//!
//! The calls use `RunEnvironment::local()`, which names no image: child
//! processes need none. `run_on_cluster` gives such an environment the
//! image `HYPE_IMAGE` names, so `HYPE_CLUSTER` and `HYPE_IMAGE` send the
//! same calls elsewhere, unchanged. To local Docker, with the generic env
//! image (built once; this program ships itself into it):
//!
//! ```text
//! docker build -f docker/Dockerfile -t hype-env:1 .
//! HYPE_CLUSTER=docker HYPE_IMAGE=hype-env:1 cargo run --example hello --features docker
//! ```
//!
//! To Kubernetes: `HYPE_CLUSTER=kube`, `HYPE_STAGING=gs://bucket/prefix`
//! (a bucket the pods can read and write: the README's "Who needs what in
//! Google Cloud") and an image the cluster pulls, with
//! `--features kubernetes,gcs` (see the README's quick start).

use hype::RunEnvironment;
use serde::{Deserialize, Serialize};

/// Counts the words of a text.
#[hype::remote]
fn word_count(text: String) -> usize {
    text.split_whitespace().count()
}

/// Where a call ran: its process ID and the environment hype gave it.
#[derive(Debug, Serialize, Deserialize)]
struct Whereabouts {
    pid: u32,
    vars: Vec<String>,
}

/// Lists the process ID and the `HYPE_*` and `GREETING` variables of the
/// process the call runs in.
#[hype::remote]
async fn whereabouts() -> Whereabouts {
    let mut vars: Vec<String> = std::env::vars()
        .filter(|(k, _)| (k.starts_with("HYPE_") && k != "HYPE_MOUNTS") || k == "GREETING")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vars.sort();
    Whereabouts {
        pid: std::process::id(),
        vars,
    }
}

/// Why a number could not be parsed: a typed error that crosses the wire.
#[derive(Debug, Serialize, Deserialize)]
struct NotANumber {
    input: String,
    reason: String,
}

/// Parses a number, or says why it cannot.
#[hype::remote]
fn parse_number(text: String) -> Result<u64, NotANumber> {
    text.parse()
        .map_err(|err: std::num::ParseIntError| NotANumber {
            input: text.clone(),
            reason: err.to_string(),
        })
}

/// Divides, panicking on zero as integer division does.
#[hype::remote]
fn divide(a: u32, b: u32) -> u32 {
    if b == 0 {
        panic!("cannot divide {a} by zero");
    }
    a / b
}

#[hype::main]
async fn main() -> anyhow::Result<()> {
    let env = RunEnvironment::local().with_env("GREETING", "hello from the caller");

    let words = word_count("the quick brown fox jumps over the lazy dog".into())
        .run_on_cluster(&env)
        .await?;
    println!("word_count: {words} words");

    let there = whereabouts().run_on_cluster(&env).await?;
    println!(
        "whereabouts: ran in pid {} (this process is pid {})",
        there.pid,
        std::process::id()
    );
    for var in &there.vars {
        println!("  {var}");
    }

    match parse_number("forty-two".into())
        .run_on_cluster(&env)
        .await?
    {
        Ok(n) => println!("parse_number: {n}"),
        Err(err) => println!(
            "parse_number: typed error: {:?} is not a number ({})",
            err.input, err.reason
        ),
    }

    match divide(7, 0).run_on_cluster(&env).await {
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
