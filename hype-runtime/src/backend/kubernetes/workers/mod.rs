//! Warm workers on Kubernetes (issue 19): pods that each run many calls of
//! one environment and one build, every call a fresh `hype-run` process of
//! the worker's `hype-run --worker`.
//!
//! - Workers are pooled by key ([`pod::key`]: the worker pod's spec and the
//!   shipped executable's SHA-256): calls of another environment or
//!   another build never share a worker.
//! - Scheduling: a call takes the least busy worker below
//!   `calls_per_worker` (an idle one first, a ready one before a starting
//!   one); else a new worker is started while fewer than `up_to` exist;
//!   else the call waits for a free one. The wait counts against the
//!   call's timeout.
//! - `keep_warm(k)` workers are started at the pool's first call. Workers
//!   idle for `idle_for` are shut down (`Shutdown`, then the pod is
//!   deleted) while more than `k` exist. Workers are told an idle time
//!   30 s longer than the submitter's (or 1 h with warm workers), so the
//!   submitter decides first; a worker whose submitter vanished exits on
//!   its own after that time without a request.
//! - A worker whose pod is gone, or whose stream could not be re-opened
//!   within [`stream::RECONNECT_BOUND`], is dropped from its pool and its
//!   pod deleted; its calls fail with an error of kind `Lost`.
//! - `close` shuts down and deletes every worker. Worker pods carry the
//!   session's labels and the Lease's ownerReference, so the close sweep,
//!   the garbage collector and `hype gc` remove what is left.
//!
//! - The pool writes each worker's state (starting, idle, busy N, calls
//!   run) on its pod's annotations for `hype ps`, when it changed and at
//!   most once every 10 s per worker ([`report`]).
//!
//! Files: `pod` (the worker pod and the key), `report` (the state on the
//! pod), `stream` (a worker's
//! stream: its pod created, attached, re-attached), `session` (one
//! attached stream: replay, dedupe, acks), `call` (one call on a worker).

mod call;
pub(crate) mod pod;
mod report;
mod session;
pub(crate) mod stream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::Api;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use self::stream::Conn;
use super::deletion::Deleter;
use super::watch::{PodEvent, WatchHandle};
use crate::backend::Job;
use crate::environment::{MAX_IDLE_FOR, RunEnvironment, Workers};
use crate::error::Error;

/// What every pool of a runner shares.
#[derive(Debug)]
pub(crate) struct Context {
    pub pods: Api<Pod>,
    pub namespace: String,
    pub session: String,
    pub deleter: Deleter,
    pub watch: WatchHandle,
    /// The session's Lease (none when pods are kept).
    pub owner: Option<OwnerReference>,
    pub pending_timeout: Duration,
    /// Cancelled when the runner closes or is dropped.
    pub closed: CancellationToken,
}

/// The worker pools of one runner, by key.
#[derive(Debug)]
pub(crate) struct WorkerPools {
    context: Arc<Context>,
    /// By key and settings: environments that differ only in their
    /// [`Workers`] get pools of their own.
    pools: Mutex<HashMap<(String, Workers), Arc<Pool>>>,
    /// `HYPE_WORKERS`: the workers of environments that set none.
    default: Option<usize>,
}

impl Drop for WorkerPools {
    fn drop(&mut self) {
        self.context.closed.cancel();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WorkerPools {
    pub fn new(context: Context, default: Option<usize>) -> WorkerPools {
        WorkerPools {
            context: Arc::new(context),
            pools: Mutex::default(),
            default,
        }
    }

    /// The workers calls in `env` run on, if any.
    pub fn settings(&self, env: &RunEnvironment) -> Option<Workers> {
        env.workers()
            .copied()
            .or_else(|| self.default.map(Workers::up_to))
    }

    /// Runs `job` on a worker of its pool; the timeout covers the wait
    /// for a worker.
    pub async fn run(
        &self,
        job: Job,
        env: &RunEnvironment,
        workers: Workers,
    ) -> Result<String, Error> {
        let key = pod::key(&self.context.session, &job, env)?;
        let pool = {
            let mut pools = lock(&self.pools);
            Arc::clone(
                pools
                    .entry((key, workers))
                    .or_insert_with(|| Pool::new(Arc::clone(&self.context), workers)),
            )
        };
        let timeout = env.timeout();
        match tokio::time::timeout(timeout, pool.run(&job, env)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                function: job.function.to_owned(),
                execution_id: job.execution_id.clone(),
                after: timeout,
            }),
        }
    }

    /// Shuts down and deletes every worker.
    pub async fn close(&self) {
        let pools: Vec<Arc<Pool>> = lock(&self.pools).drain().map(|(_, p)| p).collect();
        for pool in pools {
            pool.retire_all().await;
        }
        self.context.closed.cancel();
    }
}

/// One worker.
#[derive(Debug)]
struct Worker {
    name: String,
    conn: Conn,
    events: watch::Receiver<PodEvent>,
}

impl Worker {
    /// Whether its pod has been seen (it exists).
    fn seen(&self) -> bool {
        matches!(&*self.events.borrow(), PodEvent::Seen(_))
    }

    fn ready(&self) -> bool {
        matches!(&*self.events.borrow(), PodEvent::Seen(pod)
            if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    }
}

/// A worker in its pool.
#[derive(Debug)]
struct Slot {
    worker: Arc<Worker>,
    busy: usize,
    idle_since: tokio::time::Instant,
    /// Calls it has run.
    calls: u64,
    /// Its state as last written on its pod.
    reported: report::Reported,
}

impl Slot {
    fn new(worker: Arc<Worker>, busy: usize) -> Slot {
        Slot {
            worker,
            busy,
            idle_since: tokio::time::Instant::now(),
            calls: 0,
            reported: report::Reported::default(),
        }
    }
}

/// The workers of one key.
#[derive(Debug)]
struct Pool {
    context: Arc<Context>,
    settings: Workers,
    slots: Mutex<PoolState>,
    freed: Notify,
}

#[derive(Debug, Default)]
struct PoolState {
    slots: Vec<Slot>,
    warmed: bool,
}

/// A call's hold on a worker; released when dropped.
struct Busy {
    pool: Arc<Pool>,
    worker: Arc<Worker>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.pool.slots);
            if let Some(slot) = state
                .slots
                .iter_mut()
                .find(|s| Arc::ptr_eq(&s.worker, &self.worker))
            {
                slot.busy = slot.busy.saturating_sub(1);
                slot.calls += 1;
                slot.idle_since = tokio::time::Instant::now();
            }
        }
        self.pool.freed.notify_waiters();
    }
}

impl Pool {
    fn new(context: Arc<Context>, settings: Workers) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            context,
            settings,
            slots: Mutex::default(),
            freed: Notify::new(),
        });
        tokio::spawn(reap(Arc::downgrade(&pool), pool.context.closed.clone()));
        pool
    }

    async fn run(self: &Arc<Self>, job: &Job, env: &RunEnvironment) -> Result<String, Error> {
        let busy = self.acquire(job, env).await?;
        let result = call::run(&busy.worker, job, env, self.context.pending_timeout).await;
        if let Err(call::Failure::Worker(_)) = &result {
            self.retire(&busy.worker).await;
        }
        result.map_err(call::Failure::into_error)
    }

    /// A worker for the call: the least busy one with room, else a new
    /// one, else the next one freed.
    async fn acquire(self: &Arc<Self>, job: &Job, env: &RunEnvironment) -> Result<Busy, Error> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let dead = {
                let mut state = lock(&self.slots);
                let (alive, dead): (Vec<Slot>, Vec<Slot>) = std::mem::take(&mut state.slots)
                    .into_iter()
                    .partition(|s| s.worker.conn.dead().is_none());
                state.slots = alive;
                if !state.warmed {
                    state.warmed = true;
                    for _ in 0..self.settings.warm() {
                        let worker = self.start_worker(job, env)?;
                        state.slots.push(Slot::new(worker, 0));
                    }
                }
                let room = self.settings.calls_at_once();
                let chosen = state
                    .slots
                    .iter_mut()
                    .filter(|s| s.busy < room)
                    .min_by_key(|s| (s.busy, !s.worker.ready()));
                if let Some(slot) = chosen {
                    slot.busy += 1;
                    return Ok(Busy {
                        pool: Arc::clone(self),
                        worker: Arc::clone(&slot.worker),
                    });
                }
                if state.slots.len() < self.settings.max() {
                    let worker = self.start_worker(job, env)?;
                    state.slots.push(Slot::new(Arc::clone(&worker), 1));
                    return Ok(Busy {
                        pool: Arc::clone(self),
                        worker,
                    });
                }
                dead
            };
            for slot in dead {
                self.remove(&slot.worker).await;
            }
            freed.await;
        }
    }

    /// Creates a worker (its pod and stream start in the background).
    fn start_worker(&self, job: &Job, env: &RunEnvironment) -> Result<Arc<Worker>, Error> {
        let context = &self.context;
        let name = format!("hype-worker-{}", crate::ids::random_suffix(12));
        let idle = if self.settings.warm() > 0 {
            MAX_IDLE_FOR
        } else {
            self.settings.idle_time() + pod::SELF_EXIT_MARGIN
        };
        let spec = pod::build(
            &name,
            &context.session,
            job,
            env,
            context.owner.as_ref(),
            idle,
        )?;
        let events = context.watch.register(&name);
        let conn = Conn::start(stream::Start {
            pods: context.pods.clone(),
            namespace: context.namespace.clone(),
            name: name.clone(),
            pod: spec,
            events: events.clone(),
            ping_every: stream::ping_interval(idle),
            executable_sha256: job
                .executable
                .as_ref()
                .and_then(|e| e.blob.as_ref())
                .map(|b| b.sha256.clone()),
            closed: context.closed.clone(),
        });
        tracing::debug!(worker = %name, "starting a worker");
        Ok(Arc::new(Worker { name, conn, events }))
    }

    /// Drops a worker from the pool and deletes it.
    async fn retire(&self, worker: &Arc<Worker>) {
        lock(&self.slots)
            .slots
            .retain(|s| !Arc::ptr_eq(&s.worker, worker));
        self.remove(worker).await;
        self.freed.notify_waiters();
    }

    /// Shuts a worker down and deletes its pod.
    async fn remove(&self, worker: &Worker) {
        worker.conn.shutdown();
        self.context.deleter.delete(&worker.name).await;
        self.context.watch.unregister(&worker.name);
    }

    async fn retire_all(&self) {
        let slots = std::mem::take(&mut lock(&self.slots).slots);
        for slot in slots {
            self.remove(&slot.worker).await;
        }
    }
}

/// Shuts down the workers of `pool` idle for its `idle_for`, while more
/// than its warm ones exist, and writes the workers' states that are due
/// on their pods; ends with the pool or the runner.
async fn reap(pool: Weak<Pool>, closed: CancellationToken) {
    loop {
        let Some(strong) = pool.upgrade() else { return };
        let idle_for = strong.settings.idle_time();
        let every = (idle_for / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let expired: Vec<Arc<Worker>> = {
            let mut state = lock(&strong.slots);
            let mut expired = Vec::new();
            let now = tokio::time::Instant::now();
            while state.slots.len() > strong.settings.warm() {
                let Some(index) = state.slots.iter().position(|s| {
                    s.busy == 0
                        && (now.duration_since(s.idle_since) >= idle_for
                            || s.worker.conn.dead().is_some())
                }) else {
                    break;
                };
                expired.push(state.slots.remove(index).worker);
            }
            expired
        };
        for worker in expired {
            tracing::debug!(worker = %worker.name, ?idle_for, "shutting down an idle worker");
            strong.remove(&worker).await;
        }
        let due: Vec<(String, report::State)> = {
            let mut state = lock(&strong.slots);
            let now = tokio::time::Instant::now();
            state
                .slots
                .iter_mut()
                .filter(|s| s.worker.seen())
                .filter_map(|s| {
                    let current = report::State::of(s.worker.ready(), s.busy, s.calls);
                    s.reported
                        .take_due(&current, now)
                        .then(|| (s.worker.name.clone(), current))
                })
                .collect()
        };
        for (name, state) in due {
            report::write(&strong.context.pods, &name, &state).await;
        }
        drop(strong);
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
