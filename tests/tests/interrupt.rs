//! A submitter killed or interrupted (issue 11), end to end with the
//! `hype-test-submitter` binary: after `kill -9` its local children and
//! their children die within a second and its temporary directories go at
//! the next start of a hype process; Ctrl-C and SIGTERM close its
//! submitters in order and exit with 130 and 143; a second Ctrl-C exits at
//! once. A shipped executable dies with the launcher that runs it.
//!
//! Each test gives the binary a `TMPDIR` of its own, so the temporary
//! directories it sees are exactly the binary's.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hype-test-submitter");

/// One run of `hype-test-submitter`.
struct Run {
    child: Child,
    pid: u32,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Run {
    /// Starts `hype-test-submitter <mode> <pids>` with `TMPDIR=tmp` and
    /// waits for it to print `ready`.
    fn start(mode: &str, tmp: &Path, pids: &Path) -> Run {
        let mut child = Command::new(BIN)
            .arg(mode)
            .arg(pids)
            .env("TMPDIR", tmp)
            .env("HYPE_LOCAL_VOLUMES", volumes_of(tmp))
            .env_remove("HYPE_CLUSTER")
            .env_remove("HYPE_STAGING")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hype-test-submitter");
        let pid = child.id();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(pipe) = child.stderr.take() {
            let lines = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let (ready_tx, ready) = std::sync::mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    if line.starts_with("ready ") {
                        let _ = ready_tx.send(line.clone());
                    }
                }
            });
        }
        let run = Run { child, pid, stderr };
        match ready.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => assert_eq!(line, format!("ready {pid}")),
            Err(_) => panic!(
                "hype-test-submitter {mode} did not get ready; stderr:\n{}",
                run.stderr_text()
            ),
        }
        run
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) of the child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(self.pid as i32, signal) }, 0);
    }

    /// Waits for the exit, at most `bound`.
    fn wait(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hype-test-submitter still runs after {bound:?}; stderr:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits (bounded) until stderr has a line starting with `prefix`,
    /// and gives it; the process may have exited, its last lines are
    /// read to the end.
    fn stderr_line(&self, prefix: &str, bound: Duration) -> String {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(line) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|line| line.starts_with(prefix))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no stderr line starting {prefix:?} after {bound:?}; stderr:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `done()`, at most `bound`; says whether it came.
fn wait_for(bound: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits (bounded) until the `n` calls have written their PID files and
/// gives every PID: each call's process and its grandchild `sleep`.
fn call_pids(dir: &Path, n: usize) -> Vec<u32> {
    let files = || -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_none())
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(60), || files().len() == n),
        "{} of {n} calls started",
        files().len()
    );
    let pids: Vec<u32> = files()
        .iter()
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .split_whitespace()
                .map(|pid| pid.parse().unwrap())
                .collect::<Vec<u32>>()
        })
        .collect();
    assert_eq!(pids.len(), 2 * n);
    for &pid in &pids {
        assert!(hype_tests::process_alive(pid), "process {pid} runs");
    }
    pids
}

/// The `hype-*` entries of `tmp`, sorted.
fn hype_dirs(tmp: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.starts_with("hype-"))
        .collect();
    names.sort();
    names
}

/// The volumes directory of the runs with `TMPDIR=tmp`.
fn volumes_of(tmp: &Path) -> PathBuf {
    tmp.with_file_name("volumes")
}

/// The entries of `dir` (empty when it does not exist), sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A fresh `TMPDIR` and PID directory for one test.
fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let tmp = root.path().join("tmp");
    let pids = root.path().join("pids");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::create_dir(&pids).unwrap();
    (root, tmp, pids)
}

#[test]
fn a_killed_submitter_leaves_no_processes_and_its_temp_dirs_go_at_the_next_start() {
    let (_root, tmp, pids) = dirs();
    let mut run = Run::start("calls", &tmp, &pids);
    let processes = call_pids(&pids, 3);
    let pid = run.pid;
    let left = hype_dirs(&tmp);
    // Two submitters: each a local runner's directory and a staging one,
    // all named after their owner.
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(
        left.iter().all(|name| name.contains(&format!("-{pid}."))),
        "{left:?}"
    );

    let killed = Instant::now();
    run.child.kill().unwrap(); // SIGKILL: no code of the submitter runs
    run.child.wait().unwrap();
    let gone = wait_for(Duration::from_secs(5), || {
        processes.iter().all(|&pid| !hype_tests::process_alive(pid))
    });
    let took = killed.elapsed();
    println!(
        "after kill -9 of the submitter, its {} children and grandchildren were gone in {} ms",
        processes.len(),
        took.as_millis()
    );
    let alive: Vec<u32> = processes
        .iter()
        .copied()
        .filter(|&pid| hype_tests::process_alive(pid))
        .collect();
    assert!(gone, "still running after {took:?}: {alive:?}");
    // Nothing of the killed process removed its directories.
    assert_eq!(hype_dirs(&tmp), left);
    let volumes = volumes_of(&tmp);
    let volume = entries(&volumes);
    assert_eq!(
        volume.len(),
        2,
        "a transient volume and its marker: {volume:?}"
    );
    let markers = entries(&volumes.join(".hype-transient"));
    assert_eq!(markers.len(), 1, "{markers:?}");
    assert!(markers[0].contains(&format!("+{pid}.")), "{markers:?}");

    // The next hype process to make a temporary directory removes them.
    let mut next = Run::start("idle", &tmp, &pids);
    // Transient volumes: when its runner was built, before it was ready.
    assert_eq!(entries(&volumes), [".hype-transient"]);
    assert_eq!(
        entries(&volumes.join(".hype-transient")),
        Vec::<String>::new()
    );
    let swept = wait_for(Duration::from_secs(10), || {
        hype_dirs(&tmp).iter().all(|name| !left.contains(name))
    });
    assert!(swept, "left: {:?}", hype_dirs(&tmp));
    let own = hype_dirs(&tmp);
    assert_eq!(own.len(), 2, "{own:?}");
    assert!(
        own.iter()
            .all(|name| name.contains(&format!("-{}.", next.pid))),
        "{own:?}"
    );
    next.signal(libc::SIGINT);
    assert_eq!(next.wait(Duration::from_secs(40)).code(), Some(130));
    assert_eq!(hype_dirs(&tmp), Vec::<String>::new());
}

#[test]
fn ctrl_c_cancels_the_calls_and_closes_every_submitter_in_order() {
    let (_root, tmp, pids) = dirs();
    let mut run = Run::start("calls", &tmp, &pids);
    let processes = call_pids(&pids, 3);
    let interrupted = Instant::now();
    run.signal(libc::SIGINT);
    let status = run.wait(Duration::from_secs(40));
    let took = interrupted.elapsed();
    println!(
        "Ctrl-C with 3 calls in flight on 2 submitters: closed and exited in {} ms",
        took.as_millis()
    );
    assert_eq!(status.code(), Some(130), "{}", run.stderr_text());
    assert_eq!(
        run.stderr_line("hype: interrupted", Duration::from_secs(5)),
        "hype: interrupted (SIGINT): cancelling 3 calls in flight and closing 2 submitters (at most 30s; press Ctrl-C again to exit at once)"
    );
    let closed = run.stderr_line("hype: closed", Duration::from_secs(5));
    assert!(
        closed.starts_with("hype: closed 2 submitters in "),
        "{closed}"
    );
    assert!(closed.ends_with("; exiting with 130"), "{closed}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(
        wait_for(Duration::from_secs(5), || processes
            .iter()
            .all(|&pid| !hype_tests::process_alive(pid))),
        "calls' processes still run"
    );
    assert_eq!(hype_dirs(&tmp), Vec::<String>::new());
    // The transient volume and its marker went with the close.
    let volumes = volumes_of(&tmp);
    assert_eq!(entries(&volumes), [".hype-transient"]);
    assert_eq!(
        entries(&volumes.join(".hype-transient")),
        Vec::<String>::new()
    );
}

#[test]
fn sigterm_closes_and_exits_with_143() {
    let (_root, tmp, pids) = dirs();
    let mut run = Run::start("idle", &tmp, &pids);
    assert_eq!(hype_dirs(&tmp).len(), 2);
    run.signal(libc::SIGTERM);
    let status = run.wait(Duration::from_secs(40));
    assert_eq!(status.code(), Some(143), "{}", run.stderr_text());
    assert_eq!(
        run.stderr_line("hype: interrupted", Duration::from_secs(5)),
        "hype: interrupted (SIGTERM): cancelling 0 calls in flight and closing 1 submitter (at most 30s; press Ctrl-C again to exit at once)"
    );
    let closed = run.stderr_line("hype: closed", Duration::from_secs(5));
    assert!(
        closed.starts_with("hype: closed 1 submitter in "),
        "{closed}"
    );
    assert_eq!(hype_dirs(&tmp), Vec::<String>::new());
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    let (_root, tmp, pids) = dirs();
    // Its submitter's runtime is never driven again: the close cannot end.
    let mut run = Run::start("stuck", &tmp, &pids);
    run.signal(libc::SIGINT);
    run.stderr_line("hype: interrupted (SIGINT)", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    assert!(run.child.try_wait().unwrap().is_none(), "still closing");
    let again = Instant::now();
    run.signal(libc::SIGINT);
    let status = run.wait(Duration::from_secs(10));
    let took = again.elapsed();
    println!("a second Ctrl-C exited in {} ms", took.as_millis());
    assert_eq!(status.code(), Some(130), "{}", run.stderr_text());
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(
        run.stderr_line("hype: interrupted again", Duration::from_secs(5)),
        "hype: interrupted again (SIGINT): exiting at once with 130"
    );
    assert!(
        !run.stderr_text().contains("hype: closed"),
        "{}",
        run.stderr_text()
    );
    // The exit handlers still ran.
    assert_eq!(hype_dirs(&tmp), Vec::<String>::new());
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = stat.rsplit_once(')')?.1.to_owned();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// A launcher (`hype-launcher`, as in a generic image) killed with SIGKILL:
/// the executable it started for the call dies with it, whether the
/// launcher leads a process group of its own (as the local runner starts
/// it: the group is killed) or not (as here, in the test harness's group:
/// only the executable dies, this test survives).
#[test]
fn a_shipped_executable_dies_with_its_launcher() {
    launch_and_kill(true);
    launch_and_kill(false);
}

fn launch_and_kill(own_group: bool) {
    use hype::wire::{self, CallEnvelope, Payload, Reference};
    use hype::{LocalStaging, RemoteFn as _, Staging as _};
    use hype_tests::containers::SleepArgs;
    use std::os::unix::process::CommandExt as _;
    const SLEEP: &str = "hype_tests::containers::sleep";

    let dir = tempfile::tempdir().unwrap();
    let staging = LocalStaging::new(dir.path().join("staging")).unwrap();
    let worker = PathBuf::from(env!("CARGO_BIN_EXE_hype-test-worker"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let digest = hype_runtime::__tools::hash_file(&worker).unwrap();
    let blob = runtime
        .block_on(staging.put_file(&worker, &digest))
        .unwrap();
    let payload = Payload::Inline(wire::Bytes::from(
        wire::encode_value(SLEEP, "arguments", &SleepArgs { millis: 60_000 }).unwrap(),
    ));
    let envelope = CallEnvelope::new(SLEEP, SleepArgs::SIGNATURE, payload)
        .with_staging(staging.location())
        .with_executable(blob);
    let call = Reference::Inline(wire::encode_call(&envelope).unwrap()).to_string();
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_hype-launcher"));
    if own_group {
        launcher.process_group(0);
    }
    let mut launcher = launcher
        .arg("hype-run")
        .arg(call)
        .env("HYPE_EXECUTION_ID", "hype-launched-1")
        .env(
            "HYPE_TERMINATION_MESSAGE_PATH",
            dir.path().join("termination-log"),
        )
        .env("HYPE_CACHE_DIR", dir.path().join("cache"))
        .spawn()
        .unwrap();
    let mut launched = Vec::new();
    let started = wait_for(Duration::from_secs(30), || {
        launched = children_of(launcher.id());
        !launched.is_empty()
    });
    if !started {
        let _ = launcher.kill();
        let _ = launcher.wait();
        panic!("the launcher started no executable");
    }
    let killed = Instant::now();
    launcher.kill().unwrap();
    launcher.wait().unwrap();
    let gone = wait_for(Duration::from_secs(5), || {
        launched.iter().all(|&pid| !hype_tests::process_alive(pid))
    });
    println!(
        "after kill -9 of a launcher ({}), the executable it ran was gone in {} ms",
        if own_group {
            "in a group of its own"
        } else {
            "in the test's group"
        },
        killed.elapsed().as_millis()
    );
    assert!(gone, "the launched executable {launched:?} still runs");
}
