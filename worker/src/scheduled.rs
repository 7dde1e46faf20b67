//! The worker as a scheduled Lambda function (`worker-drain`, run every minute by an
//! EventBridge schedule in `template.yaml`): each invocation drains what is due through the
//! same handlers and queue workers as `worker serve` ([`crate::handlers::register`],
//! [`crate::queue::QueueWorker`]), in rounds ([`Drain`]) until nothing is due or the
//! invocation's time is nearly up. Overlapping invocations are safe: claims skip each other's
//! rows, as several `worker serve` processes do.

use std::{sync::Arc, time::Duration};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use shared::{
    config::{DatabaseSettings, Env, WebhookSettings, WorkerSettings},
    db::Db,
    lambda::Invocation,
};
use tokio::time::Instant;

use crate::{
    drain::{Drain, Drained, Finish},
    handlers,
    metrics::Metrics,
    queue::{Queues, Target},
    webhooks::{SetupError, Webhooks},
};

/// Kept free at the end of an invocation: no claim after the deadline less this (plus the
/// webhook timeout, since a delivery started then may take that long), and what is still
/// running this long before the deadline is released.
const RELEASE_MARGIN: Duration = Duration::from_secs(3);

/// The invocation's time left, from its `deadline` (epoch milliseconds) at `now_ms`. A deadline
/// before 2001 is not one: `cargo lambda watch` sends its invoke timeout there (600000, ten
/// minutes), so such a value is read as the milliseconds left.
pub fn time_left(deadline: u64, now_ms: i64) -> Duration {
    const EPOCH_2001_MS: u64 = 978_307_200_000;
    if deadline < EPOCH_2001_MS {
        return Duration::from_millis(deadline);
    }
    let now = u64::try_from(now_ms).unwrap_or(0);
    Duration::from_millis(deadline.saturating_sub(now))
}

/// One container's state, made once outside the handler: the pool and the handlers.
pub struct Scheduled {
    db: Db,
    webhooks: Arc<Webhooks>,
    owner: String,
    lease: Duration,
    batch_size: u16,
    /// No claim starts later than this before the deadline.
    reserve: Duration,
}

impl std::fmt::Debug for Scheduled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduled")
            .field("owner", &self.owner)
            .field("reserve", &self.reserve)
            .finish_non_exhaustive()
    }
}

impl Scheduled {
    /// From `env`: the database settings, `WORKER_LEASE_SECONDS`, `WORKER_BATCH_SIZE` and the
    /// `WEBHOOK_*` settings (`WEBHOOK_ENCRYPTION_KEY` required).
    pub fn from_env(env: &Env<'_>) -> Result<Self, SetupError> {
        let database = DatabaseSettings::from_env(env)?;
        let db = Db::with_session_settings(&database, crate::WORKER_SESSION)
            .map_err(|e| SetupError::Database(e.to_string()))?;
        Self::new(
            db,
            &WorkerSettings::from_env(env)?,
            &WebhookSettings::from_env(env)?,
        )
    }

    pub fn new(
        db: Db,
        worker: &WorkerSettings,
        webhooks: &WebhookSettings,
    ) -> Result<Self, SetupError> {
        Ok(Self {
            webhooks: Webhooks::new(db.clone(), webhooks)?,
            db,
            owner: crate::owner_id(),
            lease: worker.lease,
            batch_size: worker.batch_size,
            reserve: webhooks.timeout + RELEASE_MARGIN * 2,
        })
    }

    /// One scheduled invocation: drains until nothing is due or the deadline nears. An error
    /// when every poll of a round failed (the database is unreachable), so the invocation
    /// shows as failed.
    pub async fn handle(
        &self,
        invocation: Invocation<EventBridgeEvent>,
    ) -> Result<Drained, shared::lambda::Error> {
        let (event, context) = (invocation.payload, invocation.context);
        let left = time_left(context.deadline, chrono::Utc::now().timestamp_millis());
        let now = Instant::now();
        let claim_until = now + left.saturating_sub(self.reserve);
        let abort_at = now + left.saturating_sub(RELEASE_MARGIN);
        let mut drain = Drain::default();
        let mut queues = Queues::new(
            Target::Drain(&mut drain),
            self.db.clone(),
            self.owner.clone(),
            self.lease,
            self.batch_size,
            Metrics::new(None),
        );
        handlers::register(self.webhooks.clone())(&mut queues);
        drop(queues.into_wakes());
        let drained = drain.run(claim_until, abort_at).await;
        tracing::info!(
            invocation = %context.request_id,
            seconds_left = left.as_secs_f64(),
            detail_type = %event.detail_type,
            finish = ?drained.finish, rounds = drained.rounds, busy_polls = drained.busy_polls,
            failed_polls = drained.failed_polls, "drained"
        );
        if drained.finish == Finish::Failing {
            return Err("every queue's poll failed; see the log for why".into());
        }
        Ok(drained)
    }
}
