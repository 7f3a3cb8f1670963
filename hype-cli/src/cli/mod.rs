//! The `hype` command's arguments (clap) and what each subcommand does
//! with them: `gc`, `ps`, `logs`, `timeline`. The work itself is in
//! [`crate::kube`], [`crate::docker`], [`crate::staging`] and
//! [`crate::timeline`].
//!
//! Exit codes: 0 done; 1 something failed (every failure is on stderr);
//! 2 the command line is wrong, or the file it names is no hype timeline.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use k8s_openapi::jiff::Timestamp;

use crate::report::Report;
use crate::{docker, duration, kube, staging, timeline};

/// The exit code of a wrong command line (clap's too).
pub const USAGE: i32 = 2;

/// hype's own command: finds and removes what dead sessions left, lists
/// executions, prints their logs.
#[derive(Debug, Parser)]
#[command(name = "hype", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Remove what dead sessions left on Kubernetes, on Docker or in a
    /// staging store.
    ///
    /// On Kubernetes: stale Leases (their holder gone from this host, or
    /// past their duration and the grace period), and the pods and
    /// transient claims of sessions whose Lease is gone or stale.
    /// On Docker: the containers and transient volumes of owners that no
    /// longer run. In a staging store: blobs and outcome objects older than
    /// --older-than. Persistent volumes and claims are never removed.
    #[command(after_help = GC_HELP)]
    Gc(GcArgs),
    /// List hype's executions: execution ID, function, session, phase,
    /// time in that phase, age, node, and why it waits or how it ended.
    ///
    /// Kubernetes: the pods labelled app.kubernetes.io/managed-by=hype in
    /// the namespace. Docker: the containers with that label, running or
    /// not. With --session, only that session's; none is an error. With
    /// --watch, again every --interval until Ctrl-C.
    #[command(after_help = format!("{PS_HELP}\n\n{DEFAULT_TARGET_HELP}"))]
    Ps(PsArgs),
    /// Print an execution's log (its pod's `hype-run` container, or its
    /// container), or with --session and no EXECUTION_ID those of every
    /// execution of the session, each after a `==> EXECUTION <==` line.
    ///
    /// Only what still has its pod or container: a log goes with them, and
    /// hype keeps no copy (see below for what is left).
    #[command(after_help = format!("{DEFAULT_TARGET_HELP}\n\n{}", crate::LOGS_GONE))]
    Logs(LogsArgs),
    /// Draw a fan-out's trace file (the timeline `map`/`try_map` write,
    /// Chrome trace-event JSON) as an SVG Gantt chart: calls
    /// on the y axis, time on the x axis, each phase coloured, failed calls
    /// marked with a red cross.
    ///
    /// Needs no cluster and no browser; the SVG opens in any browser or
    /// converts to PNG (`rsvg-convert -o timeline.png timeline.svg`). The
    /// trace file itself also opens in Perfetto and chrome://tracing.
    #[command(after_help = TIMELINE_HELP)]
    Timeline(TimelineArgs),
}

const TIMELINE_HELP: &str = "\
Up to 200 calls, each call is a row: its phases where they were; a retried
call's earlier attempts are faded, a failed attempt's slices outlined in
red. With more calls, each row is a group of consecutive calls (at most
100 rows): a line from the group's earliest start to its latest end, and
a bar from its median start made of each phase's mean time per call,
stacked in phase order; a red cross when any call of the group failed.
A file that is not a hype timeline (not JSON, no otherData.hype_timeline,
a malformed slice, no calls) is refused with exit code 2.";

const GC_HELP: &str = "\
Pass at least one of --kube, --docker and --staging; they can be combined.
Each line names one object removed (or, with --dry-run, that would be):
its kind, its name and why, then a summary line.

Kubernetes: a Lease `hype-<session>` names its holder, the submitter's
process (`<pid>.<start>.<boot>@<host>`). A holder on this host since its
last boot is judged by whether it runs: stale as soon as it is gone,
never while it runs. Any other Lease is stale once its last renewal (else
acquisition, else creation) + its leaseDurationSeconds + --grace is
before the command started: with --grace 0s, a Lease is still live within
its duration (60s for hype's). Pods and transient claims go with their
session's Lease, or when their session has none.
Docker: an owner (`hype.dev/owner`) is gone when its process no longer
runs on this host; owners on other hosts are left alone.
Staging: a blob still used by a running call is removed if it is older
than --older-than: pick one longer than your calls.
--session ID limits Kubernetes and Docker to that session (the SESSION
column of `hype ps`); one with nothing there is an error. Staging stores
record no sessions (blobs are shared by content, outcomes are named by
execution), so --session does not go with --staging.";

const PS_HELP: &str = "\
PHASE, from the pod's status: scheduling (not placed yet), waiting-for-node
(the scheduler found no node: DETAIL has its message and, if the cluster
autoscaler wrote an event about the pod, its latest, e.g. TriggeredScaleUp),
image-pull (the image cannot be pulled: ErrImagePull, ImagePullBackOff…,
with the message), container-start (placed; ContainerCreating, which
includes pulling an image that has not failed), running, ended (Succeeded
or Failed, with the exit code), terminating. IN-PHASE counts from the
condition's lastTransitionTime, the container's startedAt or finishedAt.
Containers (Docker): container-start, running, ended, paused, terminating;
IN-PHASE only while created.";

const DEFAULT_TARGET_HELP: &str = "\
Without --kube, --gke or --docker: Kubernetes if a kubeconfig can be loaded
(KUBECONFIG, else ~/.kube/config, else the in-cluster service account),
otherwise Docker. --namespace alone means Kubernetes.
--gke PROJECT/LOCATION/CLUSTER reaches a GKE cluster as hype's
ContainerEngineCluster does: its endpoint and CA from the GKE API, with
Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, else
gcloud's application-default login, else the metadata server); no
kubeconfig. The identity needs container.clusters.get and the
hype-operator Role of docs/rbac.yaml.";

/// Where to look: the flags `gc`, `ps` and `logs` share.
#[derive(Debug, Args)]
struct Targets {
    /// Kubernetes, through the kubeconfig context CONTEXT, or the current
    /// context without a value (`--kube=CONTEXT`).
    #[arg(
        long,
        value_name = "CONTEXT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ""
    )]
    kube: Option<String>,
    /// A GKE cluster, reached as the library's `ContainerEngineCluster`
    /// does: its endpoint and CA from the GKE API, Application Default
    /// Credentials, no kubeconfig.
    #[arg(
        long,
        value_name = "PROJECT/LOCATION/CLUSTER",
        value_parser = kube::GkeName::parse,
        conflicts_with = "kube"
    )]
    gke: Option<kube::GkeName>,
    /// The Kubernetes namespace (default: the context's namespace, else
    /// `default`).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Docker: the engine DOCKER_HOST names, else the default socket.
    #[arg(long)]
    docker: bool,
    /// Only the session ID (the SESSION column of `hype ps`): its Lease,
    /// pods and claims on Kubernetes, its containers and volumes on Docker.
    #[arg(long, value_name = "ID")]
    session: Option<String>,
}

#[derive(Debug, Args)]
struct GcArgs {
    #[command(flatten)]
    targets: Targets,
    /// Kubernetes: how long past its duration a Lease of another host may
    /// go unrenewed before its session counts as dead (30s, 10m, 2h, 7d;
    /// 0s: as soon as its duration is over).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration::parse)]
    grace: Duration,
    /// Print what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// A staging store (file:///dir or gs://bucket/prefix) whose old blobs
    /// and outcome objects to remove; needs --older-than.
    #[arg(long, value_name = "URI", requires = "older_than")]
    staging: Option<String>,
    /// With --staging: remove what was written longer ago than this (30s,
    /// 10m, 2h, 7d).
    #[arg(long, value_name = "DURATION", requires = "staging", value_parser = duration::parse)]
    older_than: Option<Duration>,
}

#[derive(Debug, Args)]
struct PsArgs {
    #[command(flatten)]
    targets: Targets,
    /// Refresh the listing every --interval until Ctrl-C (on a terminal,
    /// in place).
    #[arg(short = 'w', long)]
    watch: bool,
    /// With --watch: the time between refreshes, 1s to 10m.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = ps::interval)]
    interval: Duration,
}

#[derive(Debug, Args)]
struct TimelineArgs {
    /// The trace file (Chrome trace-event JSON written by hype).
    #[arg(value_name = "TRACE.json")]
    input: PathBuf,
    /// Where to write the picture (default: TRACE with the extension
    /// `.svg`).
    #[arg(short = 'o', long, value_name = "PICTURE.svg")]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct LogsArgs {
    /// The execution: its pod's name, or its container's. Optional with
    /// --session.
    #[arg(value_name = "EXECUTION_ID", required_unless_present = "session")]
    execution_id: Option<String>,
    /// Follow the log until the execution ends (one execution: needs
    /// EXECUTION_ID).
    #[arg(short = 'f', long, requires = "execution_id")]
    follow: bool,
    #[command(flatten)]
    targets: Targets,
}

/// Where `ps` or `logs` look once the defaults are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Chosen {
    Kube(kube::Target),
    Docker,
}

/// Runs the command line `args` (the program name first); returns the
/// exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return err.exit_code();
        }
    };
    if let Command::Timeline(args) = &cli.command {
        return draw(args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("hype: cannot start the async runtime: {err}");
            return 1;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Gc(args) => gc(args).await,
            Command::Ps(args) => ps::ps(args).await,
            Command::Logs(args) => logs(args).await,
            Command::Timeline(args) => draw(&args),
        }
    })
}

/// `hype timeline`: draws the trace file; one line on stdout naming the
/// picture.
fn draw(args: &TimelineArgs) -> i32 {
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| timeline::default_output(&args.input));
    match timeline::run(&args.input, &output) {
        Ok(calls) => {
            println!("{}: {calls} calls", output.display());
            0
        }
        Err(failure) => {
            eprintln!("hype timeline: {failure}");
            failure.exit_code()
        }
    }
}

/// The context a `--kube` value names: none for the current one.
fn context_of(kube: &str) -> Option<String> {
    (!kube.is_empty()).then(|| kube.to_owned())
}

/// The cluster `--kube` or `--gke` names, if either does.
fn kube_target(targets: &Targets) -> Option<kube::Target> {
    match (&targets.kube, &targets.gke) {
        (_, Some(gke)) => Some(kube::Target::Gke(gke.clone())),
        (Some(kube), None) => Some(kube::Target::Context(context_of(kube))),
        (None, None) => None,
    }
}

async fn gc(args: GcArgs) -> i32 {
    let started = Timestamp::now();
    let targets = &args.targets;
    let kube_target = kube_target(targets);
    if kube_target.is_none() && !targets.docker && args.staging.is_none() {
        eprintln!(
            "hype gc: nothing to collect: pass --kube[=CONTEXT] or --gke PROJECT/LOCATION/CLUSTER (Kubernetes), --docker (Docker) or --staging URI --older-than DURATION (a staging store)"
        );
        return USAGE;
    }
    if targets.namespace.is_some() && kube_target.is_none() {
        eprintln!(
            "hype gc: --namespace is for Kubernetes: pass --kube[=CONTEXT] or --gke PROJECT/LOCATION/CLUSTER with it"
        );
        return USAGE;
    }
    if targets.session.is_some() && args.staging.is_some() {
        eprintln!(
            "hype gc: --session does not go with --staging: a staging store records no sessions (blobs are shared by content, outcomes are named by execution); run --staging on its own"
        );
        return USAGE;
    }
    let session = targets.session.as_deref();
    let mut report = Report::new(args.dry_run);
    if let Some(target) = kube_target {
        match kube::connect(target, targets.namespace.clone()).await {
            Ok((client, namespace)) => {
                let gc = kube::gc::Gc {
                    namespace: &namespace,
                    grace: args.grace,
                    started,
                    session,
                };
                gc.collect(&client, &mut report).await
            }
            Err(err) => report.failed(&err),
        }
    }
    if targets.docker {
        match docker::connect().await {
            Ok(engine) => docker::gc::collect(&engine, session, &mut report).await,
            Err(err) => report.failed(&err),
        }
    }
    if let (Some(uri), Some(older_than)) = (&args.staging, args.older_than) {
        staging::collect(uri, older_than, started, &mut report).await;
    }
    println!("{}", report.summary());
    if report.failures() > 0 { 1 } else { 0 }
}

/// The backends `ps` and `logs` look at: those the flags name, else the
/// default ([`DEFAULT_TARGET_HELP`]).
async fn choose(targets: &Targets) -> Vec<Chosen> {
    let mut chosen = Vec::new();
    match kube_target(targets) {
        Some(target) => chosen.push(Chosen::Kube(target)),
        None if targets.namespace.is_some() => {
            chosen.push(Chosen::Kube(kube::Target::Context(None)));
        }
        None => {}
    }
    if targets.docker {
        chosen.push(Chosen::Docker);
    }
    if chosen.is_empty() {
        chosen.push(if kube::usable().await {
            Chosen::Kube(kube::Target::Context(None))
        } else {
            Chosen::Docker
        });
    }
    chosen
}

/// The error of a session with no execution in `places`.
fn no_execution(session: &str, places: &[String]) -> String {
    format!(
        "no execution of session {session} in {} (`hype ps` lists the sessions; an ended call's pod or container is gone)",
        places.join(" or "),
    )
}

async fn logs(args: LogsArgs) -> i32 {
    let targets = choose(&args.targets).await;
    let session = args.targets.session.as_deref();
    let Some(execution_id) = args.execution_id.as_deref() else {
        let session = session.expect("clap: EXECUTION_ID or --session");
        return session_logs(targets, args.targets.namespace.clone(), session).await;
    };
    let mut errors = Vec::new();
    for target in targets {
        let result = match target {
            Chosen::Kube(target) => {
                match kube::connect(target, args.targets.namespace.clone()).await {
                    Ok((client, namespace)) => {
                        kube::logs::print(&client, &namespace, execution_id, session, args.follow)
                            .await
                    }
                    Err(err) => Err(err),
                }
            }
            Chosen::Docker => match docker::connect().await {
                Ok(engine) => {
                    docker::logs::print(&engine, execution_id, session, args.follow).await
                }
                Err(err) => Err(err),
            },
        };
        match result {
            Ok(()) => return 0,
            Err(err) => errors.push(err),
        }
    }
    for err in errors {
        eprintln!("hype logs: {err}");
    }
    1
}

/// `hype logs --session ID`: the log of every execution of the session
/// on `targets`, each after a `==> EXECUTION <==` line.
async fn session_logs(targets: Vec<Chosen>, namespace: Option<String>, session: &str) -> i32 {
    let mut places = Vec::new();
    let mut printed = 0;
    let mut failed = false;
    for target in targets {
        let result = match target {
            Chosen::Kube(target) => match kube::connect(target, namespace.clone()).await {
                Ok((client, namespace)) => {
                    let found = kube::logs::session(&client, &namespace, session).await;
                    places.push(format!("namespace {namespace}"));
                    found
                }
                Err(err) => Err(err),
            },
            Chosen::Docker => match docker::connect().await {
                Ok(engine) => {
                    places.push("the Docker engine".to_owned());
                    docker::logs::session(&engine, session).await
                }
                Err(err) => Err(err),
            },
        };
        match result {
            Ok((count, errors)) => {
                printed += count;
                for err in &errors {
                    eprintln!("hype logs: {err}");
                }
                failed |= !errors.is_empty();
            }
            Err(err) => {
                eprintln!("hype logs: {err}");
                failed = true;
            }
        }
    }
    if printed == 0 && !failed {
        eprintln!(
            "hype logs: {}\n{}",
            no_execution(session, &places),
            crate::LOGS_GONE
        );
        return 1;
    }
    i32::from(failed)
}

mod ps;
#[cfg(test)]
mod tests;
