//! One call on a worker: `hype-run <call>` as a fresh child process of the
//! worker (this binary, as `argv[0] = hype-run`), in a process group of its
//! own (the launcher and the executable it starts share it, so a cancel
//! kills both), armed to die with the worker. Its events go to the worker's
//! loop in order: `Started`, its output lines, its `Outcome` (the
//! termination message it wrote, if any), `Ended`.
//!
//! An OOM kill is told from a cancel or another SIGKILL by the cgroup's
//! `oom_kill` counter (`memory.events`, cgroup v2; `memory.oom_control`,
//! v1): it rose while the call ran, and the call died of SIGKILL (or its
//! launcher passed on code 137). With calls running side by side, a kill of
//! one may be counted for another that was SIGKILLed at the same time; the
//! flag is then wrong only for a call that was killed anyway.

use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, BufReader};
use tokio::sync::mpsc::UnboundedSender;

use crate::config;
use crate::wire::{Bytes, ExitStatus, HYPE_RUN, OutputStream, WorkerEvent};

/// The longest output line sent as one event; a longer one is cut into
/// pieces of this size (frames stay far below their maximum).
const MAX_LINE: u64 = 1 << 20;

/// A running call's process, to cancel it.
pub(super) struct Process {
    /// Its process group (its PID), while it may still run.
    group: Option<i32>,
    cancelled: Arc<AtomicBool>,
}

impl Process {
    /// Kills the call's process group with SIGKILL.
    pub(super) fn kill(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some(group) = self.group.and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
}

/// Starts call `id`'s process and a task that reports its events; the
/// message of why it cannot start otherwise.
pub(super) fn start(
    id: u64,
    execution_id: &str,
    call: &str,
    dir: &Path,
    events: UnboundedSender<(u64, WorkerEvent)>,
) -> Result<Process, String> {
    let own = std::env::current_exe()
        .map_err(|err| format!("cannot find the worker's own executable: {err}"))?;
    let message_path = dir.join(format!("{id}.outcome"));
    let mut command = std::process::Command::new(&own);
    command
        .arg0(HYPE_RUN)
        .arg(call)
        .env(config::HYPE_EXECUTION_ID, execution_id)
        .env(config::HYPE_TERMINATION_MESSAGE_PATH, &message_path)
        .env_remove(config::HYPE_LAUNCHED)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    crate::process::die_with_this_process(&mut command);
    let oom_kills_before = oom_kills();
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", own.display()))?;
    let cancelled = Arc::new(AtomicBool::new(false));
    let process = Process {
        group: child.id().and_then(|pid| i32::try_from(pid).ok()),
        cancelled: Arc::clone(&cancelled),
    };
    let _ = events.send((
        id,
        WorkerEvent::Started {
            id,
            execution_id: execution_id.to_owned(),
        },
    ));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    tokio::spawn(async move {
        let (_, _, waited) = tokio::join!(
            lines(id, stdout, OutputStream::Stdout, &events),
            lines(id, stderr, OutputStream::Stderr, &events),
            child.wait(),
        );
        let status = match waited {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(code), _) => ExitStatus::Code(code),
                (None, Some(signal)) => ExitStatus::Signal(signal),
                (None, None) => ExitStatus::Code(-1),
            },
            Err(_) => ExitStatus::Code(-1),
        };
        if let Some(message) = outcome(&message_path) {
            let _ = events.send((id, WorkerEvent::Outcome { id, message }));
        }
        let killed = matches!(status, ExitStatus::Signal(9) | ExitStatus::Code(137));
        let out_of_memory = killed
            && !cancelled.load(Ordering::SeqCst)
            && oom_kills()
                .zip(oom_kills_before)
                .is_some_and(|(now, before)| now > before);
        let _ = events.send((
            id,
            WorkerEvent::Ended {
                id,
                status,
                out_of_memory,
            },
        ));
    });
    Ok(process)
}

/// Sends each line of `reader` as an `Output` event of call `id`.
async fn lines(
    id: u64,
    reader: Option<impl AsyncRead + Unpin>,
    stream: OutputStream,
    events: &UnboundedSender<(u64, WorkerEvent)>,
) {
    let Some(reader) = reader else { return };
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                let _ = events.send((
                    id,
                    WorkerEvent::Output {
                        id,
                        stream,
                        line: Bytes::from(line.clone()),
                    },
                ));
            }
        }
    }
}

/// The termination message the call's `hype-run` wrote, if any; the file
/// is removed.
fn outcome(path: &PathBuf) -> Option<String> {
    let text = std::fs::read_to_string(path).ok();
    let _ = std::fs::remove_file(path);
    text.map(|t| t.trim_end().to_owned())
        .filter(|t| !t.is_empty())
}

/// The cgroup's count of OOM kills so far, where the kernel says.
fn oom_kills() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.events",
        "/sys/fs/cgroup/memory/memory.oom_control",
    ]
    .iter()
    .find_map(|path| {
        let text = std::fs::read_to_string(path).ok()?;
        text.lines().find_map(|line| {
            line.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse().ok())
        })
    })
}
