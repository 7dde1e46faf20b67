//! The `jobs` table: the queue the API feeds and the worker drains (see `V5__jobs.sql`).
//!
//! A job kind is a payload type implementing [`Job`] (its `KIND` and `MAX_ATTEMPTS`); the
//! worker pairs it with one handler. [`enqueue`] takes the caller's transaction, so a job
//! commits or rolls back with the change that caused it. The worker side ([`claim`],
//! [`heartbeat`], [`complete`], [`fail`], [`release`]) works in batches and checks the lease on
//! every write: a worker whose lease expired and was taken over can no longer complete or fail
//! the job it lost, so the new holder's outcome is the one that counts.
//!
//! Guarantee: at-least-once (a job whose worker died runs again once its lease expires), no
//! ordering (priority and `run_at` decide what is claimed first, not what finishes first).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use tokio_postgres::{
    Row,
    types::{Json as PgJson, ToSql},
};
use uuid::Uuid;

use crate::db::{Db, DbError, PgError, Transaction};

/// A kind of job: its payload type. The worker pairs each kind with one handler.
pub trait Job: Serialize + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static {
    /// The `kind` column; stable, since queued jobs outlive deployments.
    const KIND: &'static str;
    /// Attempts before the job is `dead`.
    const MAX_ATTEMPTS: i32 = 20;
}

/// A job to insert: the payload and how to queue it.
#[derive(Debug, Clone)]
pub struct NewJob<'a, J: Job> {
    pub job: &'a J,
    /// Higher is claimed first among due jobs of its kind.
    pub priority: i16,
    /// Not before this time (now when `None`).
    pub run_at: Option<DateTime<Utc>>,
    /// At most one unfinished job holds a given key; a second enqueue with it is skipped.
    pub dedup_key: Option<String>,
}

impl<'a, J: Job> NewJob<'a, J> {
    /// `job` with its kind's defaults: priority 0, due now, no dedup key.
    pub fn new(job: &'a J) -> Self {
        Self {
            job,
            priority: 0,
            run_at: None,
            dedup_key: None,
        }
    }

    pub fn dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }
}

// The jobs statements take `$1`–`$7` from [`JobParams`]. Typed casts: in `INSERT … SELECT` the
// parameters' types are not taken from the target columns.
macro_rules! insert_job {
    ($($condition:literal)?) => {
        concat!(
            "INSERT INTO jobs (id, kind, payload, priority, run_at, max_attempts, dedup_key) \
             SELECT $1::uuid, $2::text, $3::jsonb, $4::smallint, coalesce($5::timestamptz, now()), \
                    $6::integer, $7::text ",
            $($condition,)?
            "ON CONFLICT (dedup_key) \
               WHERE dedup_key IS NOT NULL AND state IN ('available', 'running', 'retryable') \
               DO NOTHING \
             RETURNING id, kind"
        )
    };
}

// Wakes the kind's listeners for the job the statement enqueued (`NOTIFY` is delivered at
// commit, and not at all on rollback): a data-modifying CTE's side effect, in the same
// statement, so enqueueing costs no round trip of its own.
macro_rules! woken {
    () => {
        "woken AS (SELECT pg_notify('basalt_jobs', kind) FROM job) "
    };
}

/// One statement that makes a change and enqueues its job: `$change` is a data-modifying
/// statement with `RETURNING` (its parameters start at `$8`), the job is enqueued only when
/// it returned a row, and the statement returns the change's rows. Being one statement, it
/// can commit on its own ([`Db::write_statement`]): one round trip for change, job and
/// notification.
macro_rules! with_job {
    ($change:expr) => {
        concat!(
            "WITH change AS (",
            $change,
            "), job AS (",
            $crate::repo::jobs::insert_job!("WHERE EXISTS (SELECT 1 FROM change) "),
            "), ",
            $crate::repo::jobs::woken!(),
            "SELECT change.*, (SELECT count(*) FROM woken) AS woken FROM change"
        )
    };
}
pub(crate) use {insert_job, with_job, woken};

const ENQUEUE: &str = concat!(
    "WITH job AS (",
    insert_job!(),
    "), ",
    woken!(),
    "SELECT id, (SELECT count(*) FROM woken) AS woken FROM job"
);

/// The job statements' parameters `$1`–`$7` for `new`, with a fresh id.
pub(crate) struct JobParams<'a, J: Job> {
    id: Uuid,
    kind: &'static str,
    payload: PgJson<&'a J>,
    priority: i16,
    run_at: Option<DateTime<Utc>>,
    max_attempts: i32,
    dedup_key: Option<&'a str>,
}

impl<'a, J: Job> JobParams<'a, J> {
    pub(crate) fn new(new: &'a NewJob<'_, J>) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: J::KIND,
            payload: PgJson(new.job),
            priority: new.priority,
            run_at: new.run_at,
            max_attempts: J::MAX_ATTEMPTS,
            dedup_key: new.dedup_key.as_deref(),
        }
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.id,
            &self.kind,
            &self.payload,
            &self.priority,
            &self.run_at,
            &self.max_attempts,
            &self.dedup_key,
        ]
    }
}

/// Inserts `new` in the caller's transaction and wakes the kind's listeners when it commits
/// (`NOTIFY` is delivered at commit, and not at all on rollback), in one statement. `None`
/// when an unfinished job already holds its dedup key. A payload that does not serialise is
/// a `PgError` too, so it rolls the caller's change back like any failed statement.
pub async fn enqueue<J: Job>(
    tx: &Transaction<'_>,
    new: &NewJob<'_, J>,
) -> Result<Option<Uuid>, PgError> {
    let stmt = tx.prepare_cached(ENQUEUE).await?;
    let params = JobParams::new(new);
    let row = tx.query_opt(&stmt, &params.params()).await?;
    row.map(|row| row.try_get("id")).transpose()
}

const EXPEDITE: &str = "UPDATE jobs SET run_at = now(), updated_at = now() \
     WHERE dedup_key = $1 AND state IN ('available', 'retryable') AND run_at > now() \
     RETURNING kind";

/// Makes the waiting job holding `dedup_key` due now, in the caller's transaction, and wakes
/// its kind's listeners at commit. `false` when no job waits under that key (none exists, or
/// it is running or due already).
pub async fn expedite(tx: &Transaction<'_>, dedup_key: &str) -> Result<bool, PgError> {
    let stmt = tx.prepare_cached(EXPEDITE).await?;
    let Some(row) = tx.query_opt(&stmt, &[&dedup_key]).await? else {
        return Ok(false);
    };
    let kind: String = row.try_get("kind")?;
    let notify = tx.prepare_cached(NOTIFY).await?;
    tx.execute(&notify, &[&kind]).await?;
    Ok(true)
}

/// The channel the worker `LISTEN`s on; the payload is the job's kind. PostgreSQL folds
/// identical notifications of one transaction into one.
pub const CHANNEL: &str = "basalt_jobs";
const NOTIFY: &str = "SELECT pg_notify('basalt_jobs', $1)";

/// A job handed to a worker: it holds the lease until it completes, fails or releases it.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    /// This claim's number (1 for the first run); with the owner it identifies the lease.
    pub attempt: i32,
    pub max_attempts: i32,
    /// How long it had been due when claimed (for an expired lease: since its last run_at).
    pub waited_seconds: f64,
}

impl ClaimedJob {
    fn from_row(row: &Row) -> Result<Self, PgError> {
        Ok(Self {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            payload: row.try_get("payload")?,
            attempt: row.try_get("attempt")?,
            max_attempts: row.try_get("max_attempts")?,
            waited_seconds: row.try_get("waited_seconds")?,
        })
    }
}

// One statement, so a claim is one round trip (no BEGIN/COMMIT around it). `buried`: jobs whose
// lease expired on their last attempt are dead, since a job that kills its worker every time
// must not be claimed forever (a data-modifying CTE runs whether or not it is referenced).
// Then two locked picks, each an index range on its partial index (due jobs; expired leases
// with attempts left, so never a row `buried` changes), and one UPDATE. SKIP LOCKED makes
// concurrent claimers pass over each other's rows instead of waiting; READ COMMITTED
// re-checks a row's state when it is locked, so a row another claimer has just taken no
// longer matches.
const CLAIM: &str = "WITH buried AS ( \
       UPDATE jobs SET state = 'dead', lease_owner = NULL, lease_expires_at = NULL, \
         updated_at = now(), \
         last_error = 'lease expired on the last attempt (the worker stopped or the job hung)' \
       WHERE kind = $1 AND state = 'running' AND lease_expires_at < now() \
         AND attempt >= max_attempts \
       RETURNING id \
     ), due AS ( \
       SELECT id FROM jobs \
       WHERE kind = $1 AND state IN ('available', 'retryable') AND run_at <= now() \
       ORDER BY priority DESC, run_at LIMIT $2 FOR UPDATE SKIP LOCKED \
     ), expired AS ( \
       SELECT id FROM jobs \
       WHERE kind = $1 AND state = 'running' AND lease_expires_at < now() \
         AND attempt < max_attempts \
       ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED \
     ), picked AS ( \
       SELECT id FROM due UNION ALL SELECT id FROM expired LIMIT $2 \
     ) \
     UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, lease_owner = $3, \
       lease_expires_at = now() + $4 * interval '1 millisecond', updated_at = now(), \
       attempted_at = clock_timestamp() \
     FROM picked WHERE j.id = picked.id \
     RETURNING j.id, j.kind, j.payload, j.attempt, j.max_attempts, \
       extract(epoch FROM now() - j.run_at)::float8 AS waited_seconds";

/// Claims up to `limit` due jobs of `kind` for `owner`, leased for `lease`. A running job
/// whose lease expired is claimable again (a new attempt).
pub async fn claim(
    db: &Db,
    kind: &str,
    owner: &str,
    limit: i64,
    lease: Duration,
) -> Result<Vec<ClaimedJob>, DbError> {
    let lease_ms = lease.as_millis() as f64;
    // Safe to retry: a claim whose answer was lost claimed jobs nobody runs, and their leases
    // lapse into new attempts (at-least-once, as for a killed worker).
    db.read("jobs.claim", |c| async move {
        let stmt = c.prepare_cached(CLAIM).await?;
        let rows = c.query(&stmt, &[&kind, &limit, &owner, &lease_ms]).await?;
        rows.iter().map(ClaimedJob::from_row).collect()
    })
    .await
}

/// The lease a worker holds on one job: its id and the attempt it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: Uuid,
    pub attempt: i32,
}

impl From<&ClaimedJob> for Lease {
    fn from(job: &ClaimedJob) -> Self {
        Self {
            id: job.id,
            attempt: job.attempt,
        }
    }
}

fn split(leases: &[Lease]) -> (Vec<Uuid>, Vec<i32>) {
    leases.iter().map(|l| (l.id, l.attempt)).unzip()
}

// `held` is the rows `owner` still holds at that attempt; every write below joins it.
macro_rules! held {
    () => {
        "jobs.id = l.id AND jobs.attempt = l.attempt AND jobs.lease_owner = $3 \
         AND jobs.state = 'running'"
    };
}

const HEARTBEAT: &str = concat!(
    "UPDATE jobs SET lease_expires_at = now() + $4 * interval '1 millisecond', \
     updated_at = now() \
     FROM unnest($1::uuid[], $2::int[]) AS l(id, attempt) WHERE ",
    held!()
);

/// Extends the leases `owner` still holds by `lease`; returns how many it still holds (fewer
/// than asked means a lease expired and was taken over).
pub async fn heartbeat(
    db: &Db,
    owner: &str,
    leases: &[Lease],
    lease: Duration,
) -> Result<u64, DbError> {
    let (ids, attempts) = split(leases);
    let lease_ms = lease.as_millis() as f64;
    db.read("jobs.heartbeat", |c| {
        let (ids, attempts) = (&ids, &attempts);
        async move {
            let stmt = c.prepare_cached(HEARTBEAT).await?;
            c.execute(&stmt, &[ids, attempts, &owner, &lease_ms]).await
        }
    })
    .await
}

const COMPLETE: &str = concat!(
    "UPDATE jobs SET state = 'completed', lease_owner = NULL, lease_expires_at = NULL, \
     updated_at = now() \
     FROM unnest($1::uuid[], $2::int[]) AS l(id, attempt) WHERE ",
    held!()
);

/// Marks the jobs done; returns how many were still held (a lost lease completes nothing).
pub async fn complete(db: &Db, owner: &str, leases: &[Lease]) -> Result<u64, DbError> {
    let (ids, attempts) = split(leases);
    db.read("jobs.complete", |c| {
        let (ids, attempts) = (&ids, &attempts);
        async move {
            let stmt = c.prepare_cached(COMPLETE).await?;
            c.execute(&stmt, &[ids, attempts, &owner]).await
        }
    })
    .await
}

/// One failed attempt.
#[derive(Debug, Clone)]
pub struct Failure {
    pub lease: Lease,
    pub error: String,
    /// When to try again (ignored on the last attempt): see [`retry_delay`].
    pub retry_in: Duration,
}

const FAIL: &str = concat!(
    "UPDATE jobs SET \
       state = CASE WHEN jobs.attempt >= jobs.max_attempts THEN 'dead' ELSE 'retryable' END, \
       run_at = now() + l.delay_ms * interval '1 millisecond', \
       last_error = l.error, lease_owner = NULL, lease_expires_at = NULL, updated_at = now() \
     FROM unnest($1::uuid[], $2::int[], $4::text[], $5::float8[]) \
       AS l(id, attempt, error, delay_ms) WHERE ",
    held!(),
    " RETURNING jobs.id, jobs.state"
);

/// Records failed attempts: each job is retryable after its delay, or `dead` after its last
/// attempt. Returns the jobs that are now dead.
pub async fn fail(db: &Db, owner: &str, failures: &[Failure]) -> Result<Vec<Uuid>, DbError> {
    let (ids, attempts) = split(&failures.iter().map(|f| f.lease).collect::<Vec<_>>());
    let errors: Vec<&str> = failures.iter().map(|f| f.error.as_str()).collect();
    let delays: Vec<f64> = failures
        .iter()
        .map(|f| f.retry_in.as_millis() as f64)
        .collect();
    db.read("jobs.fail", |c| {
        let (ids, attempts, errors, delays) = (&ids, &attempts, &errors, &delays);
        async move {
            let stmt = c.prepare_cached(FAIL).await?;
            let rows = c
                .query(&stmt, &[ids, attempts, &owner, errors, delays])
                .await?;
            let mut dead = Vec::new();
            for row in rows {
                if row.try_get::<_, &str>("state")? == "dead" {
                    dead.push(row.try_get("id")?);
                }
            }
            Ok(dead)
        }
    })
    .await
}

const RELEASE: &str = concat!(
    "UPDATE jobs SET state = 'available', attempt = jobs.attempt - 1, run_at = now(), \
     lease_owner = NULL, lease_expires_at = NULL, updated_at = now() \
     FROM unnest($1::uuid[], $2::int[]) AS l(id, attempt) WHERE ",
    held!()
);

/// Gives back jobs a stopping worker could not finish: claimable again at once, and the
/// interrupted run does not count as an attempt.
pub async fn release(db: &Db, owner: &str, leases: &[Lease]) -> Result<u64, DbError> {
    let (ids, attempts) = split(leases);
    db.read("jobs.release", |c| {
        let (ids, attempts) = (&ids, &attempts);
        async move {
            let stmt = c.prepare_cached(RELEASE).await?;
            c.execute(&stmt, &[ids, attempts, &owner]).await
        }
    })
    .await
}

/// Delay before retrying after failed attempt number `attempt`: attempt⁴ seconds (1 s, 16 s,
/// 81 s, 4 min, 10 min, …, 44 h at the 20th), ± 10 % by `jitter` in [0, 1] so jobs that failed
/// together do not retry together.
pub fn retry_delay(attempt: i32, jitter: f64) -> Duration {
    let base = f64::from(attempt.max(1)).powi(4);
    Duration::from_secs_f64(base * (0.9 + 0.2 * jitter.clamp(0.0, 1.0)))
}

/// One job's row, for operators and tests.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    pub state: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub last_error: Option<String>,
    pub dedup_key: Option<String>,
}

macro_rules! row_columns {
    () => {
        "id, kind, payload, state, attempt, max_attempts, run_at, lease_owner, last_error, \
         dedup_key"
    };
}

fn job_row(row: &Row) -> Result<JobRow, PgError> {
    Ok(JobRow {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        state: row.try_get("state")?,
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        run_at: row.try_get("run_at")?,
        lease_owner: row.try_get("lease_owner")?,
        last_error: row.try_get("last_error")?,
        dedup_key: row.try_get("dedup_key")?,
    })
}

const GET: &str = concat!("SELECT ", row_columns!(), " FROM jobs WHERE id = $1");

pub async fn get(db: &Db, id: Uuid) -> Result<Option<JobRow>, DbError> {
    db.read("jobs.get", |c| async move {
        let stmt = c.prepare_cached(GET).await?;
        c.query_opt(&stmt, &[&id])
            .await?
            .as_ref()
            .map(job_row)
            .transpose()
    })
    .await
}

/// One kind's queue, for `/metrics` and operators.
#[derive(Debug, Clone, PartialEq)]
pub struct KindStats {
    pub kind: String,
    /// Due and waiting for a worker.
    pub due: i64,
    /// How long the oldest due job has waited (0 when none is due).
    pub oldest_due_seconds: f64,
    pub running: i64,
    /// Waiting for a retry's `run_at`, or scheduled for later.
    pub scheduled: i64,
    pub dead: i64,
}

// Unfinished and dead jobs only, one OR arm per partial index (`jobs_claim_idx`,
// `jobs_lease_idx`, `jobs_dead_idx`) so the planner can combine them in a bitmap scan:
// completed jobs, the bulk of the table, are never read (an `IN` list over every state would
// scan them all at each `/metrics` scrape).
const STATS: &str = "SELECT kind, \
       count(*) FILTER (WHERE state IN ('available', 'retryable') AND run_at <= now()) AS due, \
       coalesce(extract(epoch FROM now() - min(run_at) \
         FILTER (WHERE state IN ('available', 'retryable') AND run_at <= now())), 0)::float8 \
         AS oldest_due_seconds, \
       count(*) FILTER (WHERE state = 'running') AS running, \
       count(*) FILTER (WHERE state IN ('available', 'retryable') AND run_at > now()) \
         AS scheduled, \
       count(*) FILTER (WHERE state = 'dead') AS dead \
     FROM jobs WHERE state IN ('available', 'retryable') OR state = 'running' OR state = 'dead' \
     GROUP BY kind ORDER BY kind";

pub async fn stats(db: &Db) -> Result<Vec<KindStats>, DbError> {
    db.read("jobs.stats", |c| async move {
        let stmt = c.prepare_cached(STATS).await?;
        c.query(&stmt, &[])
            .await?
            .iter()
            .map(|r| {
                Ok(KindStats {
                    kind: r.try_get("kind")?,
                    due: r.try_get("due")?,
                    oldest_due_seconds: r.try_get("oldest_due_seconds")?,
                    running: r.try_get("running")?,
                    scheduled: r.try_get("scheduled")?,
                    dead: r.try_get("dead")?,
                })
            })
            .collect()
    })
    .await
}

// A range of `jobs_completed_idx`: only the window's completions are read.
const COMPLETED_SINCE: &str = "SELECT kind, count(*) AS completed FROM jobs \
     WHERE state = 'completed' AND updated_at > now() - $1 * interval '1 second' \
     GROUP BY kind ORDER BY kind";

/// Per kind, how many jobs completed in the last `window` (for `worker jobs stats`: the flow
/// that the queue's depth alone does not show).
pub async fn completed_since(db: &Db, window: Duration) -> Result<Vec<(String, i64)>, DbError> {
    let seconds = window.as_secs_f64();
    db.read("jobs.completed_since", |c| async move {
        let stmt = c.prepare_cached(COMPLETED_SINCE).await?;
        c.query(&stmt, &[&seconds])
            .await?
            .iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("completed")?)))
            .collect()
    })
    .await
}

// Oldest first along `jobs_completed_idx`; SKIP LOCKED so several workers' retention passes
// split the rows instead of queueing behind each other.
const PURGE_COMPLETED: &str = "DELETE FROM jobs WHERE id IN ( \
       SELECT id FROM jobs \
       WHERE state = 'completed' AND updated_at < now() - $1 * interval '1 second' \
       ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Deletes up to `limit` jobs completed more than `older_than` ago; returns how many. Dead and
/// cancelled jobs are never deleted here.
pub async fn purge_completed(db: &Db, older_than: Duration, limit: i64) -> Result<u64, DbError> {
    let seconds = older_than.as_secs_f64();
    db.read("jobs.purge_completed", |c| async move {
        let stmt = c.prepare_cached(PURGE_COMPLETED).await?;
        c.execute(&stmt, &[&seconds, &limit]).await
    })
    .await
}

const LIST: &str = concat!(
    "SELECT ",
    row_columns!(),
    " FROM jobs WHERE state = $1 AND ($2::text IS NULL OR kind = $2) \
     ORDER BY updated_at DESC LIMIT $3"
);

/// Jobs in `state` (of `kind`, if given), most recently changed first. For operators: not
/// on a hot path, so one statement with an optional filter is fine.
pub async fn list(
    db: &Db,
    state: &str,
    kind: Option<&str>,
    limit: i64,
) -> Result<Vec<JobRow>, DbError> {
    db.read("jobs.list", |c| async move {
        let stmt = c.prepare_cached(LIST).await?;
        c.query(&stmt, &[&state, &kind, &limit])
            .await?
            .iter()
            .map(job_row)
            .collect()
    })
    .await
}

// A replay starts the job over: due now, its attempts back to zero; `last_error` stays as the
// record of why it died until the next failure replaces it.
const RETRY: &str = "UPDATE jobs SET state = 'available', attempt = 0, run_at = now(), \
     updated_at = now() WHERE id = $1 AND state IN ('dead', 'cancelled', 'retryable')";

const RETRY_DEAD: &str = "UPDATE jobs SET state = 'available', attempt = 0, run_at = now(), \
     updated_at = now() WHERE state = 'dead' AND ($1::text IS NULL OR kind = $1)";

/// Makes a dead, cancelled or waiting-to-retry job due now; `false` when there is no such job
/// (a running or completed one is left alone).
pub async fn retry(db: &Db, id: Uuid) -> Result<bool, DbError> {
    db.read("jobs.retry", |c| async move {
        let stmt = c.prepare_cached(RETRY).await?;
        Ok(c.execute(&stmt, &[&id]).await? == 1)
    })
    .await
}

/// Replays every dead job (of `kind`, if given); returns how many.
pub async fn retry_dead(db: &Db, kind: Option<&str>) -> Result<u64, DbError> {
    db.read("jobs.retry_dead", |c| async move {
        let stmt = c.prepare_cached(RETRY_DEAD).await?;
        c.execute(&stmt, &[&kind]).await
    })
    .await
}

const DISCARD: &str = "UPDATE jobs SET state = 'cancelled', updated_at = now() \
     WHERE id = $1 AND state IN ('available', 'retryable', 'dead')";

/// Cancels a job that is not running or finished; `false` when there is no such job.
pub async fn discard(db: &Db, id: Uuid) -> Result<bool, DbError> {
    db.read("jobs.discard", |c| async move {
        let stmt = c.prepare_cached(DISCARD).await?;
        Ok(c.execute(&stmt, &[&id]).await? == 1)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_that_wakes_workers_notifies_the_channel_they_listen_on() {
        // `pg_notify`'s channel is spelled out in the statements (they are `const`s built with
        // `concat!`, which takes only literals): keep them and `CHANNEL` in step.
        let notifies = format!("pg_notify('{CHANNEL}'");
        for statement in [woken!(), NOTIFY, ENQUEUE, with_job!("SELECT 1")] {
            assert!(statement.contains(&notifies), "{statement}");
        }
    }
}
