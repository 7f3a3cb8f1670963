//! One attached stream of a worker ([`Driver::session`]): `Attach` first,
//! the calls after `Ready`, then frames both ways until the stream breaks;
//! the replay rule (each call's events counted, as many replayed ones
//! dropped as were delivered; events before `Ready` dropped, as the replay
//! holds them) and the `Ack` of every `Ended`, sent with the next request
//! (a `Call`, a `Ping` at the latest).

use std::collections::HashMap;

use kube::api::AttachedProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::watch::PodEvent;
use super::stream::{CallEvent, Driver, lock};
use crate::error::Error;
use crate::wire::{
    CallId, FrameDecoder, WORKER_PROTOCOL_VERSION, WorkerEvent, WorkerRequest, encode_frame,
};

impl Driver {
    /// One stream, until it breaks (`Err`) or the worker is stopped.
    pub(super) async fn session(&mut self, attached: &mut AttachedProcess) -> Result<(), String> {
        let (Some(mut stdin), Some(mut stdout)) = (attached.stdin(), attached.stdout()) else {
            return Err("the attached stream has no stdin or stdout".to_owned());
        };
        write(&mut stdin, &mut Vec::new(), &WorkerRequest::Attach).await?;
        // Acks wait for the next request and go out in its write: written
        // alone, a small Ack right before the next Call holds that Call back
        // (Nagle's algorithm against a delayed ACK: 40 ms a call).
        let mut acks: Vec<WorkerRequest> = Vec::new();
        let mut seen: HashMap<CallId, usize> = HashMap::new();
        let mut decoder = FrameDecoder::new();
        let mut ready = false;
        let mut ping = tokio::time::interval(self.start.ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => {
                    // Shutdown was queued before the stop: send it if it is there.
                    while let Ok(request) = self.wakes.try_recv() {
                        if matches!(request, WorkerRequest::Shutdown) {
                            let _ = write(&mut stdin, &mut acks, &request).await;
                        }
                    }
                    return Ok(());
                }
                read = stdout.read(&mut buffer) => {
                    let n = read.map_err(|err| format!("reading the stream: {err}"))?;
                    if n == 0 {
                        return Err("the stream ended".to_owned());
                    }
                    decoder.push(&buffer[..n]).map_err(|err| err.to_string())?;
                    while let Some(event) = decoder
                        .next_message::<WorkerEvent>()
                        .map_err(|err| err.to_string())?
                    {
                        if let WorkerEvent::Ready { protocol, executable_sha256 } = &event {
                            self.check_ready(*protocol, executable_sha256)?;
                            ready = true;
                            for request in self.pending() {
                                write(&mut stdin, &mut acks, &request).await?;
                            }
                            continue;
                        }
                        if !ready {
                            // Live output from before the worker read
                            // `Attach`: its replay, after `Ready`, holds it.
                            continue;
                        }
                        if let Some(ack) = self.route(event, &mut seen) {
                            acks.push(ack);
                        }
                    }
                }
                wake = self.wakes.recv() => match wake {
                    None => return Ok(()),
                    // Before Ready, calls wait: they are sent with the rest then.
                    Some(request) if ready && self.still_wanted(&request) => {
                        write(&mut stdin, &mut acks, &request).await?;
                    }
                    Some(_) => {}
                },
                _ = ping.tick() => write(&mut stdin, &mut acks, &WorkerRequest::Ping).await?,
                changed = self.start.events.changed() => {
                    if changed.is_err() {
                        return Err("the watch of the pod stopped".to_owned());
                    }
                    let gone = match &*self.start.events.borrow() {
                        PodEvent::Deleted(_) => true,
                        PodEvent::Seen(pod) => pod.metadata.deletion_timestamp.is_some()
                            || matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")),
                        PodEvent::Unseen => false,
                    };
                    if gone {
                        self.mark_dead("its pod is gone".to_owned());
                        return Ok(());
                    }
                }
            }
        }
    }

    fn check_ready(&self, protocol: u32, sha256: &str) -> Result<(), String> {
        let why = if protocol != WORKER_PROTOCOL_VERSION {
            format!(
                "worker pod {} speaks protocol {protocol}, this submitter {WORKER_PROTOCOL_VERSION}: use the same hype version in the image",
                self.start.name
            )
        } else if let Some(expected) = &self.start.executable_sha256
            && expected != sha256
        {
            format!(
                "worker pod {} runs executable {sha256}, not {expected}",
                self.start.name
            )
        } else {
            return Ok(());
        };
        self.fail_all(Error::Config {
            message: why.clone(),
        });
        self.stop.cancel();
        Err(why)
    }

    /// What a new stream sends after `Ready`: the calls without `Started`,
    /// and the cancels not yet answered.
    fn pending(&self) -> Vec<WorkerRequest> {
        let calls = lock(&self.calls);
        let mut ids: Vec<&CallId> = calls.entries.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| {
                let entry = &calls.entries[id];
                match (&entry.events, entry.started) {
                    (None, _) => Some(WorkerRequest::Cancel { id: *id }),
                    (Some(_), false) => Some(entry.request.clone()),
                    (Some(_), true) => None,
                }
            })
            .collect()
    }

    /// Whether a queued request still applies (a call not started yet, a
    /// cancel of a call not ended).
    fn still_wanted(&self, request: &WorkerRequest) -> bool {
        let calls = lock(&self.calls);
        match request {
            WorkerRequest::Call { id, .. } => calls.entries.get(id).is_some_and(|e| !e.started),
            WorkerRequest::Cancel { id } => calls.entries.contains_key(id),
            _ => true,
        }
    }

    /// Hands an event to its call once (the replay rule); gives the `Ack`
    /// an `Ended` calls for.
    fn route(
        &self,
        event: WorkerEvent,
        seen: &mut HashMap<CallId, usize>,
    ) -> Option<WorkerRequest> {
        let id = match &event {
            WorkerEvent::Started { id, .. }
            | WorkerEvent::Output { id, .. }
            | WorkerEvent::Outcome { id, .. }
            | WorkerEvent::Ended { id, .. } => *id,
            WorkerEvent::Error { id: Some(id), .. } => *id,
            WorkerEvent::Error { id: None, message } => {
                tracing::warn!(worker = %self.start.name, %message, "the worker reports trouble");
                return None;
            }
            _ => return None,
        };
        let ended = matches!(event, WorkerEvent::Ended { .. });
        let count = seen.entry(id).or_default();
        *count += 1;
        let mut calls = lock(&self.calls);
        let Some(entry) = calls.entries.get_mut(&id) else {
            // Delivered and acknowledged before: acknowledge again.
            return ended.then_some(WorkerRequest::Ack { id });
        };
        if *count <= entry.received {
            return None;
        }
        entry.received += 1;
        if matches!(event, WorkerEvent::Started { .. }) {
            entry.started = true;
        }
        if let Some(events) = &entry.events {
            let _ = events.send(CallEvent::Worker(event));
        }
        if ended {
            calls.entries.remove(&id);
            return Some(WorkerRequest::Ack { id });
        }
        None
    }
}

/// Writes the waiting acks (taken) and one request, as frames in one write.
async fn write(
    stdin: &mut (impl tokio::io::AsyncWrite + Unpin),
    acks: &mut Vec<WorkerRequest>,
    request: &WorkerRequest,
) -> Result<(), String> {
    let mut bytes = Vec::new();
    for message in acks.drain(..).chain(std::iter::once(request.clone())) {
        bytes.extend(encode_frame(&message).map_err(|err| err.to_string())?);
    }
    stdin
        .write_all(&bytes)
        .await
        .map_err(|err| format!("writing the stream: {err}"))?;
    stdin
        .flush()
        .await
        .map_err(|err| format!("writing the stream: {err}"))
}
