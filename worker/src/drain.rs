//! [`Drain`]: the same queue workers as `worker serve`, polled in rounds until the queue has
//! nothing due or time runs out, for a process that lives for one invocation (the scheduled
//! Lambda function, [`crate::scheduled`]) instead of a runner that waits for `NOTIFY`.

use std::{future::Future, pin::Pin};

use serde::Serialize;
use tokio::time::Instant;

use crate::runner::{Poll, Stop, WorkError, Worker};

type PollFuture<'a> = Pin<Box<dyn Future<Output = Result<Poll, WorkError>> + Send + 'a>>;

/// A [`Worker`] behind a pointer: `Worker::poll` returns an unnamed future.
trait BoxedWorker: Send {
    fn name(&self) -> &str;
    fn poll_boxed<'a>(&'a mut self, stop: &'a Stop) -> PollFuture<'a>;
}

impl<W: Worker> BoxedWorker for W {
    fn name(&self) -> &str {
        Worker::name(self)
    }

    fn poll_boxed<'a>(&'a mut self, stop: &'a Stop) -> PollFuture<'a> {
        Box::pin(self.poll(stop))
    }
}

/// The workers to drain, in registration order (item events' fan-out before the deliveries it
/// creates, so one round carries an event to its receivers).
#[derive(Default)]
pub struct Drain {
    workers: Vec<Box<dyn BoxedWorker>>,
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.workers.iter().map(|w| w.name()))
            .finish()
    }
}

/// Why a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// A round in which no worker claimed anything: nothing is due.
    Empty,
    /// `claim_until` came first; what is still due waits for the next run.
    OutOfTime,
    /// Every worker's poll failed in one round (the database is unreachable, say).
    Failing,
}

/// What a drain did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drained {
    pub finish: Finish,
    pub rounds: u32,
    /// Polls that claimed jobs.
    pub busy_polls: u32,
    pub failed_polls: u32,
}

impl Drain {
    pub fn push<W: Worker>(&mut self, worker: W) {
        self.workers.push(Box::new(worker));
    }

    /// Polls every worker in turn, round after round, until a round in which none claimed a
    /// job. No poll starts after `claim_until`; jobs still running at `abort_at` are released
    /// (due again for the next run).
    pub async fn run(mut self, claim_until: Instant, abort_at: Instant) -> Drained {
        let stop = Stop::aborting_at(abort_at);
        let mut drained = Drained {
            finish: Finish::Empty,
            rounds: 0,
            busy_polls: 0,
            failed_polls: 0,
        };
        if self.workers.is_empty() {
            return drained;
        }
        loop {
            drained.rounds += 1;
            let (mut busy, mut failed) = (false, 0);
            for worker in &mut self.workers {
                if Instant::now() >= claim_until {
                    drained.finish = Finish::OutOfTime;
                    return drained;
                }
                match worker.poll_boxed(&stop).await {
                    Ok(Poll::Busy) => {
                        busy = true;
                        drained.busy_polls += 1;
                    }
                    Ok(Poll::Idle) => {}
                    Err(e) => {
                        failed += 1;
                        drained.failed_polls += 1;
                        tracing::warn!(worker = worker.name(), error = %e, "poll failed");
                    }
                }
            }
            if failed == self.workers.len() {
                drained.finish = Finish::Failing;
                return drained;
            }
            if !busy {
                return drained;
            }
        }
    }
}
