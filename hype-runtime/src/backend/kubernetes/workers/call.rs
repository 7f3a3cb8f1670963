//! One call on a worker: sent on the worker's stream, its output lines
//! passed to the call's log sink as they come, its outcome read from
//! `Outcome` and `Ended`. Meanwhile the worker's pod is watched as a
//! call's pod is ([`status`](super::super::status)): a pod deleted,
//! evicted, preempted or ended fails the call with the error the one-pod
//! runner gives (kind `Lost` where it is a loss), and the worker is
//! dropped. Dropping the call's future (a timeout, a cancel) sends
//! `Cancel`: the worker kills the call's process and goes on.

use std::collections::VecDeque;
use std::time::Duration;

use super::super::status::{self, Progress};
use super::super::watch::PodEvent;
use super::Worker;
use super::stream::{CallEvent, Conn};
use crate::backend::{Ended, Job, describe_end, signal_of};
use crate::environment::RunEnvironment;
use crate::error::Error;
use crate::logs::Stream;
use crate::wire::{CallId, ExitStatus, OutputStream, WorkerEvent};

/// How many stderr lines a failed call's error carries.
const STDERR_TAIL_LINES: usize = 20;

/// Why a call failed.
pub(super) enum Failure {
    /// The call itself failed; the worker is fine.
    Call(Error),
    /// The worker cannot go on: drop it.
    Worker(Error),
}

impl Failure {
    pub fn into_error(self) -> Error {
        match self {
            Failure::Call(err) | Failure::Worker(err) => err,
        }
    }
}

/// Sends `Cancel` for the call when dropped while armed.
struct CancelOnDrop<'a> {
    conn: &'a Conn,
    id: CallId,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.conn.cancel(self.id);
        }
    }
}

/// Runs `job` on `worker`; gives the call's termination message.
pub(super) async fn run(
    worker: &Worker,
    job: &Job,
    env: &RunEnvironment,
    pending_timeout: Duration,
) -> Result<String, Failure> {
    let (id, mut events) = worker.conn.call(&job.execution_id, &job.call, &job.env);
    let mut guard = CancelOnDrop {
        conn: &worker.conn,
        id,
        armed: true,
    };
    let mut pod_events = worker.events.clone();
    let mut unschedulable_since: Option<tokio::time::Instant> = None;
    let mut outcome: Option<String> = None;
    let mut stderr_tail: VecDeque<String> = VecDeque::new();
    loop {
        let deadline = match diagnose(
            &pod_events.borrow_and_update(),
            worker,
            job,
            pending_timeout,
            &mut unschedulable_since,
        ) {
            Ok(deadline) => deadline,
            Err(err) => {
                guard.armed = false;
                return Err(Failure::Worker(err));
            }
        };
        tokio::select! {
            event = events.recv() => match event {
                None => {
                    guard.armed = false;
                    return Err(Failure::Worker(Error::Cluster {
                        operation: format!("run {} on worker pod {}", job.execution_id, worker.name),
                        message: "the worker's stream stopped".to_owned(),
                        source: None,
                    }));
                }
                Some(CallEvent::Failed(err)) => {
                    guard.armed = false;
                    // The pod's own word first: deleted, evicted, preempted.
                    let pod_says = diagnose(
                        &pod_events.borrow_and_update(),
                        worker,
                        job,
                        pending_timeout,
                        &mut unschedulable_since,
                    );
                    return Err(Failure::Worker(pod_says.err().unwrap_or(err)));
                }
                Some(CallEvent::Worker(event)) => match event {
                    WorkerEvent::Output { stream, line, .. } => {
                        let line = String::from_utf8_lossy(&line);
                        let stream = match stream {
                            OutputStream::Stderr => {
                                if stderr_tail.len() == STDERR_TAIL_LINES {
                                    stderr_tail.pop_front();
                                }
                                stderr_tail.push_back(line.clone().into_owned());
                                Stream::Stderr
                            }
                            _ => Stream::Stdout,
                        };
                        job.logs.line(stream, &line);
                    }
                    WorkerEvent::Outcome { message, .. } => outcome = Some(message),
                    WorkerEvent::Error { message, .. } => {
                        stderr_tail.push_back(format!("(hype worker: {message})"));
                    }
                    WorkerEvent::Ended { status, out_of_memory, .. } => {
                        guard.armed = false;
                        let tail = Vec::from(stderr_tail).join("\n");
                        return finish(job, env, outcome, status, out_of_memory, tail)
                            .map_err(Failure::Call);
                    }
                    _ => {}
                },
            },
            changed = pod_events.changed() => {
                if changed.is_err() {
                    guard.armed = false;
                    return Err(Failure::Worker(Error::Cluster {
                        operation: format!("watch worker pod {}", worker.name),
                        message: "the shared watch stopped".to_owned(),
                        source: None,
                    }));
                }
            }
            _ = sleep_until(deadline) => {}
        }
    }
}

/// The call's result from its worker's events.
fn finish(
    job: &Job,
    env: &RunEnvironment,
    outcome: Option<String>,
    status: ExitStatus,
    out_of_memory: bool,
    stderr_tail: String,
) -> Result<String, Error> {
    if let Some(message) = outcome
        && crate::wire::Reference::parse(&message).is_ok()
    {
        return Ok(message);
    }
    if out_of_memory {
        return Err(Error::OutOfMemory {
            function: job.function.to_owned(),
            execution_id: job.execution_id.clone(),
            limit: env.limits().get("memory").cloned(),
        });
    }
    let ended = match status {
        ExitStatus::Code(code) => Ended::Code(code.into()),
        ExitStatus::Signal(signal) => Ended::Signal(signal),
    };
    Err(Error::RunnerFailed {
        function: job.function.to_owned(),
        execution_id: job.execution_id.clone(),
        status: describe_end("the call's process on its worker", ended),
        stderr_tail,
        signal: signal_of(ended),
    })
}

/// What the worker's pod says for a call on it: nothing yet (with the
/// time to look again, while it is unschedulable), or the error the call
/// fails with.
fn diagnose(
    event: &PodEvent,
    worker: &Worker,
    job: &Job,
    pending_timeout: Duration,
    unschedulable_since: &mut Option<tokio::time::Instant>,
) -> Result<Option<tokio::time::Instant>, Error> {
    let pod = match event {
        PodEvent::Unseen => return Ok(None),
        PodEvent::Seen(pod) | PodEvent::Deleted(pod) => pod,
    };
    if matches!(event, PodEvent::Deleted(_)) || pod.metadata.deletion_timestamp.is_some() {
        return Err(Error::DeletedExternally {
            function: job.function.to_owned(),
            execution_id: job.execution_id.clone(),
        });
    }
    let ended = |what: String| Error::Cluster {
        operation: format!("run {} on worker pod {}", job.execution_id, worker.name),
        message: format!("the worker {what} while the call ran"),
        source: None,
    };
    match status::progress(pod) {
        Progress::Waiting {
            unschedulable: None,
        } => {
            *unschedulable_since = None;
            Ok(None)
        }
        Progress::Waiting {
            unschedulable: Some(message),
        } => {
            let since = *unschedulable_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() >= pending_timeout {
                return Err(Error::Unschedulable {
                    function: job.function.to_owned(),
                    execution_id: job.execution_id.clone(),
                    message,
                    after: pending_timeout,
                });
            }
            Ok(since.checked_add(pending_timeout))
        }
        Progress::Terminated {
            exit_code, reason, ..
        } => Err(ended(format!(
            "exited with code {exit_code}{}",
            reason.map(|r| format!(" ({r})")).unwrap_or_default()
        ))),
        Progress::FailedOtherwise { status } => Err(ended(format!("pod failed: {status}"))),
        diagnosed => Err(status::error(diagnosed, job, Some(pod))),
    }
}

/// Sleeps until `deadline`; for ever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
