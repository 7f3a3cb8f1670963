//! The Kubernetes integration tests against a real cluster (`cargo test
//! -p hype-tests --test e2e`): what the other targets check against our
//! own test double, checked against any cluster a kubeconfig reaches.
//!
//! - `HYPE_E2E_KUBECONFIG=path` (and optionally `HYPE_E2E_CONTEXT`): the
//!   cluster. Without it the target prints one `SKIPPED` line and checks
//!   nothing (CI does not set it).
//! - `HYPE_E2E_IMAGE`: an image whose entrypoint is the launcher `hype-run`
//!   (docker/Dockerfile). This program ships itself to it: it is its own
//!   `main` (`harness = false`, `#[hype::main]`), so its executable runs
//!   the calls of `hype_tests`' functions in the pods.
//! - `HYPE_E2E_STAGING`: a `gs://` bucket, or a `file:///dir` every node
//!   shares (mounted into the pods at its own path, as a `hostPath`).
//! - `HYPE_E2E_STORAGE_CLASS` (default `standard`): the claims' class; it
//!   must serve `ReadWriteOnce` and `ReadOnlyMany`.
//!
//! Each run makes a namespace `hype-e2e-<random>` (the `kill -9` scenario
//! another, `…-gc`) and deletes it at the end, after a failure too.
//! Scenarios run one after the other, each bounded; arguments that are not
//! flags select scenarios by substring, `--skip SUBSTRING` leaves some out,
//! `--list` lists them. Each scenario prints one line with
//! its result; the exit code is 1 if one failed.
//!
//! The README's "Tests against a real cluster" says how to run it.

#[path = "e2e_support/killed.rs"]
mod killed;
#[path = "e2e_support/scenarios.rs"]
mod scenarios;
#[path = "e2e_support/setup.rs"]
mod setup;

use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use setup::{Config, Ctx};

/// A scenario: its name and its body.
type Scenario = (&'static str, fn(&Ctx) -> LocalBoxFuture<'_, ()>);

macro_rules! scenarios {
    ($($path:path),* $(,)?) => {
        [$({
            fn run(c: &Ctx) -> LocalBoxFuture<'_, ()> {
                Box::pin($path(c))
            }
            let name = stringify!($path);
            (name.rsplit("::").next().unwrap_or(name).trim(), run as fn(&Ctx) -> LocalBoxFuture<'_, ()>)
        }),*]
    };
}

fn all() -> Vec<Scenario> {
    scenarios![
        scenarios::a_call_returns_its_typed_result,
        scenarios::a_panic_comes_back_with_its_message,
        scenarios::a_timeout_is_the_pods_active_deadline,
        scenarios::a_secret_is_mounted_read_only,
        scenarios::a_claim_written_once_is_read_by_three_readers,
        scenarios::env_resources_and_a_base_pod_reach_the_pod,
        scenarios::pending_diagnosis_names_a_missing_image,
        scenarios::pending_diagnosis_names_a_missing_secret,
        scenarios::every_log_line_arrives_exactly_once,
        scenarios::map_of_fifty_calls,
        killed::a_killed_submitter_leaves_nothing_after_hype_gc,
    ]
    .to_vec()
}

/// A bound on one scenario.
const SCENARIO: Duration = Duration::from_secs(1200);

#[hype::main]
fn main() {
    hype_tests::link();
    let config = match Config::from_env() {
        Ok(Some(config)) => config,
        Ok(None) => {
            if std::env::var_os(killed::ROLE).is_none() {
                eprintln!(
                    "SKIPPED: e2e: nothing was checked: no cluster; set HYPE_E2E_KUBECONFIG (with HYPE_E2E_IMAGE and HYPE_E2E_STAGING) to run it, see the README"
                );
            }
            return;
        }
        Err(message) => {
            eprintln!("e2e: FAILED: {message}");
            std::process::exit(1);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    if std::env::var_os(killed::ROLE).is_some() {
        runtime.block_on(killed::submitter_to_kill(config));
        return;
    }
    let arguments = Arguments::parse();
    let chosen: Vec<Scenario> = all()
        .into_iter()
        .filter(|(name, _)| arguments.chooses(name))
        .collect();
    if arguments.list {
        for (name, _) in &chosen {
            println!("{name}: test");
        }
        return;
    }
    hype_tests::captured::install();
    let failed = runtime.block_on(run(config, chosen));
    drop(runtime);
    if failed > 0 {
        std::process::exit(1);
    }
}

/// The command line: `--list`, filters (arguments that are not flags)
/// and `--skip NAME`s, libtest's other flags ignored.
struct Arguments {
    list: bool,
    filters: Vec<String>,
    skips: Vec<String>,
}

impl Arguments {
    fn parse() -> Arguments {
        const WITH_VALUE: &[&str] = &["--test-threads", "--format", "--color", "--logfile", "-Z"];
        let mut parsed = Arguments {
            list: false,
            filters: Vec::new(),
            skips: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--list" {
                parsed.list = true;
            } else if arg == "--skip" {
                parsed.skips.extend(args.next());
            } else if WITH_VALUE.contains(&arg.as_str()) {
                args.next();
            } else if !arg.starts_with('-') {
                parsed.filters.push(arg);
            }
        }
        parsed
    }

    fn chooses(&self, name: &str) -> bool {
        (self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str())))
            && !self.skips.iter().any(|s| name.contains(s.as_str()))
    }
}

/// Runs the scenarios in the run's namespace; gives how many failed.
async fn run(config: Config, chosen: Vec<Scenario>) -> usize {
    let target = format!(
        "{} (context {:?})",
        config.kubeconfig.display(),
        config.context
    );
    let ctx = match Ctx::new(config).await {
        Ok(ctx) => ctx,
        Err(message) => {
            eprintln!("e2e: FAILED to set up on {target}: {message}");
            return 1;
        }
    };
    eprintln!(
        "e2e: running {} scenarios on {target} in namespace {}, image {}, staging {}",
        chosen.len(),
        ctx.namespace.name,
        ctx.config.image,
        ctx.config.staging
    );
    let mut failed = Vec::new();
    for (name, scenario) in &chosen {
        let started = Instant::now();
        let result = scenarios::caught(async {
            match tokio::time::timeout(SCENARIO, scenario(&ctx)).await {
                Ok(()) => ctx.assert_no_pods_left().await,
                Err(_) => panic!("not done within {SCENARIO:?}"),
            }
        })
        .await;
        let took = started.elapsed();
        match result {
            Ok(()) => eprintln!("e2e: {name} ... ok ({took:.1?})"),
            Err(message) => {
                eprintln!("e2e: {name} ... FAILED ({took:.1?}): {message}");
                failed.push(*name);
            }
        }
    }
    let session = ctx.submitter.session().to_owned();
    let closed = ctx.submitter.close().await;
    let left = setup::wait_for_none(
        &ctx.client,
        &ctx.namespace.name,
        &session,
        setup::BOUND_GONE,
    )
    .await;
    match (closed, left.is_empty()) {
        (Ok(()), true) => eprintln!("e2e: the run's session left nothing after close ... ok"),
        (closed, _) => {
            eprintln!(
                "e2e: the run's session after close ... FAILED: close: {closed:?}, left: {left:?}"
            );
            failed.push("the run's session left nothing after close");
        }
    }
    eprintln!(
        "e2e: {} passed, {} failed on {target}{}",
        chosen.len() + 1 - failed.len(),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(": {}", failed.join(", "))
        }
    );
    drop(ctx);
    failed.len()
}
