//! The runner: everything generic about a long-running worker, so a worker is only its unit of
//! work ([`Worker::poll`]).
//!
//! Each worker runs in its own task and loop:
//! - after [`Poll::Busy`] it polls again at once;
//! - after [`Poll::Idle`] it waits `poll_active`, doubling with each further idle poll up to
//!   `poll_idle`; a [`Wake`] (a `NOTIFY` for its queue) ends the wait at once and resets it;
//! - after a failed poll it backs off exponentially with jitter (from `poll_active` up to
//!   `poll_idle`, "equal jitter": a random point in the upper half of each step) and, after
//!   `max_failures` consecutive failures, [`Runner::run_until`] returns
//!   [`RunError::TooManyFailures`] so the process exits non-zero and Kubernetes restarts it.
//!
//! Shutdown: the first signal stops every loop from starting another poll (a poll in progress
//! finishes) and gives them `shutdown_grace`; then [`Stop::aborted`] fires, which tells a poll
//! still running to release its work and return. A second signal returns at once.

use std::{
    future::Future,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use shared::config::WorkerSettings;
use tokio::{
    sync::{Notify, watch},
    task::JoinSet,
    time::Instant,
};

use crate::{
    health::{Health, WorkerStatus},
    metrics::Metrics,
};

/// What one poll found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// It did work and there may be more: poll again at once.
    Busy,
    /// Nothing to do: wait before the next poll.
    Idle,
}

/// A failed poll (the database is down, …). A failing *job* is not one: the queue records it
/// and the poll succeeds.
pub type WorkError = Box<dyn std::error::Error + Send + Sync>;

/// One kind of long-running work. The runner calls `poll` in a loop; see the module docs.
pub trait Worker: Send + 'static {
    /// The worker's name in logs, health output and metrics.
    fn name(&self) -> &str;

    /// Does one unit of work. `stop` says whether a shutdown's grace ran out while it runs.
    fn poll(&mut self, stop: &Stop) -> impl Future<Output = Result<Poll, WorkError>> + Send;
}

/// The runner's timing, from [`WorkerSettings`].
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    pub poll_active: Duration,
    pub poll_idle: Duration,
    pub max_failures: u32,
    pub shutdown_grace: Duration,
}

impl From<&WorkerSettings> for Cadence {
    fn from(s: &WorkerSettings) -> Self {
        Self {
            poll_active: s.poll_active,
            poll_idle: s.poll_idle,
            max_failures: s.max_failures,
            shutdown_grace: s.shutdown_grace,
        }
    }
}

impl Cadence {
    /// The wait after the `streak`-th consecutive idle poll (0-based).
    pub fn idle_wait(&self, streak: u32) -> Duration {
        self.poll_active
            .saturating_mul(1u32 << streak.min(20))
            .min(self.poll_idle)
    }

    /// The wait after the `failures`-th consecutive failure (1-based), `jitter` in [0, 1].
    pub fn backoff(&self, failures: u32, jitter: f64) -> Duration {
        let ceiling = self
            .poll_active
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(self.poll_idle);
        ceiling.div_f64(2.0) + ceiling.div_f64(2.0).mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Ends an idle worker's wait early (the LISTEN connection calls it on a `NOTIFY`). A wake
/// while the worker is busy is kept, so the next wait ends at once: none is lost.
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// What a poll sees of a shutdown in progress.
#[derive(Debug, Clone)]
pub struct Stop {
    draining: watch::Receiver<bool>,
    aborted: watch::Receiver<bool>,
    /// The senders, for a `Stop` no runner owns ([`Stop::never`]).
    _senders: Option<Arc<(watch::Sender<bool>, watch::Sender<bool>)>>,
}

impl Stop {
    /// A stop that never comes: for driving a worker's `poll` outside a runner (tests).
    pub fn never() -> Self {
        let (draining, aborted) = (watch::Sender::new(false), watch::Sender::new(false));
        Self {
            draining: draining.subscribe(),
            aborted: aborted.subscribe(),
            _senders: Some(Arc::new((draining, aborted))),
        }
    }

    /// A stop whose grace runs out at `at`: for a poll that must return by then (the scheduled
    /// Lambda drain, which then releases what is still running).
    pub fn aborting_at(at: tokio::time::Instant) -> Self {
        let stop = Self::never();
        if let Some(senders) = stop._senders.clone() {
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let _ = senders.1.send(true);
            });
        }
        stop
    }

    /// A signal arrived: finish what is running, start nothing new.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves when the shutdown grace has run out (never, without a shutdown): release what
    /// is still running and return.
    pub async fn aborted(&self) {
        let mut rx = self.aborted.clone();
        // An error means the runner is gone, which is an abort too.
        let _ = rx.wait_for(|aborted| *aborted).await;
    }

    async fn draining(&self) {
        let mut rx = self.draining.clone();
        let _ = rx.wait_for(|draining| *draining).await;
    }
}

/// Why the runner stopped other than by a signal.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("worker {worker}: {failures} consecutive failed polls, the last: {last}")]
    TooManyFailures {
        worker: String,
        failures: u32,
        last: String,
    },
    #[error("worker {worker} panicked")]
    Panicked { worker: String },
    #[error("a second signal arrived: stopped without waiting for running work")]
    Interrupted,
}

/// Runs workers until a signal or a worker's failure; see the module docs.
pub struct Runner {
    cadence: Cadence,
    health: Health,
    tasks: JoinSet<(String, Result<(), RunError>)>,
    draining: watch::Sender<bool>,
    aborted: watch::Sender<bool>,
    metrics: Option<Metrics>,
}

impl Runner {
    pub fn new(cadence: Cadence, health: Health) -> Self {
        Self {
            cadence,
            health,
            metrics: None,
            tasks: JoinSet::new(),
            draining: watch::Sender::new(false),
            aborted: watch::Sender::new(false),
        }
    }

    /// Counts failed polls in `metrics`.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Starts `worker`'s loop; the returned [`Wake`] ends its idle waits.
    pub fn spawn<W: Worker>(&mut self, worker: W) -> Wake {
        let wake = Wake::default();
        let status = self.health.register(worker.name());
        let stop = Stop {
            draining: self.draining.subscribe(),
            aborted: self.aborted.subscribe(),
            _senders: None,
        };
        let name = worker.name().to_owned();
        let cadence = self.cadence;
        let notify = wake.0.clone();
        let metrics = self.metrics.clone();
        self.tasks.spawn(async move {
            let result = drive(worker, cadence, stop, notify, status.clone(), metrics).await;
            status.stopped.store(true, Ordering::Relaxed);
            (name, result)
        });
        wake
    }

    /// Runs until every worker has stopped: after `signal` resolves once (graceful, see the
    /// module docs; `signal` is called again for a second signal), or as soon as one worker
    /// fails for good.
    pub async fn run_until<S, F>(mut self, mut signal: S) -> Result<(), RunError>
    where
        S: FnMut() -> F,
        F: Future<Output = ()>,
    {
        tokio::select! {
            () = signal() => {}
            Some(joined) = self.tasks.join_next() => {
                let result = outcome(joined);
                // A worker that returns before a signal has failed (or panicked); the others
                // are stopped at once: the process is about to exit and be restarted.
                self.draining.send_replace(true);
                self.aborted.send_replace(true);
                self.health.set_draining();
                let _ = tokio::time::timeout(Duration::from_secs(5), self.join_all()).await;
                return result;
            }
        }
        tracing::info!(
            grace_s = self.cadence.shutdown_grace.as_secs(),
            "stopping: finishing running work"
        );
        self.health.set_draining();
        self.draining.send_replace(true);
        let deadline = Instant::now() + self.cadence.shutdown_grace;
        let second = signal();
        tokio::pin!(second);
        tokio::select! {
            result = self.join_all() => return result,
            () = tokio::time::sleep_until(deadline) => {}
            () = &mut second => return Err(RunError::Interrupted),
        }
        tracing::warn!("shutdown grace ran out: releasing running work");
        self.aborted.send_replace(true);
        tokio::select! {
            result = self.join_all() => result,
            () = &mut second => Err(RunError::Interrupted),
        }
    }

    /// Waits for every loop; the first error wins.
    async fn join_all(&mut self) -> Result<(), RunError> {
        let mut result = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(e) = outcome(joined) {
                result = result.and(Err(e));
            }
        }
        result
    }
}

fn outcome(
    joined: Result<(String, Result<(), RunError>), tokio::task::JoinError>,
) -> Result<(), RunError> {
    match joined {
        Ok((_, result)) => result,
        Err(e) => Err(RunError::Panicked {
            worker: format!("task {}", e.id()),
        }),
    }
}

/// One worker's loop.
async fn drive<W: Worker>(
    mut worker: W,
    cadence: Cadence,
    stop: Stop,
    wake: Arc<Notify>,
    status: Arc<WorkerStatus>,
    metrics: Option<Metrics>,
) -> Result<(), RunError> {
    let mut failures = 0u32;
    let mut idle_streak = 0u32;
    loop {
        if stop.is_draining() {
            return Ok(());
        }
        status.turns.fetch_add(1, Ordering::Relaxed);
        let wait = match worker.poll(&stop).await {
            Ok(poll) => {
                failures = 0;
                status.backing_off.store(false, Ordering::Relaxed);
                match poll {
                    Poll::Busy => {
                        idle_streak = 0;
                        // Let the runtime's other tasks (health, heartbeats) in between polls.
                        tokio::task::yield_now().await;
                        continue;
                    }
                    Poll::Idle => {
                        let wait = cadence.idle_wait(idle_streak);
                        idle_streak = idle_streak.saturating_add(1);
                        wait
                    }
                }
            }
            Err(error) => {
                failures += 1;
                status.backing_off.store(true, Ordering::Relaxed);
                if let Some(m) = &metrics {
                    m.poll_failed(worker.name());
                }
                if failures >= cadence.max_failures {
                    tracing::error!(worker = worker.name(), failures, %error, "giving up");
                    return Err(RunError::TooManyFailures {
                        worker: worker.name().to_owned(),
                        failures,
                        last: error.to_string(),
                    });
                }
                let delay = cadence.backoff(failures, rand::random::<f64>());
                tracing::warn!(
                    worker = worker.name(),
                    failures,
                    delay_ms = delay.as_millis() as u64,
                    %error,
                    "poll failed, backing off"
                );
                // A wake must not cut a backoff short: the failure is likely still there.
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.draining() => return Ok(()),
                }
                continue;
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => idle_streak = 0,
            () = stop.draining() => return Ok(()),
        }
    }
}
