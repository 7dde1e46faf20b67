//! The maintenance worker: deletes completed jobs older than `JOBS_RETENTION_HOURS`, a bounded
//! batch per poll (busy while a full batch went, so a backlog drains without one long
//! statement). Dead jobs stay until an operator replays or discards them. Webhook deliveries
//! that finished (delivered or dead) more than [`DELIVERY_RETENTION`] ago go the same way.

use std::time::Duration;

use shared::{
    db::Db,
    repo::{jobs, webhook_deliveries},
};

use crate::runner::{Poll, Stop, WorkError, Worker};

/// Rows deleted per statement: small enough that a pass never holds many locks for long.
const BATCH: i64 = 1000;

/// How long a finished webhook delivery stays listed (and replayable): 30 days.
pub const DELIVERY_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

pub struct Retention {
    db: Db,
    keep: Duration,
}

impl Retention {
    pub fn new(db: Db, keep: Duration) -> Self {
        Self { db, keep }
    }
}

impl Worker for Retention {
    fn name(&self) -> &str {
        "retention"
    }

    async fn poll(&mut self, _stop: &Stop) -> Result<Poll, WorkError> {
        let deleted = jobs::purge_completed(&self.db, self.keep, BATCH).await?;
        if deleted > 0 {
            tracing::info!(deleted, "deleted completed jobs past retention");
        }
        let deliveries =
            webhook_deliveries::purge_finished(&self.db, DELIVERY_RETENTION, BATCH).await?;
        if deliveries > 0 {
            tracing::info!(deliveries, "deleted webhook deliveries past retention");
        }
        Ok(if deleted as i64 == BATCH || deliveries as i64 == BATCH {
            Poll::Busy
        } else {
            Poll::Idle
        })
    }
}
