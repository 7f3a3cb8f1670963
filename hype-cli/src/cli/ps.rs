//! `hype ps`: one listing, or with `--watch` one every `--interval` until
//! Ctrl-C (exit code 0), each waiting for Ctrl-C too, so a slow API
//! server does not hold the command.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use super::{Chosen, PsArgs, choose, no_execution};
use crate::{docker, duration, kube};

/// The shortest and longest `--interval`.
const INTERVALS: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));

/// Reads `--interval`: a duration from 1s to 10m.
pub(super) fn interval(text: &str) -> Result<Duration, String> {
    let value = duration::parse(text)?;
    if value < INTERVALS.0 || value > INTERVALS.1 {
        return Err(format!(
            "{text:?} is out of range: the interval is from 1s to 10m"
        ));
    }
    Ok(value)
}

/// The rows of `ps` on one target, of `session` only if given; with the
/// place looked at ("namespace default", "the Docker engine").
async fn rows_of(
    target: Chosen,
    namespace: Option<String>,
    session: Option<&str>,
) -> Result<(Vec<crate::table::Row>, String), String> {
    match target {
        Chosen::Kube(target) => {
            let (client, namespace) = kube::connect(target, namespace).await?;
            let rows = kube::ps::rows(&client, &namespace, session).await?;
            Ok((rows, format!("namespace {namespace}")))
        }
        Chosen::Docker => {
            let engine = docker::connect().await?;
            let rows = docker::ps::rows(&engine, session).await?;
            Ok((rows, "the Docker engine".to_owned()))
        }
    }
}

/// One listing: the table on stdout, failures on stderr; the exit code.
async fn list(args: &PsArgs, targets: &[Chosen]) -> i32 {
    let mut rows = Vec::new();
    let mut places = Vec::new();
    let mut failed = false;
    let session = args.targets.session.as_deref();
    for target in targets {
        match rows_of(target.clone(), args.targets.namespace.clone(), session).await {
            Ok((found, place)) => {
                places.push(place);
                rows.extend(found);
            }
            Err(err) => {
                eprintln!("hype ps: {err}");
                failed = true;
            }
        }
    }
    print!("{}", crate::table::render(&rows));
    if let Some(session) = session
        && rows.is_empty()
        && !failed
    {
        eprintln!("hype ps: {}", no_execution(session, &places));
        return 1;
    }
    i32::from(failed)
}

/// `hype ps [--watch]`.
pub(super) async fn ps(args: PsArgs) -> i32 {
    let targets = choose(&args.targets).await;
    if !args.watch {
        return list(&args, &targets).await;
    }
    let terminal = std::io::stdout().is_terminal();
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        if terminal {
            // Home and clear: the listing replaces the last one.
            print!("\x1b[H\x1b[2J");
        } else {
            println!();
        }
        println!(
            "every {}, at {} (Ctrl-C ends)",
            duration::format(args.interval),
            k8s_openapi::jiff::Timestamp::now().strftime("%H:%M:%S UTC")
        );
        tokio::select! {
            _ = list(&args, &targets) => {}
            _ = &mut interrupted => return 0,
        }
        let _ = std::io::stdout().flush();
        tokio::select! {
            () = tokio::time::sleep(args.interval) => {}
            _ = &mut interrupted => return 0,
        }
    }
}
