//! Webhooks' two job handlers:
//!
//! - [`FanOut`] (`item.created`, `item.updated`, `item.deleted`): turns an item event into one
//!   delivery per subscribed endpoint of its owner, each with its first attempt's job, in one
//!   transaction (`shared::repo::webhook_deliveries::fan_out`). The event's id makes the
//!   message id, so an event job that runs twice delivers once.
//! - [`Deliver`] (`webhook.deliver`): one attempt of one delivery through
//!   [`crate::delivery::Sender`], its outcome recorded with the next attempt's job: the
//!   Standard Webhooks schedule (`WEBHOOK_RETRY_SCHEDULE_SECONDS`) with ±10 % jitter, the
//!   receiver's `Retry-After` where it gave one, `410 Gone` disabling the endpoint, and an
//!   endpoint failing continuously for `WEBHOOK_DISABLE_AFTER_SECONDS` disabled.
//!
//! Logs name deliveries, endpoints and statuses; never a secret, a signature or a body.

use std::{marker::PhantomData, sync::Arc, time::Duration};

use chrono::{SecondsFormat, Utc};
use shared::{
    config::WebhookSettings,
    db::Db,
    repo::{
        items::{self, ItemCreated, ItemDeleted, ItemRef, ItemUpdated},
        jobs::Job,
        webhook_deliveries::{self, AttemptOutcome, DeliverWebhook, Message},
    },
    sealed::SealingKey,
    ssrf::{Resolve, SystemResolver},
    views::ItemView,
};

use crate::{
    delivery::{Outcome, Sender},
    queue::{JobError, JobHandler, MAX_RETRY_AFTER, Queues},
};

/// What both handlers share: the database, the key that opens signing secrets, the client,
/// and the schedule.
pub struct Webhooks {
    db: Db,
    key: SealingKey,
    sender: Sender,
    schedule: Vec<Duration>,
    first_wait: Duration,
    disable_after: Duration,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("schedule", &self.schedule)
            .field("disable_after", &self.disable_after)
            .finish_non_exhaustive()
    }
}

/// Why the webhook handlers cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] shared::config::ConfigError),
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("cannot set up the database pool: {0}")]
    Database(String),
}

impl Webhooks {
    /// From the settings, resolving names with the system's resolver. Without
    /// `WEBHOOK_ENCRYPTION_KEY` this is the error naming it: deliveries cannot be signed.
    pub fn new(db: Db, settings: &WebhookSettings) -> Result<Arc<Self>, SetupError> {
        Self::with_resolver(db, settings, Arc::new(SystemResolver))
    }

    /// [`Webhooks::new`] resolving with `resolver` (tests: a name that rebinds).
    pub fn with_resolver(
        db: Db,
        settings: &WebhookSettings,
        resolver: Arc<dyn Resolve>,
    ) -> Result<Arc<Self>, SetupError> {
        let key = settings.require_key()?.clone();
        let sender = Sender::new(settings.targets, resolver, settings.timeout)?;
        Ok(Arc::new(Self {
            db,
            key,
            sender,
            schedule: settings.retry_schedule.clone(),
            first_wait: settings.first_wait(),
            disable_after: settings.disable_after,
        }))
    }

    /// Registers the fan-out of every item event and the delivery of their messages.
    pub fn register(self: &Arc<Self>, queues: &mut Queues<'_>) {
        queues
            .drain(FanOut::<ItemCreated>::new(self.clone()))
            .drain(FanOut::<ItemUpdated>::new(self.clone()))
            .drain(FanOut::<ItemDeleted>::new(self.clone()))
            .drain(Deliver(self.clone()));
    }

    /// The wait before attempt `attempt + 1` after attempt `attempt` failed, `None` past the
    /// end of the schedule; `jitter` uniform in [0, 1] moves it by up to ±10 %.
    pub fn next_wait(&self, attempt: i32, jitter: f64) -> Option<Duration> {
        let wait = *self.schedule.get(usize::try_from(attempt).ok()?)?;
        Some(wait.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0)))
    }

    /// When a new message's first attempt is due.
    fn first_at(&self) -> chrono::DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.first_wait).unwrap_or_default()
    }
}

/// An item event: the item it is about.
pub trait ItemEvent: Job {
    fn item(&self) -> ItemRef;
}

impl ItemEvent for ItemCreated {
    fn item(&self) -> ItemRef {
        self.0
    }
}

impl ItemEvent for ItemUpdated {
    fn item(&self) -> ItemRef {
        self.0
    }
}

impl ItemEvent for ItemDeleted {
    fn item(&self) -> ItemRef {
        self.0
    }
}

/// Fans an item event out to its owner's subscribed endpoints.
pub struct FanOut<J> {
    webhooks: Arc<Webhooks>,
    kind: PhantomData<fn(J)>,
}

impl<J> FanOut<J> {
    pub fn new(webhooks: Arc<Webhooks>) -> Self {
        Self {
            webhooks,
            kind: PhantomData,
        }
    }
}

impl<J: ItemEvent> JobHandler for FanOut<J> {
    type Job = J;

    async fn run(&self, event: J) -> Result<(), JobError> {
        let item = event.item();
        let db = &self.webhooks.db;
        // The item as it is now: a retried event carries its latest state (thin events would
        // send every receiver back to the API). Deleted, or gone since: its id alone.
        let data = match items::get(db, item.user_id, item.item_id).await? {
            Some(found) if J::KIND != ItemDeleted::KIND => {
                serde_json::to_value(ItemView::from(found))?
            }
            _ => serde_json::json!({ "id": item.item_id }),
        };
        let message = Arc::new(Message::new(item.event_id, J::KIND, &data));
        let first_at = self.webhooks.first_at();
        let user_id = item.user_id;
        let created = db
            .write("webhooks.fan_out", move |tx| {
                let message = message.clone();
                Box::pin(async move {
                    webhook_deliveries::fan_out(tx, user_id, &message, first_at).await
                })
            })
            .await?;
        if !created.is_empty() {
            tracing::debug!(kind = J::KIND, endpoints = created.len(), "fanned out");
        }
        Ok(())
    }
}

/// One attempt of a delivery.
pub struct Deliver(pub Arc<Webhooks>);

impl JobHandler for Deliver {
    type Job = DeliverWebhook;

    async fn run(&self, job: DeliverWebhook) -> Result<(), JobError> {
        let hooks = &self.0;
        let Some(pending) =
            webhook_deliveries::pending_attempt(&hooks.db, job.delivery_id, job.attempt).await?
        else {
            // Recorded already (this job ran before), replayed, or deleted with its endpoint.
            return Ok(());
        };
        let outcome = if pending.enabled {
            let secrets = open_secrets(&hooks.key, &pending)?;
            let message = Message {
                message_id: pending.message_id,
                event_type: pending.event_type,
                body: pending.body,
            };
            let sent = hooks.sender.send(&pending.url, &message, &secrets).await;
            classify(hooks, job.attempt, sent)
        } else {
            AttemptOutcome::Skipped {
                reason: "the endpoint is disabled".into(),
            }
        };
        let recorded = webhook_deliveries::record(
            &hooks.db,
            job.delivery_id,
            job.attempt,
            &outcome,
            hooks.disable_after,
        )
        .await?;
        if let Some(recorded) = recorded {
            let status = match &outcome {
                AttemptOutcome::Delivered { status, .. } | AttemptOutcome::Gone { status, .. } => {
                    Some(*status)
                }
                AttemptOutcome::Failed { status, .. } => *status,
                AttemptOutcome::Skipped { .. } => None,
            };
            tracing::info!(
                delivery = %job.delivery_id, webhook = %pending.webhook_id, attempt = job.attempt,
                status, state = recorded.state.as_str(),
                next_attempt_at = recorded.next_attempt_at.map(|t| t.to_rfc3339()),
                "webhook attempt"
            );
            if let Some(reason) = recorded.disabled {
                tracing::warn!(webhook = %pending.webhook_id, %reason, "webhook endpoint disabled");
            }
        }
        Ok(())
    }
}

/// The endpoint's secrets as `whsec_…` strings: the current one first.
fn open_secrets(
    key: &SealingKey,
    pending: &webhook_deliveries::PendingAttempt,
) -> Result<Vec<String>, JobError> {
    let aad = pending.webhook_id.as_bytes();
    let open = |sealed: &[u8]| -> Result<String, JobError> {
        let plain = key.open(sealed, aad).map_err(|e| {
            format!("cannot open the endpoint's signing secret ({e}): is WEBHOOK_ENCRYPTION_KEY the key it was sealed with?")
        })?;
        Ok(String::from_utf8(plain)?)
    };
    let mut secrets = vec![open(&pending.secret_sealed)?];
    if let Some(previous) = &pending.previous_secret_sealed {
        secrets.push(open(previous)?);
    }
    Ok(secrets)
}

/// What an attempt's answer means for the delivery.
fn classify(hooks: &Webhooks, attempt: i32, sent: Outcome) -> AttemptOutcome {
    let status = |s: u16| i32::from(s);
    let retry_in = |asked: Option<Duration>| {
        // The receiver's Retry-After (at most a day) replaces the schedule's wait, not its
        // length: past the last attempt the delivery is dead either way.
        let scheduled = hooks.next_wait(attempt, rand::random::<f64>())?;
        Some(asked.map_or(scheduled, |a| a.min(MAX_RETRY_AFTER)))
    };
    match sent {
        Outcome::Delivered { status: s, body } => AttemptOutcome::Delivered {
            status: status(s),
            body,
        },
        Outcome::Gone { body } => AttemptOutcome::Gone {
            status: 410,
            body,
            reason: format!(
                "the endpoint answered 410 Gone at {}",
                Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
        },
        Outcome::Failed {
            status: s,
            error,
            body,
            retry_after,
        } => AttemptOutcome::Failed {
            status: s.map(status),
            error,
            body,
            retry_in: retry_in(retry_after),
        },
        Outcome::Refused(refused) => AttemptOutcome::Failed {
            status: None,
            error: format!("not sent: {refused}"),
            body: None,
            retry_in: retry_in(None),
        },
    }
}
