//! The command line as clap reads it: flags, their forms, the help.

use super::*;

fn parse(args: &[&str]) -> Result<Cli, String> {
    Cli::try_parse_from(std::iter::once("hype").chain(args.iter().copied()))
        .map_err(|err| err.to_string())
}

#[test]
fn kube_takes_an_optional_context_after_an_equals_sign() {
    let Command::Gc(gc) = parse(&["gc", "--kube"]).unwrap().command else {
        panic!("gc");
    };
    assert_eq!(gc.targets.kube.as_deref(), Some(""));
    assert_eq!(gc.grace, Duration::from_secs(600));
    let Command::Gc(gc) = parse(&["gc", "--kube=prod", "--grace", "0s"])
        .unwrap()
        .command
    else {
        panic!("gc");
    };
    assert_eq!(
        context_of(gc.targets.kube.as_deref().unwrap()).as_deref(),
        Some("prod")
    );
    assert_eq!(gc.grace, Duration::ZERO);
    let Command::Logs(logs) = parse(&["logs", "hype-f-1", "-f", "--docker"])
        .unwrap()
        .command
    else {
        panic!("logs");
    };
    assert!(logs.follow && logs.targets.docker);
    assert_eq!(logs.execution_id.as_deref(), Some("hype-f-1"));
    let Command::Logs(logs) = parse(&["logs", "--session", "s1"]).unwrap().command else {
        panic!("logs");
    };
    assert_eq!(
        (logs.execution_id, logs.targets.session.as_deref()),
        (None, Some("s1"))
    );
}

#[test]
fn gc_help_states_the_staleness_rule() {
    use clap::CommandFactory as _;
    let mut cli = Cli::command();
    let gc = cli.find_subcommand_mut("gc").expect("gc");
    let help = gc.render_long_help().to_string().replace('\n', " ");
    for rule in [
        "A holder on this host since its last boot is judged by whether it runs: stale as soon as it is gone, never while it runs.",
        "Any other Lease is stale once its last renewal (else acquisition, else creation) + its leaseDurationSeconds + --grace is before the command started",
        "with --grace 0s, a Lease is still live within its duration",
        "--session does not go with --staging",
    ] {
        assert!(help.contains(rule), "{rule:?} not in:\n{help}");
    }
}

#[test]
fn bad_flags_name_the_flag_and_the_forms() {
    let err = parse(&["gc", "--docker", "--grace", "10"]).unwrap_err();
    assert!(
        err.contains("--grace") && err.contains("30s, 10m, 2h or 7d"),
        "{err}"
    );
    let err = parse(&["gc", "--staging", "file:///s"]).unwrap_err();
    assert!(err.contains("--older-than"), "{err}");
    let err = parse(&["gc", "--older-than", "1d"]).unwrap_err();
    assert!(err.contains("--staging"), "{err}");
    let err = parse(&["gc", "--staging", "file:///s", "--older-than", "week"]).unwrap_err();
    assert!(err.contains("--older-than") && err.contains("7d"), "{err}");
    assert!(parse(&["logs"]).unwrap_err().contains("EXECUTION_ID"));
    let err = parse(&["logs", "--session", "s1", "-f"]).unwrap_err();
    assert!(err.contains("EXECUTION_ID"), "{err}");
}
