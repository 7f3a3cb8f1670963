//! A pod's output, followed into the call's log sink while it runs:
//! `pods/{name}/log?follow=true` from when its container starts, one
//! stream per running pod, read to its end before the pod is deleted.
//!
//! A follow stream ends cleanly only once the container has ended and its
//! log is read to the end. If it breaks instead (an error), it is opened
//! again and the bytes already delivered are skipped: the log API serves a
//! container's log from its start, so the byte offset is exact, where
//! `sinceTime` (whole seconds) would repeat or lose the lines of that
//! second. (A log the kubelet rotated, past 10 MiB by default, starts
//! anew; lines before the rotation are then not repeated, but the offset
//! may skip some after it.)
//!
//! When the log cannot be read at all (the API server answers 5xx because
//! it cannot reach the node's kubelet on port 10250, or 403 because the
//! Role lacks `pods/log`), the call's result is unaffected, but its
//! output is lost: that is said once per session as a warning naming the
//! reason and what to check ([`LogTrouble`]), and under
//! [`LogMode::OnFailure`] the output held for a failed call says so
//! ([`LogFollow::unreadable`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerState, Pod};
use kube::Api;
use kube::api::LogParams;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::watch;
use tokio_util::compat::FuturesAsyncReadCompatExt as _;
use tokio_util::task::AbortOnDropHandle;

use super::pod::CONTAINER;
use super::watch::PodEvent;
use crate::logs::{self, LogMode, LogSink, Stream};

/// How many times a broken log stream is opened again.
const REOPENS: u32 = 5;

/// Unreadable logs, said once per session.
#[derive(Debug)]
pub(crate) struct LogTrouble {
    session: String,
    warned: AtomicBool,
}

impl LogTrouble {
    /// The log trouble of session `session`: none yet.
    pub(crate) fn new(session: &str) -> Arc<LogTrouble> {
        Arc::new(LogTrouble {
            session: session.to_owned(),
            warned: AtomicBool::new(false),
        })
    }

    /// Pod `pod`'s log cannot be read, for `reason`: a warning the first
    /// time in the session, a debug event after.
    fn report(&self, pod: &str, reason: &str) {
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(session = %self.session, %pod, %reason, "cannot read the pod's log");
            return;
        }
        tracing::warn!(
            session = %self.session,
            %pod,
            "cannot read the output of pod {pod} (pods/log): {reason}. The calls' stdout and stderr do not reach the caller; their results are unaffected (said once per session). Check that the Role grants get on pods/log (docs/rbac.yaml), and that the control plane can reach the nodes' kubelets on port 10250 (on a private GKE cluster: a firewall rule from the control plane's range to the nodes on tcp:10250)"
        );
    }
}

/// The follower of one pod's log.
pub(super) struct LogFollow {
    pods: Api<Pod>,
    name: String,
    sink: Arc<LogSink>,
    events: watch::Receiver<PodEvent>,
    task: Option<AbortOnDropHandle<()>>,
    trouble: Arc<LogTrouble>,
    /// Why the log could not be read, once the follower gave up.
    unreadable: Arc<Mutex<Option<String>>>,
}

impl LogFollow {
    /// A follower of pod `name`'s log that starts once its container has;
    /// a log that cannot be read is reported to `trouble`.
    pub(super) fn new(
        pods: Api<Pod>,
        name: &str,
        sink: Arc<LogSink>,
        events: watch::Receiver<PodEvent>,
        trouble: Arc<LogTrouble>,
    ) -> LogFollow {
        LogFollow {
            pods,
            name: name.to_owned(),
            sink,
            events,
            task: None,
            trouble,
            unreadable: Arc::default(),
        }
    }

    /// Why the pod's log could not be read, if the follower gave up on
    /// it (after [`drain`](Self::drain)).
    pub(super) fn unreadable(&self) -> Option<String> {
        self.unreadable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts following, once, when `pod`'s container has started (or
    /// already ended: its log stays readable until the pod is deleted).
    pub(super) fn seen(&mut self, pod: &Pod) {
        // With the output off, the stream is not worth its request.
        if self.task.is_some() || self.sink.mode() == LogMode::Off || !container_started(pod) {
            return;
        }
        let (pods, name, sink, events) = (
            self.pods.clone(),
            self.name.clone(),
            Arc::clone(&self.sink),
            self.events.clone(),
        );
        let (trouble, unreadable) = (Arc::clone(&self.trouble), Arc::clone(&self.unreadable));
        self.task = Some(AbortOnDropHandle::new(tokio::spawn(async move {
            if let Some(reason) = follow(pods, &name, sink, events).await {
                trouble.report(&name, &reason);
                *unreadable.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
            }
        })));
    }

    /// Waits (at most `bound`) for the log's end: the call is over, and
    /// the pod is about to be deleted.
    /// A container still running (the call timed out, say) is not waited
    /// for: its follower stops now.
    pub(super) async fn drain(&mut self, bound: Duration) {
        let Some(task) = self.task.take() else {
            return;
        };
        if !container_ended(&self.events.borrow()) {
            return;
        }
        if tokio::time::timeout(bound, task).await.is_err() {
            tracing::debug!(pod = %self.name, "the pod's log did not end within {bound:?}");
        }
    }
}

/// The state of the pod's `hype-run` container, once it has one.
fn container_state(pod: &Pod) -> Option<&ContainerState> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == CONTAINER)?
        .state
        .as_ref()
}

/// Whether the container has started (running, or already terminated).
fn container_started(pod: &Pod) -> bool {
    container_state(pod).is_some_and(|s| s.running.is_some() || s.terminated.is_some())
}

/// Whether the container has ended, or the pod is gone.
fn container_ended(event: &PodEvent) -> bool {
    match event {
        PodEvent::Unseen => false,
        PodEvent::Deleted(_) => true,
        PodEvent::Seen(pod) => container_state(pod).is_some_and(|s| s.terminated.is_some()),
    }
}

/// Follows the log to its end; gives the reason when it could not be
/// read (never opened, or given up on).
async fn follow(
    pods: Api<Pod>,
    name: &str,
    sink: Arc<LogSink>,
    mut events: watch::Receiver<PodEvent>,
) -> Option<String> {
    let params = LogParams {
        container: Some(CONTAINER.to_owned()),
        follow: true,
        ..LogParams::default()
    };
    let mut delivered = 0u64;
    let mut failure = None;
    for opened in 0..=REOPENS {
        match pods.log_stream(name, &params).await {
            Ok(stream) => {
                failure = None;
                let mut reader = Skip {
                    inner: stream.compat(),
                    skip: delivered,
                    seen: 0,
                    broke: false,
                };
                logs::pump(&mut reader, &sink, Stream::Output, 0).await;
                delivered = delivered.max(reader.seen);
                // A follow stream ends cleanly only when the container has
                // ended and its log is read to the end.
                if !reader.broke {
                    return None;
                }
                tracing::debug!(pod = %name, opened, delivered, "the pod's log stream broke; opening it again");
            }
            Err(err) => {
                tracing::debug!(pod = %name, %err, "cannot open the pod's log");
                if let Some(reason) = unreadable(&err) {
                    if refused(&err) {
                        // Asking again will not help.
                        return Some(reason);
                    }
                    failure = Some(reason);
                }
                // Not there yet, or not any more: once the container has
                // ended (or the pod is gone) there is nothing to wait for.
                if container_ended(&events.borrow_and_update()) {
                    return failure;
                }
            }
        }
        let pause = Duration::from_millis(100 << opened.min(4));
        if let Ok(Ok(_)) = tokio::time::timeout(pause, events.wait_for(is_deleted)).await {
            return failure;
        }
    }
    failure
}

/// Why a failure to open the log means it cannot be read, or `None` when
/// it only means "not now": 404 (the pod is gone) and 400 (its container
/// is not running yet, or no more).
fn unreadable(err: &kube::Error) -> Option<String> {
    match err {
        kube::Error::Api(status) if status.code == 404 || status.code == 400 => None,
        kube::Error::Api(status) => Some(format!(
            "{}: {} (HTTP {})",
            status.reason, status.message, status.code
        )),
        other => Some(other.to_string()),
    }
}

/// Whether the API refuses the log (401, 403).
fn refused(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 401 || status.code == 403)
}

/// Whether the pod is gone (its log with it).
fn is_deleted(event: &PodEvent) -> bool {
    matches!(event, PodEvent::Deleted(_))
}

/// A reader that drops its first `skip` bytes, counts all it reads, and
/// notes whether it ended in an error (a broken stream) rather than at
/// the stream's end. An error reads as the end.
struct Skip<R> {
    inner: R,
    skip: u64,
    seen: u64,
    broke: bool,
}

impl<R: AsyncRead + Unpin> AsyncRead for Skip<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let before = buf.filled().len();
            match Pin::new(&mut self.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => {
                    self.broke = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => return Poll::Pending,
            }
            let read = buf.filled().len() - before;
            if read == 0 {
                return Poll::Ready(Ok(()));
            }
            let start = self.seen;
            self.seen += read as u64;
            if self.seen <= self.skip {
                // All of it was delivered before: drop it, read on.
                buf.set_filled(before);
                continue;
            }
            let drop = self.skip.saturating_sub(start);
            if drop > 0 {
                // Some of it was: keep only the new bytes.
                let drop = usize::try_from(drop).unwrap_or(read);
                let filled = buf.filled_mut();
                filled.copy_within(before + drop.., before);
                buf.set_filled(before + read - drop);
            }
            return Poll::Ready(Ok(()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[tokio::test]
    async fn skip_drops_exactly_the_delivered_bytes() {
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        for skip in [0u64, 1, 4095, 4096, 9_999, 10_000, 20_000] {
            // Reads of 7 bytes, so skips fall inside and across reads.
            let mut reader = Skip {
                inner: tokio_test_reader(&data, 7),
                skip,
                seen: 0,
                broke: false,
            };
            let mut out = Vec::new();
            reader.read_to_end(&mut out).await.unwrap();
            let from = usize::try_from(skip).unwrap().min(data.len());
            assert_eq!(out, data[from..], "skip {skip}");
            assert_eq!(reader.seen, data.len() as u64);
        }
    }

    /// A reader handing out `data` `step` bytes at a time.
    fn tokio_test_reader(data: &[u8], step: usize) -> impl AsyncRead + Unpin {
        struct Steps(Vec<u8>, usize, usize);
        impl AsyncRead for Steps {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<std::io::Result<()>> {
                let (pos, step) = (self.1, self.2);
                let end = (pos + step).min(self.0.len()).min(pos + buf.remaining());
                let chunk = self.0[pos..end].to_vec();
                buf.put_slice(&chunk);
                self.1 = end;
                Poll::Ready(Ok(()))
            }
        }
        Steps(data.to_vec(), 0, step)
    }
}
