//! [`QueueWorker`]: the [`Worker`] that drains one job kind from the `jobs` table
//! (`shared::repo::jobs`): claim a batch, run each job under the kind's timeout while a
//! heartbeat keeps the leases alive, then complete and fail them in one statement each.
//!
//! A kind is one [`Job`] type (in `shared`, where the API enqueues it) and one [`JobHandler`]
//! here; see ARCHITECTURE.md for why a trait and not an enum.

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use shared::{
    db::Db,
    repo::jobs::{self, ClaimedJob, Failure, Job, Lease},
};
use tokio::task::JoinSet;

use crate::{
    drain::Drain,
    metrics::{Metrics, Outcome as Counted},
    runner::{Poll, Runner, Stop, Wake, WorkError, Worker},
};

/// Why one run of a job failed; recorded as the job's `last_error`. A [`RetryAfter`] inside
/// sets when the next attempt runs.
pub type JobError = Box<dyn std::error::Error + Send + Sync>;

/// A failure that knows when to try again (an HTTP `Retry-After`): the next attempt waits
/// `after` instead of the kind's schedule, at most a day.
#[derive(Debug, thiserror::Error)]
#[error("{error} (retry after {after:?})")]
pub struct RetryAfter {
    pub after: Duration,
    pub error: JobError,
}

/// The longest wait a [`RetryAfter`] may ask for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What the worker does with one kind of job.
pub trait JobHandler: Send + Sync + 'static {
    type Job: Job;

    /// A run taking longer is cancelled and counts as a failed attempt.
    const TIMEOUT: Duration = Duration::from_secs(60);

    /// The wait before the attempt after failed attempt number `attempt` (1 for the first),
    /// `jitter` uniform in [0, 1]; by default [`jobs::retry_delay`] (attempt⁴ s ± 10 %).
    fn retry_delay(&self, attempt: i32, jitter: f64) -> Duration {
        jobs::retry_delay(attempt, jitter)
    }

    fn run(&self, job: Self::Job) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// Drains one kind: see the module docs.
pub struct QueueWorker<H> {
    db: Db,
    handler: Arc<H>,
    name: String,
    owner: String,
    batch: i64,
    lease: Duration,
    metrics: Option<Metrics>,
    /// Any claim counts as busy (see [`QueueWorker::eager`]).
    eager: bool,
}

impl<H: JobHandler> QueueWorker<H> {
    /// A worker for `H`'s kind; `owner` names this process in the leases it takes.
    pub fn new(db: Db, handler: H, owner: impl Into<String>) -> Self {
        Self {
            db,
            handler: Arc::new(handler),
            name: format!("jobs:{}", H::Job::KIND),
            owner: owner.into(),
            batch: 10,
            lease: Duration::from_secs(30),
            metrics: None,
            eager: false,
        }
    }

    /// Every poll that claimed a job is [`Poll::Busy`], a short batch too: for a caller that
    /// stops at the first round in which nothing was claimed (the Lambda drain), where a
    /// `NOTIFY` would not come to end a wait.
    pub fn eager(mut self, eager: bool) -> Self {
        self.eager = eager;
        self
    }

    /// Records outcomes and claim waits in `metrics`.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, outcome: Counted, n: usize) {
        if let Some(m) = &self.metrics {
            m.finished(H::Job::KIND, outcome, n as u64);
        }
    }

    /// Jobs claimed (and run concurrently) per poll.
    pub fn batch(mut self, batch: i64) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How long a claim holds without a heartbeat; a killed worker's jobs run again after it.
    /// Heartbeats renew it every third of that.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
}

/// How one run ended.
enum Outcome {
    Done,
    /// The error's text, and the wait it asked for ([`RetryAfter`]).
    Failed(String, Option<Duration>),
}

impl Outcome {
    fn failed(error: impl Into<String>) -> Self {
        Self::Failed(error.into(), None)
    }
}

impl<H: JobHandler> QueueWorker<H> {
    async fn run_batch(&self, claimed: Vec<ClaimedJob>, stop: &Stop) -> Result<(), WorkError> {
        let mut running: HashMap<tokio::task::Id, Lease> = HashMap::new();
        let mut set = JoinSet::new();
        for job in claimed {
            let lease = Lease::from(&job);
            let handler = self.handler.clone();
            let handle = set.spawn(async move { run_one(&*handler, job).await });
            running.insert(handle.id(), lease);
        }
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let mut heartbeat = tokio::time::interval((self.lease / 3).max(Duration::from_millis(1)));
        heartbeat.tick().await; // the first tick is immediate; the claim just set the lease
        let mut released = Vec::new();
        loop {
            tokio::select! {
                joined = set.join_next_with_id() => {
                    let Some(joined) = joined else { break };
                    let (id, outcome) = match joined {
                        Ok((id, outcome)) => (id, outcome),
                        Err(e) => (e.id(), Outcome::failed("the handler panicked")),
                    };
                    let Some(lease) = running.remove(&id) else { continue };
                    match outcome {
                        Outcome::Done => done.push(lease),
                        Outcome::Failed(error, asked) => failed.push(Failure {
                            lease,
                            error,
                            retry_in: asked.unwrap_or_else(|| {
                                self.handler.retry_delay(lease.attempt, rand::random::<f64>())
                            }),
                        }),
                    }
                }
                _ = heartbeat.tick() => {
                    let leases: Vec<Lease> = running.values().copied().collect();
                    if let Err(e) = jobs::heartbeat(&self.db, &self.owner, &leases, self.lease).await {
                        // The leases may lapse and the jobs run again elsewhere: at-least-once.
                        tracing::warn!(worker = %self.name, error = %e, "heartbeat failed");
                    }
                }
                () = stop.aborted() => {
                    set.abort_all();
                    released = running.drain().map(|(_, lease)| lease).collect();
                    break;
                }
            }
        }
        // Outcomes first: if recording them fails, the leases lapse and the jobs run again.
        if !done.is_empty() {
            let n = jobs::complete(&self.db, &self.owner, &done).await?;
            self.count(Counted::completed, n as usize);
        }
        if !failed.is_empty() {
            let dead = jobs::fail(&self.db, &self.owner, &failed).await?;
            self.count(Counted::dead, dead.len());
            self.count(Counted::retried, failed.len() - dead.len());
            for f in &failed {
                let is_dead = dead.contains(&f.lease.id);
                tracing::warn!(
                    worker = %self.name, job = %f.lease.id, attempt = f.lease.attempt,
                    dead = is_dead, error = %f.error, "job failed"
                );
            }
        }
        if !released.is_empty() {
            let n = jobs::release(&self.db, &self.owner, &released).await?;
            self.count(Counted::released, n as usize);
            tracing::info!(worker = %self.name, released = n, "released unfinished jobs");
        }
        Ok(())
    }
}

async fn run_one<H: JobHandler>(handler: &H, job: ClaimedJob) -> Outcome {
    let payload = match serde_json::from_value::<H::Job>(job.payload) {
        Ok(payload) => payload,
        // Retrying will not fix it, but a dead job keeps the payload for an operator to see.
        Err(e) => return Outcome::failed(format!("payload does not decode: {e}")),
    };
    match tokio::time::timeout(H::TIMEOUT, handler.run(payload)).await {
        Ok(Ok(())) => Outcome::Done,
        Ok(Err(e)) => {
            let asked = e
                .downcast_ref::<RetryAfter>()
                .map(|r| r.after.min(MAX_RETRY_AFTER));
            Outcome::Failed(e.to_string(), asked)
        }
        Err(_) => Outcome::failed(format!("timed out after {:?}", H::TIMEOUT)),
    }
}

impl<H: JobHandler> Worker for QueueWorker<H> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn poll(&mut self, stop: &Stop) -> Result<Poll, WorkError> {
        let claimed =
            jobs::claim(&self.db, H::Job::KIND, &self.owner, self.batch, self.lease).await?;
        if claimed.is_empty() {
            return Ok(Poll::Idle);
        }
        if let Some(m) = &self.metrics {
            for job in &claimed {
                m.claimed(H::Job::KIND, job.waited_seconds);
            }
        }
        // A full batch may have left more behind: poll again at once. A short one took all
        // that was due, so polling again would only find nothing; a job enqueued meanwhile
        // sent a NOTIFY, which ends the next wait at once (a `Wake` is kept while busy).
        let full = self.eager || claimed.len() as i64 >= self.batch;
        self.run_batch(claimed, stop).await?;
        Ok(if full { Poll::Busy } else { Poll::Idle })
    }
}

/// The job kinds one process drains. [`Queues::drain`] gives a handler its own
/// [`QueueWorker`] under the runner (named `jobs:<kind>`), leased and batched as configured,
/// and registers its kind for the `LISTEN` connection to wake.
pub struct Queues<'r> {
    target: Target<'r>,
    db: Db,
    owner: String,
    lease: Duration,
    batch: i64,
    metrics: Metrics,
    wakes: HashMap<String, Wake>,
}

/// Where [`Queues::drain`] puts a kind's worker.
pub enum Target<'r> {
    /// Under the runner, woken by `NOTIFY` (`worker serve`).
    Runner(&'r mut Runner),
    /// Polled in rounds until none claims anything (the Lambda drain); its workers are eager
    /// ([`QueueWorker::eager`]).
    Drain(&'r mut Drain),
}

impl<'r> Queues<'r> {
    pub fn new(
        target: Target<'r>,
        db: Db,
        owner: String,
        lease: Duration,
        batch: u16,
        metrics: Metrics,
    ) -> Self {
        Self {
            target,
            db,
            owner,
            lease,
            batch: i64::from(batch),
            metrics,
            wakes: HashMap::new(),
        }
    }

    /// Drains `handler`'s kind. Registering a kind twice is a programming error.
    pub fn drain<H: JobHandler>(&mut self, handler: H) -> &mut Self {
        let worker = QueueWorker::new(self.db.clone(), handler, self.owner.clone())
            .lease(self.lease)
            .batch(self.batch)
            .metrics(self.metrics.clone());
        let wake = match &mut self.target {
            Target::Runner(runner) => runner.spawn(worker),
            Target::Drain(drain) => {
                drain.push(worker.eager(true));
                Wake::default()
            }
        };
        let previous = self.wakes.insert(H::Job::KIND.to_owned(), wake);
        assert!(previous.is_none(), "{} is drained twice", H::Job::KIND);
        self
    }

    /// Each registered kind's wake, for [`crate::listen::run`].
    pub fn into_wakes(self) -> HashMap<String, Wake> {
        self.wakes
    }
}
