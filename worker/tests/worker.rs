//! The worker's tests (one binary): the runner driven in-process with scripted workers, the
//! queue against a real PostgreSQL, and the `worker` binary as a real process.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use shared::{
    db::{Db, PgError},
    repo::{
        items::{self, ItemCreated},
        jobs::{self, Failure, Job, Lease, NewJob},
    },
};
use tokio::time::Instant;
use uuid::Uuid;
use worker::{
    health::Health,
    queue::{JobError, JobHandler, QueueWorker, RetryAfter},
    runner::{Cadence, Poll, RunError, Runner, Stop, WorkError, Worker},
};

// ---------------------------------------------------------------- the runner, in-process
//
// On paused tokio time (`start_paused`): every sleep ends exactly when due, so the intervals
// below are asserted as the runner computes them, whatever else the machine is doing.

/// A worker that answers from a script (then `Idle` forever) and records when it was polled.
struct Scripted {
    script: Vec<Result<Poll, &'static str>>,
    polls: Arc<Mutex<Vec<Instant>>>,
    /// Each poll lasts this long; with `wait_for_abort`, until the grace runs out instead.
    busy_for: Duration,
    wait_for_abort: bool,
}

impl Scripted {
    fn new(script: Vec<Result<Poll, &'static str>>) -> (Self, Arc<Mutex<Vec<Instant>>>) {
        let polls = Arc::new(Mutex::new(Vec::new()));
        let worker = Self {
            script: script.into_iter().rev().collect(),
            polls: polls.clone(),
            busy_for: Duration::ZERO,
            wait_for_abort: false,
        };
        (worker, polls)
    }
}

impl Worker for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn poll(&mut self, stop: &Stop) -> Result<Poll, WorkError> {
        self.polls.lock().unwrap().push(Instant::now());
        if self.wait_for_abort {
            stop.aborted().await;
            return Ok(Poll::Idle);
        }
        tokio::time::sleep(self.busy_for).await;
        match self.script.pop() {
            Some(Ok(poll)) => Ok(poll),
            Some(Err(e)) => Err(e.into()),
            None => Ok(Poll::Idle),
        }
    }
}

fn cadence(active_ms: u64, idle_ms: u64, max_failures: u32) -> Cadence {
    Cadence {
        poll_active: Duration::from_millis(active_ms),
        poll_idle: Duration::from_millis(idle_ms),
        max_failures,
        shutdown_grace: Duration::from_secs(5),
    }
}

type Signal = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// One signal `after` from now, and no second one.
fn signal_after(after: Duration) -> impl FnMut() -> Signal {
    let at = Instant::now() + after;
    let mut calls = 0;
    move || {
        calls += 1;
        if calls == 1 {
            Box::pin(tokio::time::sleep_until(at))
        } else {
            Box::pin(std::future::pending())
        }
    }
}

fn gaps(polls: &[Instant]) -> Vec<Duration> {
    polls.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn busy_polls_again_at_once_and_idle_waits_stretch_to_the_idle_interval() {
    let (worker, polls) = Scripted::new(vec![Ok(Poll::Busy), Ok(Poll::Busy), Ok(Poll::Busy)]);
    let mut runner = Runner::new(cadence(40, 160, 3), Health::default());
    runner.spawn(worker);
    runner
        .run_until(signal_after(Duration::from_millis(700)))
        .await
        .unwrap();
    let polls = polls.lock().unwrap().clone();
    let gaps = gaps(&polls);
    // Three busy polls, each followed at once by the next.
    for gap in &gaps[..3] {
        assert!(*gap < Duration::from_millis(20), "{gaps:?}");
    }
    // Then idle: 40, 80, 160, 160 ms (the active wait doubling up to the idle one).
    let expected = [40, 80, 160, 160];
    for (gap, ms) in gaps[3..].iter().zip(expected) {
        let ms = Duration::from_millis(ms);
        assert!(
            *gap >= ms && *gap < ms + Duration::from_millis(30),
            "{gaps:?}"
        );
    }
    assert!(gaps.len() >= 3 + expected.len(), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn failed_polls_back_off_more_each_time_then_the_runner_gives_up() {
    let (worker, polls) = Scripted::new(vec![Err("database down"); 6]);
    let mut runner = Runner::new(cadence(10, 10_000, 6), Health::default());
    runner.spawn(worker);
    let started = Instant::now();
    let err = runner
        .run_until(std::future::pending::<()>)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RunError::TooManyFailures { failures: 6, last, .. } if last == "database down"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let gaps = gaps(&polls.lock().unwrap());
    assert_eq!(gaps.len(), 5, "six polls, then no seventh: {gaps:?}");
    // Equal jitter: step n lies in [c/2, c] with c = 10 ms · 2^(n-1), so the steps never
    // shrink, and the fifth is at least 80 ms.
    for pair in gaps.windows(2) {
        assert!(pair[1] + Duration::from_millis(2) >= pair[0], "{gaps:?}");
    }
    assert!(gaps[0] >= Duration::from_millis(5), "{gaps:?}");
    assert!(gaps[4] >= Duration::from_millis(80), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_failure_count() {
    let script = vec![
        Err("x"),
        Err("x"),
        Ok(Poll::Busy),
        Err("x"),
        Err("x"),
        Ok(Poll::Idle),
    ];
    let (worker, polls) = Scripted::new(script);
    let mut runner = Runner::new(cadence(5, 50, 3), Health::default());
    runner.spawn(worker);
    runner
        .run_until(signal_after(Duration::from_millis(300)))
        .await
        .unwrap();
    assert!(polls.lock().unwrap().len() > 6);
}

#[tokio::test(start_paused = true)]
async fn a_wake_ends_an_idle_wait_at_once() {
    let (worker, polls) = Scripted::new(vec![]);
    let mut runner = Runner::new(cadence(30_000, 30_000, 3), Health::default());
    let wake = runner.spawn(worker);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut rx = Some(rx);
    let run = tokio::spawn(runner.run_until(move || {
        let rx = rx.take();
        async move {
            match rx {
                Some(rx) => drop(rx.await),
                None => std::future::pending().await,
            }
        }
    }));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(polls.lock().unwrap().len(), 1);
    let woken = Instant::now();
    wake.wake();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let polls = polls.lock().unwrap().clone();
    assert_eq!(polls.len(), 2, "the wake started a second poll");
    assert!(polls[1] - woken < Duration::from_millis(100));
    tx.send(()).unwrap();
    run.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_signal_lets_the_running_poll_finish_and_starts_no_other() {
    let (mut worker, polls) = Scripted::new(vec![Ok(Poll::Busy); 100]);
    worker.busy_for = Duration::from_millis(200);
    let health = Health::default();
    let mut runner = Runner::new(cadence(10, 10, 3), health.clone());
    runner.spawn(worker);
    let signalled = Instant::now() + Duration::from_millis(50);
    runner
        .run_until(signal_after(Duration::from_millis(50)))
        .await
        .unwrap();
    // The poll that was running when the signal came (started at 0) finished at ~200 ms.
    assert!(signalled.elapsed() >= Duration::from_millis(140));
    assert_eq!(polls.lock().unwrap().len(), 1);
    assert_eq!(health.ready().await.unwrap_err(), "draining");
}

#[tokio::test(start_paused = true)]
async fn after_the_grace_a_running_poll_is_told_to_abort() {
    let (mut worker, polls) = Scripted::new(vec![]);
    worker.wait_for_abort = true;
    let mut c = cadence(10, 10, 3);
    c.shutdown_grace = Duration::from_millis(100);
    let mut runner = Runner::new(c, Health::default());
    runner.spawn(worker);
    let started = Instant::now();
    runner
        .run_until(signal_after(Duration::from_millis(20)))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(120) && took < Duration::from_secs(1),
        "{took:?}"
    );
    assert_eq!(polls.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_second_signal_stops_at_once() {
    let (mut worker, _) = Scripted::new(vec![]);
    worker.wait_for_abort = true;
    let mut c = cadence(10, 10, 3);
    c.shutdown_grace = Duration::from_secs(30);
    let mut runner = Runner::new(c, Health::default());
    runner.spawn(worker);
    let started = Instant::now();
    let err = runner
        .run_until(|| tokio::time::sleep(Duration::from_millis(30)))
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::Interrupted), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

// ---------------------------------------------------------------- the queue, real PostgreSQL

async fn database() -> (Db, String) {
    let url = shared::testing::create_database().await;
    let db = Db::connect_lazy(&url, 8, Duration::from_secs(5)).unwrap();
    db.migrate().await.unwrap();
    (db, url)
}

async fn user(db: &Db) -> Uuid {
    let id = Uuid::new_v4();
    db.read("test.user", |c| async move {
        c.execute(
            "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'x')",
            &[&id, &format!("{id}@example.com")],
        )
        .await
    })
    .await
    .unwrap();
    id
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    db.read("test.count", |c| async move {
        c.query_one(sql, &[]).await?.try_get::<_, i64>(0)
    })
    .await
    .unwrap()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Echo {
    n: u32,
}

impl Job for Echo {
    const KIND: &'static str = "test.echo";
    const MAX_ATTEMPTS: i32 = 3;
}

async fn enqueue_echoes(db: &Db, n: u32) {
    db.write("test.enqueue", move |tx| {
        Box::pin(async move {
            for n in 0..n {
                jobs::enqueue(tx, &NewJob::new(&Echo { n })).await?;
            }
            Ok(())
        })
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_item_change_that_rolls_back_enqueues_nothing_and_one_that_commits_enqueues_one() {
    let (db, _) = database().await;
    let user_id = user(&db).await;
    // The item is inserted (and its job with it), then the transaction fails.
    let err = db
        .write("test.rollback", move |tx| {
            Box::pin(async move {
                items::insert(tx, user_id, "doomed", "").await?;
                tx.execute("SELECT 1/0", &[]).await?;
                Ok(())
            })
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("22012"), "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM items").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM jobs").await, 0);

    let item = items::create(&db, user_id, "kept", "").await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM jobs").await, 1);
    let claimed = jobs::claim(&db, "item.created", "t", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let event: ItemCreated = serde_json::from_value(claimed[0].payload.clone()).unwrap();
    assert_eq!((event.0.item_id, event.0.user_id), (item.id, user_id));

    // Updates and deletes enqueue theirs; one of another user's item (not found) does not.
    items::update(&db, user_id, item.id, Some("renamed"), None)
        .await
        .unwrap()
        .unwrap();
    assert!(
        items::update(&db, user(&db).await, item.id, Some("x"), None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(items::delete(&db, user_id, item.id).await.unwrap());
    assert!(!items::delete(&db, user_id, item.id).await.unwrap());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM jobs WHERE kind IN ('item.updated', 'item.deleted')"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn concurrent_claims_never_hand_one_job_to_two_claimers() {
    let (db, _) = database().await;
    enqueue_echoes(&db, 300).await;
    let claimers = (0..6).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            let owner = format!("claimer-{i}");
            let mut mine = Vec::new();
            loop {
                let batch = jobs::claim(&db, Echo::KIND, &owner, 7, Duration::from_secs(30))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|j| j.id));
            }
        })
    });
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let unique: HashSet<Uuid> = all.iter().copied().collect();
    assert_eq!(all.len(), 300, "every job claimed exactly once");
    assert_eq!(unique.len(), 300);
}

#[tokio::test]
async fn an_expired_lease_is_claimable_again_and_the_old_holder_loses_it() {
    let (db, _) = database().await;
    enqueue_echoes(&db, 1).await;
    // Margins of 700 ms around every expiry: a loaded machine delays a sleep or a query by
    // tens of milliseconds, never by that much.
    let lease = Duration::from_millis(1500);
    let first = jobs::claim(&db, Echo::KIND, "a", 10, lease).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        jobs::claim(&db, Echo::KIND, "b", 10, lease)
            .await
            .unwrap()
            .is_empty(),
        "held while the lease is valid"
    );
    // A heartbeat keeps it held past the first expiry.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let held = [Lease::from(&first[0])];
    assert_eq!(jobs::heartbeat(&db, "a", &held, lease).await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        jobs::claim(&db, Echo::KIND, "b", 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    // No heartbeat: the lease lapses and another worker takes the job as a new attempt.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let second = jobs::claim(&db, Echo::KIND, "b", 10, lease).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!((second[0].id, second[0].attempt), (first[0].id, 2));
    // The first holder can no longer complete, fail or extend it.
    assert_eq!(jobs::complete(&db, "a", &held).await.unwrap(), 0);
    assert_eq!(jobs::heartbeat(&db, "a", &held, lease).await.unwrap(), 0);
    assert_eq!(
        jobs::complete(&db, "b", &[Lease::from(&second[0])])
            .await
            .unwrap(),
        1
    );
    let row = jobs::get(&db, first[0].id).await.unwrap().unwrap();
    assert_eq!(row.state, "completed");
}

#[tokio::test]
async fn a_lease_expiring_on_the_last_attempt_makes_the_job_dead_not_claimable() {
    let (db, _) = database().await;
    enqueue_echoes(&db, 2).await;
    let short = Duration::from_millis(50);
    // Echo has 3 attempts: three claims whose leases lapse (a worker killed each time).
    for attempt in 1..=3 {
        let claimed = jobs::claim(&db, Echo::KIND, "killed", 1, short)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
        // Meanwhile the other job is claimed and completed: only the first is left.
        if attempt == 1 {
            let other = jobs::claim(&db, Echo::KIND, "ok", 1, Duration::from_secs(30))
                .await
                .unwrap();
            let lease = Lease::from(&other[0]);
            assert_eq!(jobs::complete(&db, "ok", &[lease]).await.unwrap(), 1);
        }
    }
    assert!(
        jobs::claim(&db, Echo::KIND, "next", 10, short)
            .await
            .unwrap()
            .is_empty(),
        "out of attempts: buried by the claim, not handed out"
    );
    let dead = jobs::list(&db, "dead", Some(Echo::KIND), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempt, 3);
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("lease expired on the last attempt"),
        "{:?}",
        dead[0].last_error
    );
}

#[tokio::test]
async fn failures_retry_on_the_attempt_to_the_fourth_schedule_then_the_job_is_dead() {
    let (db, _) = database().await;
    enqueue_echoes(&db, 1).await;
    for attempt in 1..=Echo::MAX_ATTEMPTS {
        let claimed = jobs::claim(&db, Echo::KIND, "w", 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "attempt {attempt}");
        assert_eq!(claimed[0].attempt, attempt);
        let lease = Lease::from(&claimed[0]);
        let retry_in = jobs::retry_delay(attempt, rand::random());
        let before = chrono::Utc::now();
        let dead = jobs::fail(
            &db,
            "w",
            &[Failure {
                lease,
                error: format!("boom {attempt}"),
                retry_in,
            }],
        )
        .await
        .unwrap();
        let row = jobs::get(&db, lease.id).await.unwrap().unwrap();
        assert_eq!(row.last_error.as_deref(), Some(&*format!("boom {attempt}")));
        if attempt < Echo::MAX_ATTEMPTS {
            assert!(dead.is_empty());
            assert_eq!(row.state, "retryable");
            // attempt⁴ seconds ± 10 %: 1 s, then 16 s.
            let wait = (row.run_at - before).to_std().unwrap_or_default();
            let base = f64::from(attempt).powi(4);
            assert!(
                wait.as_secs_f64() >= base * 0.9 - 0.05 && wait.as_secs_f64() <= base * 1.1 + 0.5,
                "attempt {attempt}: {wait:?}"
            );
            // Not claimable before its time.
            assert!(
                jobs::claim(&db, Echo::KIND, "w", 10, Duration::from_secs(30))
                    .await
                    .unwrap()
                    .is_empty()
            );
            db.read("test.due", |c| async move {
                c.execute("UPDATE jobs SET run_at = now()", &[]).await
            })
            .await
            .unwrap();
        } else {
            assert_eq!(dead, [lease.id]);
            assert_eq!(row.state, "dead");
        }
    }
    // Dead jobs are kept and never claimed.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        jobs::claim(&db, Echo::KIND, "w", 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_retry_delay_is_attempt_to_the_fourth_seconds_within_ten_percent() {
    for (attempt, secs) in [(1, 1.0), (2, 16.0), (3, 81.0), (10, 10_000.0)] {
        let low = jobs::retry_delay(attempt, 0.0).as_secs_f64();
        let high = jobs::retry_delay(attempt, 1.0).as_secs_f64();
        assert!((low - secs * 0.9).abs() < 1e-6 && (high - secs * 1.1).abs() < 1e-6);
    }
}

#[tokio::test]
async fn an_unfinished_job_holds_its_dedup_key() {
    let (db, _) = database().await;
    let enqueue = |db: Db| async move {
        db.write("test.dedup", |tx| {
            Box::pin(
                async move { jobs::enqueue(tx, &NewJob::new(&Echo { n: 1 }).dedup_key("k")).await },
            )
        })
        .await
        .unwrap()
    };
    let first = enqueue(db.clone()).await.unwrap();
    assert!(
        enqueue(db.clone()).await.is_none(),
        "a duplicate is skipped"
    );
    let claimed = jobs::claim(&db, Echo::KIND, "w", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        enqueue(db.clone()).await.is_none(),
        "running still holds it"
    );
    jobs::complete(&db, "w", &[Lease::from(&claimed[0])])
        .await
        .unwrap();
    let again = enqueue(db.clone()).await.unwrap();
    assert_ne!(first, again, "a finished job frees the key");
}

/// Fails the jobs whose `n` is odd, sleeps past the timeout when `n` is 4, else succeeds.
struct Picky;

impl JobHandler for Picky {
    type Job = Echo;
    const TIMEOUT: Duration = Duration::from_millis(200);

    async fn run(&self, job: Echo) -> Result<(), JobError> {
        if job.n == 4 {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        if job.n % 2 == 1 {
            return Err(format!("odd: {}", job.n).into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_queue_worker_completes_fails_and_times_out_jobs_without_failing_its_poll() {
    let (db, _) = database().await;
    enqueue_echoes(&db, 6).await;
    let metrics = worker::metrics::Metrics::new(None);
    let mut worker = QueueWorker::new(db.clone(), Picky, "w")
        .batch(4)
        .metrics(metrics.clone());
    let stop = Stop::never();
    // A full batch may have left more: busy. The short one took the rest: idle.
    assert_eq!(worker.poll(&stop).await.unwrap(), Poll::Busy);
    assert_eq!(worker.poll(&stop).await.unwrap(), Poll::Idle);
    assert_eq!(
        count(&db, "SELECT count(*) FROM jobs WHERE state = 'available'").await,
        0
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM jobs WHERE state = 'completed'").await,
        2,
        "0 and 2"
    );
    let failed: Vec<(serde_json::Value, String)> = db
        .read("test.failed", |c| async move {
            c.query(
                "SELECT payload, last_error FROM jobs WHERE state = 'retryable' ORDER BY payload->>'n'",
                &[],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<_>, PgError>>()
        })
        .await
        .unwrap();
    let errors: Vec<&str> = failed.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(
        errors,
        ["odd: 1", "odd: 3", "timed out after 200ms", "odd: 5"]
    );
}

/// Fails every job: `n` 1 plainly (the kind's schedule: 7 s per attempt), 2 asking for 90 s,
/// 3 asking for three days (more than a day is capped).
struct Scheduled;

impl JobHandler for Scheduled {
    type Job = Echo;

    fn retry_delay(&self, attempt: i32, _jitter: f64) -> Duration {
        Duration::from_secs(7 * attempt as u64)
    }

    async fn run(&self, job: Echo) -> Result<(), JobError> {
        let error: JobError = format!("no: {}", job.n).into();
        Err(match job.n {
            2 => Box::new(RetryAfter {
                after: Duration::from_secs(90),
                error,
            }),
            3 => Box::new(RetryAfter {
                after: Duration::from_secs(3 * 24 * 3600),
                error,
            }),
            _ => error,
        })
    }
}

#[tokio::test]
async fn a_kind_sets_its_retry_schedule_and_a_failure_may_ask_for_its_next_attempt() {
    let (db, _) = database().await;
    db.write("test.three", |tx| {
        Box::pin(async move {
            for n in 1..=3 {
                jobs::enqueue(tx, &NewJob::new(&Echo { n })).await?;
            }
            Ok::<_, PgError>(())
        })
    })
    .await
    .unwrap();
    let mut worker = QueueWorker::new(db.clone(), Scheduled, "w");
    assert_eq!(
        worker.poll(&Stop::never()).await.unwrap(),
        Poll::Idle,
        "3 of 10: all due"
    );
    let waits: Vec<(i64, f64, String)> = db
        .read("test.waits", |c| async move {
            c.query(
                "SELECT (payload->>'n')::bigint, \
                   extract(epoch FROM run_at - updated_at)::float8, last_error \
                 FROM jobs WHERE state = 'retryable' ORDER BY 1",
                &[],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<_>, PgError>>()
        })
        .await
        .unwrap();
    let expected = [(1, 7.0), (2, 90.0), (3, 24.0 * 3600.0)];
    assert_eq!(waits.len(), 3, "{waits:?}");
    for ((n, wait, error), (want_n, want)) in waits.iter().zip(expected) {
        assert_eq!(*n, want_n);
        assert!(
            (wait - want).abs() < 1.0,
            "job {n}: waits {wait} s, not {want}"
        );
        assert!(error.starts_with(&format!("no: {n}")), "{error}");
    }
}

// ---------------------------------------------------------------- the binary, a real process

/// `worker` with only the database, the health address and the log format set: no
/// `JWT_SECRET`, no HTTP or Redis settings.
fn spawn_worker(url: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", url)
        .env("WEBHOOK_ENCRYPTION_KEY", shared::testing::TEST_WEBHOOK_KEY)
        .env("WORKER_HEALTH_ADDR", "127.0.0.1:0")
        // Polls so rare that only a NOTIFY can explain a job started within the test.
        .env("WORKER_POLL_ACTIVE_MS", "30000")
        .env("WORKER_POLL_IDLE_MS", "30000")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Reads the worker's log lines until the health server's address.
fn health_addr(child: &mut std::process::Child) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = v["fields"]["addr"].as_str().or(v["addr"].as_str())
            {
                let _ = tx.send(addr.to_owned());
            }
            lines.push(line);
        }
        lines
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the worker logged its health address");
    (addr, reader)
}

#[tokio::test]
async fn the_binary_starts_without_jwt_secret_drains_item_events_and_stops_on_sigterm() {
    let (db, url) = database().await;
    let user_id = user(&db).await;
    items::create(&db, user_id, "before start", "")
        .await
        .unwrap();
    let mut child = spawn_worker(&url);
    let (addr, reader) = health_addr(&mut child);
    let client = reqwest::Client::new();
    for probe in ["healthz", "readyz"] {
        let res = client
            .get(format!("http://{addr}/{probe}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "/{probe}");
    }
    // Jobs from before the start: the first polls take them.
    wait_for_completed(&db, 1).await;
    // A job enqueued while every worker waits out its 30 s: the NOTIFY wakes its worker.
    let listener = wait_for_listener(&db, None).await;
    items::create(&db, user_id, "while running", "")
        .await
        .unwrap();
    wait_for_completed(&db, 2).await;
    // Enqueue (its transaction's start) to claim, on the database's clock.
    let waited = db
        .read("test.waited", |c| async move {
            c.query_one(
                "SELECT extract(epoch FROM attempted_at - created_at)::float8 FROM jobs \
                 ORDER BY created_at DESC LIMIT 1",
                &[],
            )
            .await?
            .try_get::<_, f64>(0)
        })
        .await
        .unwrap();
    eprintln!("NOTIFY path: enqueue to claim {:.1} ms", waited * 1e3);
    assert!(waited < 0.1, "claimed {waited:.3} s after the enqueue");
    // The listening session is killed: the listener reconnects and subscribes again.
    db.read("test.kill_listener", |c| async move {
        c.execute("SELECT pg_terminate_backend($1)", &[&listener])
            .await
    })
    .await
    .unwrap();
    wait_for_listener(&db, Some(listener)).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // the re-subscription's own wake
    let enqueued = Instant::now();
    items::create(&db, user_id, "after reconnect", "")
        .await
        .unwrap();
    wait_for_completed(&db, 3).await;
    assert!(
        enqueued.elapsed() < Duration::from_secs(2),
        "{:?}",
        enqueued.elapsed()
    );
    // What an operator sees: the three item events done in the last five minutes.
    let (ok, stats) = worker_cli(&url, &["jobs", "stats"]);
    let row = stats.lines().find(|l| l.starts_with("item.created"));
    let columns: Vec<&str> = row
        .map(|r| r.split_whitespace().collect())
        .unwrap_or_default();
    assert!(ok && columns.get(5) == Some(&"3"), "{stats}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stopped = Instant::now();
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(stopped.elapsed() < Duration::from_secs(5));
    let lines = reader.join().unwrap();
    assert!(lines.iter().any(|l| l.contains("stopped")), "{lines:#?}");
}

async fn wait_for_completed(db: &Db, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(db, "SELECT count(*) FROM jobs WHERE state = 'completed'").await < n {
        assert!(Instant::now() < deadline, "{n} jobs completed within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The pid of the session that has run `LISTEN` (other than `not`), once there is one.
async fn wait_for_listener(db: &Db, not: Option<i32>) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pid = db
            .read("test.listener", |c| async move {
                c.query_opt(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %' \
                     AND state = 'idle' AND datname = current_database() AND pid <> $1",
                    &[&not.unwrap_or(0)],
                )
                .await?
                .map(|r| r.try_get::<_, i32>(0))
                .transpose()
            })
            .await
            .unwrap();
        if let Some(pid) = pid {
            return pid;
        }
        assert!(Instant::now() < deadline, "a LISTEN session within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_binary_exits_non_zero_after_max_failures() {
    // A database that does not exist: every claim fails.
    let url = shared::testing::create_database().await;
    let missing = url.replace("basalt_test_", "basalt_missing_");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .env("DATABASE_URL", &missing)
        .env("WEBHOOK_ENCRYPTION_KEY", shared::testing::TEST_WEBHOOK_KEY)
        .env("WORKER_HEALTH_ADDR", "127.0.0.1:0")
        .env("WORKER_POLL_ACTIVE_MS", "5")
        .env("WORKER_POLL_IDLE_MS", "20")
        .env("WORKER_MAX_FAILURES", "3")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 consecutive failed polls"), "{stderr}");
}

/// Runs far longer than any grace.
struct Slow;

impl JobHandler for Slow {
    type Job = Echo;

    async fn run(&self, _job: Echo) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    }
}

#[tokio::test]
async fn a_job_outlasting_the_grace_is_released_and_claimable_at_once() {
    let (db, _) = database().await;
    enqueue_echoes(&db, 1).await;
    let mut c = cadence(10, 10, 3);
    c.shutdown_grace = Duration::from_millis(200);
    let mut runner = Runner::new(c, Health::default());
    runner.spawn(QueueWorker::new(db.clone(), Slow, "w"));
    let started = Instant::now();
    runner
        .run_until(signal_after(Duration::from_millis(100)))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    let claimed = jobs::claim(&db, Echo::KIND, "next", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "released, so claimable without waiting for the lease"
    );
    assert_eq!(claimed[0].attempt, 1, "the interrupted run was not counted");
}

#[tokio::test]
async fn retention_deletes_old_completed_jobs_only() {
    let (db, _) = database().await;
    enqueue_echoes(&db, 4).await;
    let claimed = jobs::claim(&db, Echo::KIND, "w", 3, Duration::from_secs(30))
        .await
        .unwrap();
    let leases: Vec<Lease> = claimed.iter().map(Lease::from).collect();
    jobs::complete(&db, "w", &leases[..2]).await.unwrap();
    let failure = Failure {
        lease: leases[2],
        error: "x".into(),
        retry_in: Duration::ZERO,
    };
    db.read("test.age", |c| async move {
        c.execute("UPDATE jobs SET max_attempts = 1", &[]).await
    })
    .await
    .unwrap();
    jobs::fail(&db, "w", &[failure]).await.unwrap();
    // Two completed (one of them old), one dead (old), one still available (old).
    let recent = leases[1].id;
    db.read("test.age", |c| async move {
        c.execute(
            "UPDATE jobs SET updated_at = now() - interval '25 hours' WHERE id <> $1",
            &[&recent],
        )
        .await
    })
    .await
    .unwrap();
    let mut retention =
        worker::retention::Retention::new(db.clone(), Duration::from_secs(24 * 3600));
    assert_eq!(retention.poll(&Stop::never()).await.unwrap(), Poll::Idle);
    let states: Vec<String> = db
        .read("test.states", |c| async move {
            c.query("SELECT state FROM jobs ORDER BY state", &[])
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect()
        })
        .await
        .unwrap();
    assert_eq!(states, ["available", "completed", "dead"]);
}

fn worker_cli(url: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .env("DATABASE_URL", url)
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test]
async fn serve_flags_stand_in_front_of_the_environment_and_are_checked_like_it() {
    let url = shared::testing::create_database().await;
    // The flag wins over the variable, and its error names the variable it stands for.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("WORKER_LEASE_SECONDS", "30")
        .args(["serve", "--lease-seconds", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WORKER_LEASE_SECONDS=\"0\" is not valid"),
        "{stderr}"
    );
    let (ok, help) = worker_cli(&url, &["serve", "--help"]);
    assert!(ok);
    for flag in [
        "--health-addr",
        "--poll-active-ms",
        "--poll-idle-ms",
        "--max-failures",
        "--shutdown-grace-seconds",
        "--lease-seconds",
        "--batch-size",
        "--retention-hours",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
}

#[tokio::test]
async fn operators_see_dead_jobs_and_replay_or_discard_them_with_worker_jobs() {
    let (db, url) = database().await;
    enqueue_echoes(&db, 2).await;
    // Both die on their first attempt.
    db.read("test.one_attempt", |c| async move {
        c.execute("UPDATE jobs SET max_attempts = 1", &[]).await
    })
    .await
    .unwrap();
    let claimed = jobs::claim(&db, Echo::KIND, "w", 10, Duration::from_secs(30))
        .await
        .unwrap();
    let failures: Vec<Failure> = claimed
        .iter()
        .map(|j| Failure {
            lease: Lease::from(j),
            error: "receiver said 500".into(),
            retry_in: Duration::ZERO,
        })
        .collect();
    assert_eq!(jobs::fail(&db, "w", &failures).await.unwrap().len(), 2);
    let (a, b) = (claimed[0].id, claimed[1].id);

    let (ok, out) = worker_cli(&url, &["jobs", "stats"]);
    assert!(ok, "{out}");
    let line = out.lines().find(|l| l.starts_with("test.echo")).unwrap();
    assert_eq!(line.split_whitespace().last(), Some("2"), "two dead: {out}");
    let (ok, out) = worker_cli(&url, &["jobs", "list", "--state", "dead"]);
    assert!(
        ok && out.contains(&a.to_string()) && out.contains("receiver said 500"),
        "{out}"
    );

    let (ok, out) = worker_cli(&url, &["jobs", "discard", &b.to_string()]);
    assert!(ok && out.contains("cancelled"), "{out}");
    let (ok, out) = worker_cli(&url, &["jobs", "retry", "--dead", "--kind", "test.echo"]);
    assert!(ok && out.starts_with("1 dead job(s)"), "{out}");
    let row = jobs::get(&db, a).await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.attempt), ("available", 0));
    assert_eq!(jobs::get(&db, b).await.unwrap().unwrap().state, "cancelled");
    // A cancelled job can be replayed by id.
    let (ok, out) = worker_cli(&url, &["jobs", "retry", &b.to_string()]);
    assert!(ok && out.contains("due now"), "{out}");
    assert_eq!(
        jobs::claim(&db, Echo::KIND, "w", 10, Duration::from_secs(30))
            .await
            .unwrap()
            .len(),
        2
    );
    // clap: every command has --help, and a malformed command line is refused.
    for args in [
        &["--help"][..],
        &["jobs", "--help"],
        &["jobs", "retry", "--help"],
    ] {
        let (ok, out) = worker_cli(&url, args);
        assert!(ok && out.contains("Usage"), "{args:?}: {out}");
    }
    let (ok, _) = worker_cli(&url, &["jobs", "retry"]);
    assert!(!ok, "retry needs an id or --dead");
}

#[tokio::test]
async fn readyz_fails_while_the_database_is_unreachable_or_a_worker_backs_off() {
    // Nothing listens on this port: every probe fails to connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let db = Db::connect_lazy(
        &format!("postgres://u@127.0.0.1:{port}/db"),
        1,
        Duration::from_secs(5),
    )
    .unwrap();
    let probe = db.clone();
    let health = Health::with_ready_check(Arc::new(move || {
        let db = probe.clone();
        Box::pin(async move {
            db.read(
                "test.ready",
                |c| async move { c.execute("SELECT 1", &[]).await },
            )
            .await
            .map(drop)
            .map_err(|e| format!("database: {}", e.unavailable_cause()))
        })
    }));
    let err = health.ready().await.unwrap_err();
    assert!(err.starts_with("database: cannot connect"), "{err}");
    assert!(
        health.live().is_ok(),
        "an unreachable database is not a dead process"
    );

    // A worker whose polls fail is backing off: not ready, still live.
    let (worker, _) = Scripted::new(vec![Err("down"); 100]);
    let health = Health::default();
    let mut runner = Runner::new(cadence(1000, 1000, 100), health.clone());
    runner.spawn(worker);
    let run = tokio::spawn(runner.run_until(signal_after(Duration::from_millis(200))));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(health.ready().await.unwrap_err(), "backing off: scripted");
    assert!(health.live().is_ok());
    run.await.unwrap().unwrap();
    assert_eq!(health.ready().await.unwrap_err(), "draining");
}

// ---------------------------------------------------------------- worker-testbed processes
//
// `worker-testbed` is `worker serve` plus `testbed.sleep`, a job that records each start in
// `testbed_runs` (tag, pid, time) and then sleeps: a slow job to signal or kill a real
// process under, and a count of how often each job ran.

#[derive(Debug, Serialize, Deserialize)]
struct Sleep {
    tag: i64,
    ms: u64,
}

impl Job for Sleep {
    const KIND: &'static str = "testbed.sleep";
    const MAX_ATTEMPTS: i32 = 5;
}

async fn enqueue_sleeps(db: &Db, jobs: Vec<Sleep>) {
    let jobs = Arc::new(jobs);
    db.write("test.enqueue_sleeps", move |tx| {
        let jobs = jobs.clone();
        Box::pin(async move {
            for job in jobs.iter() {
                jobs::enqueue(tx, &NewJob::new(job)).await?;
            }
            Ok::<_, PgError>(())
        })
    })
    .await
    .unwrap();
}

/// A `worker-testbed serve` on `url`, quick to poll (an expired lease is found by polling),
/// with `settings` on top.
fn spawn_testbed(url: &str, settings: &[(&str, &str)]) -> Running {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_worker-testbed"));
    command
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", url)
        .env("WEBHOOK_ENCRYPTION_KEY", shared::testing::TEST_WEBHOOK_KEY)
        .env("WORKER_HEALTH_ADDR", "127.0.0.1:0")
        .env("WORKER_POLL_ACTIVE_MS", "50")
        .env("WORKER_POLL_IDLE_MS", "200")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    for (name, value) in settings {
        command.env(name, value);
    }
    Running(Some(command.spawn().unwrap()))
}

/// A child process killed when dropped, so a failing test leaves no worker behind.
struct Running(Option<std::process::Child>);

impl Running {
    fn signal(&self, signal: &str) {
        let id = self.0.as_ref().unwrap().id().to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &id])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }

    async fn exit(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().unwrap();
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `tag` has started `n` times; returns the starts' times (seconds, DB clock).
async fn wait_for_runs(db: &Db, tag: i64, n: usize, within: Duration) -> Vec<f64> {
    let deadline = Instant::now() + within;
    loop {
        let starts = db
            .read("test.runs", |c| async move {
                let rows = c
                    .query(
                        "SELECT extract(epoch FROM started_at)::float8 FROM testbed_runs \
                         WHERE tag = $1 ORDER BY started_at",
                        &[&tag],
                    )
                    .await;
                match rows {
                    Ok(rows) => rows.iter().map(|r| r.try_get(0)).collect(),
                    // The first testbed creates the table as it starts.
                    Err(e)
                        if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) =>
                    {
                        Ok(Vec::new())
                    }
                    Err(e) => Err(e),
                }
            })
            .await
            .unwrap();
        if starts.len() >= n {
            return starts;
        }
        assert!(
            Instant::now() < deadline,
            "job {tag} started {n} time(s) within {within:?} (saw {})",
            starts.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The state and attempt of the one `testbed.sleep` job tagged `tag`.
async fn sleep_job(db: &Db, tag: i64) -> (String, i32) {
    db.read("test.sleep_job", |c| async move {
        let row = c
            .query_one(
                "SELECT state, attempt FROM jobs WHERE kind = 'testbed.sleep' \
                 AND (payload->>'tag')::bigint = $1",
                &[&tag],
            )
            .await?;
        Ok::<_, PgError>((row.try_get(0)?, row.try_get(1)?))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn sigterm_lets_a_slow_job_finish_or_releases_it_when_it_outlasts_the_grace() {
    let (db, url) = database().await;
    // Within the grace: the job runs to its end, and the process exits 0 after it.
    enqueue_sleeps(&db, vec![Sleep { tag: 1, ms: 1500 }]).await;
    let child = spawn_testbed(&url, &[("WORKER_SHUTDOWN_GRACE_SECONDS", "10")]);
    wait_for_runs(&db, 1, 1, Duration::from_secs(20)).await;
    child.signal("-TERM");
    let stopping = Instant::now();
    let exit = child.exit().await;
    assert!(exit.success(), "{exit:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
    assert_eq!(sleep_job(&db, 1).await, ("completed".to_owned(), 1));

    // Outlasting the grace: released, exit 0 once the grace is over, claimable again at once.
    enqueue_sleeps(&db, vec![Sleep { tag: 2, ms: 60_000 }]).await;
    let child = spawn_testbed(&url, &[("WORKER_SHUTDOWN_GRACE_SECONDS", "1")]);
    wait_for_runs(&db, 2, 1, Duration::from_secs(20)).await;
    child.signal("-TERM");
    let stopping = Instant::now();
    let exit = child.exit().await;
    assert!(exit.success(), "{exit:?}");
    let took = stopping.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(sleep_job(&db, 2).await, ("available".to_owned(), 0));
}

#[tokio::test]
async fn a_sigkilled_workers_job_runs_again_once_its_lease_expires() {
    let (db, url) = database().await;
    enqueue_sleeps(&db, vec![Sleep { tag: 3, ms: 300 }]).await;
    let lease = [("WORKER_LEASE_SECONDS", "2")];
    let first = spawn_testbed(&url, &lease);
    let starts = wait_for_runs(&db, 3, 1, Duration::from_secs(20)).await;
    first.signal("-KILL");
    let exit = first.exit().await;
    assert!(!exit.success());
    let second = spawn_testbed(&url, &lease);
    let starts_again = wait_for_runs(&db, 3, 2, Duration::from_secs(20)).await;
    // Killed before its first heartbeat (a third of the lease in): the claim held 2 s.
    let gap = starts_again[1] - starts[0];
    assert!(gap >= 1.9, "ran again {gap:.3} s after the first start");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleep_job(&db, 3).await.0 != "completed" {
        assert!(Instant::now() < deadline, "completed by the second worker");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sleep_job(&db, 3).await, ("completed".to_owned(), 2));
    second.signal("-TERM");
    assert!(second.exit().await.success());
}

#[tokio::test]
async fn a_thousand_jobs_survive_three_workers_sigkilled_and_restarted_at_random() {
    use rand::Rng;
    const JOBS: i64 = 1000;
    let (db, url) = database().await;
    let mut rng = rand::rng();
    let jobs = (0..JOBS)
        .map(|tag| Sleep {
            tag,
            ms: rng.random_range(30..120),
        })
        .collect();
    enqueue_sleeps(&db, jobs).await;
    let settings = [("WORKER_LEASE_SECONDS", "2")];
    let mut workers: Vec<_> = (0..3).map(|_| spawn_testbed(&url, &settings)).collect();
    let pending = || {
        count(
            &db,
            "SELECT count(*) FROM jobs WHERE kind = 'testbed.sleep' AND state <> 'completed'",
        )
    };
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while pending().await > 0 {
        assert!(Instant::now() < deadline, "every job completed within 90 s");
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..450))).await;
        if kills < 8 {
            let victim = rng.random_range(0..workers.len());
            let killed = std::mem::replace(&mut workers[victim], spawn_testbed(&url, &settings));
            killed.signal("-KILL");
            assert!(!killed.exit().await.success());
            kills += 1;
        }
    }
    for w in workers {
        w.signal("-TERM");
        assert!(w.exit().await.success());
    }
    let (runs, rerun_jobs, max_runs, started_after_completion, unrun) = db
        .read("test.chaos", |c| async move {
            let row = c
                .query_one(
                    "WITH per_job AS ( \
                       SELECT j.id, j.attempt, j.updated_at, count(r.tag) AS runs, \
                              max(r.started_at) AS last_start \
                       FROM jobs j LEFT JOIN testbed_runs r ON r.tag = (j.payload->>'tag')::bigint \
                       WHERE j.kind = 'testbed.sleep' GROUP BY j.id) \
                     SELECT sum(runs)::bigint, count(*) FILTER (WHERE runs > 1), \
                            max(runs), count(*) FILTER (WHERE last_start > updated_at), \
                            count(*) FILTER (WHERE runs = 0 OR runs > attempt) \
                     FROM per_job",
                    &[],
                )
                .await?;
            Ok::<_, PgError>((
                row.try_get::<_, i64>(0)?,
                row.try_get::<_, i64>(1)?,
                row.try_get::<_, i64>(2)?,
                row.try_get::<_, i64>(3)?,
                row.try_get::<_, i64>(4)?,
            ))
        })
        .await
        .unwrap();
    eprintln!(
        "chaos: {JOBS} jobs, {kills} SIGKILLs, {runs} runs: {} duplicate runs over {rerun_jobs} \
         jobs (at most {max_runs} runs of one job)",
        runs - JOBS
    );
    assert_eq!(kills, 8, "the workers were killed while jobs remained");
    assert_eq!(
        count(&db, "SELECT count(*) FROM jobs WHERE state = 'completed'").await,
        JOBS,
        "every job completed, none dead"
    );
    assert_eq!(
        unrun, 0,
        "every job ran, and never more often than it was claimed"
    );
    assert_eq!(
        started_after_completion, 0,
        "no job started again after it completed"
    );
}

#[tokio::test]
async fn readyz_follows_a_real_database_stop_and_start_and_the_listener_subscribes_again() {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run scripts/test, which starts the outage PostgreSQL")
        })
    };
    let (admin, data, services) = (
        var("BASALT_TEST_OUTAGE_DATABASE_URL"),
        var("BASALT_TEST_OUTAGE_PG_DATA"),
        var("BASALT_TEST_SERVICES_SH"),
    );
    let port = admin
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap()
        .to_owned();
    let url = shared::testing::create_database_on(&admin).await;
    let db = Db::connect_lazy(&url, 2, Duration::from_secs(5)).unwrap();
    db.migrate().await.unwrap();
    let service = |call: String| {
        let services = services.clone();
        async move {
            let args: Vec<String> = call.split(' ').map(str::to_owned).collect();
            let status = tokio::task::spawn_blocking(move || {
                std::process::Command::new("bash")
                    .arg(&services)
                    .args(&args)
                    .status()
                    .unwrap()
            })
            .await
            .unwrap();
            assert!(status.success(), "{call}");
        }
    };

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", &url)
        .env("WEBHOOK_ENCRYPTION_KEY", shared::testing::TEST_WEBHOOK_KEY)
        .env("WORKER_HEALTH_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let (addr, _reader) = health_addr(&mut child);
    let child = Running(Some(child));
    let http = reqwest::Client::new();
    let probe = |path: &'static str| {
        let (http, addr) = (http.clone(), addr.clone());
        async move {
            let res = http
                .get(format!("http://{addr}/{path}"))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let until = |want: u16, within: Duration| async move {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = probe("readyz").await;
            if status == want {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz {want} within {within:?}, got {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    until(200, Duration::from_secs(10)).await;
    let listener = wait_for_listener(&db, None).await;

    service(format!("pg_stop {data}")).await;
    let body = until(503, Duration::from_secs(10)).await;
    assert!(body.contains("database"), "{body}");
    assert_eq!(probe("healthz").await.0, 200, "down database, live process");

    service(format!("pg_start {data} {port} test")).await;
    until(200, Duration::from_secs(30)).await;
    assert_ne!(wait_for_listener(&db, Some(listener)).await, listener);
    let user_id = user(&db).await;
    items::create(&db, user_id, "after the restart", "")
        .await
        .unwrap();
    wait_for_completed(&db, 1).await;
    child.signal("-TERM");
    assert!(child.exit().await.success());
}

// ---------------------------------------------------------------- webhook delivery attempts
//
// `worker::delivery::Sender` against a real loopback receiver: signatures checked with the
// official `standardwebhooks` verifier, every status class, the timeout, the 1 KiB body cap,
// and the SSRF guard at delivery (a name that rebinds to loopback after its check).

mod delivery {
    use std::{
        collections::HashMap,
        net::{IpAddr, SocketAddr},
        pin::Pin,
    };

    use axum::{
        Router,
        http::{HeaderMap, StatusCode, header},
        response::IntoResponse,
        routing::post,
    };
    use shared::ssrf::{Policy, Resolve};
    use worker::delivery::{Message, Outcome, Sender};

    use super::*;

    /// Names answered from a list, one answer per lookup of that name in turn (the last one
    /// repeats).
    struct Answers(
        HashMap<&'static str, Vec<IpAddr>>,
        Mutex<HashMap<String, usize>>,
    );

    impl Resolve for Answers {
        fn resolve(
            &self,
            host: &str,
            port: u16,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + '_>> {
            let n = {
                let mut seen = self.1.lock().unwrap();
                let n = seen.entry(host.to_owned()).or_insert(0);
                *n += 1;
                *n - 1
            };
            let found = self.0.get(host).map(|ips| {
                let ip = ips[n.min(ips.len() - 1)];
                vec![SocketAddr::new(ip, port)]
            });
            Box::pin(async move { found.ok_or_else(|| std::io::Error::other("no such host")) })
        }
    }

    fn answers(entries: &[(&'static str, &[&str])]) -> Arc<dyn Resolve> {
        Arc::new(Answers(
            entries
                .iter()
                .map(|(h, ips)| (*h, ips.iter().map(|ip| ip.parse().unwrap()).collect()))
                .collect(),
            Mutex::default(),
        ))
    }

    type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

    async fn receiver() -> (SocketAddr, Received) {
        let received: Received = Arc::default();
        let log = received.clone();
        let app = Router::new()
            .route(
                "/ok",
                post(move |headers: HeaderMap, body: axum::body::Bytes| {
                    let log = log.clone();
                    async move {
                        log.lock().unwrap().push((headers, body.to_vec()));
                        (StatusCode::OK, "thanks")
                    }
                }),
            )
            .route("/gone", post(|| async { (StatusCode::GONE, "bye") }))
            .route(
                "/busy",
                post(|| async {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [(header::RETRY_AFTER, "120")],
                        "later",
                    )
                }),
            )
            .route(
                "/down",
                post(|| async {
                    let at = std::time::SystemTime::now() + Duration::from_secs(90);
                    let date = httpdate_fmt(at);
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(header::RETRY_AFTER, date)],
                        "",
                    )
                        .into_response()
                }),
            )
            .route(
                "/moved",
                post(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")], "") }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    "late"
                }),
            )
            .route(
                "/broken",
                post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "x".repeat(5000)) }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (addr, received)
    }

    fn httpdate_fmt(at: std::time::SystemTime) -> String {
        // Via the HTTP date format chrono knows (RFC 7231's IMF-fixdate).
        chrono::DateTime::<chrono::Utc>::from(at)
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string()
    }

    fn message() -> (Message, serde_json::Value) {
        let data = serde_json::json!({"id": Uuid::now_v7(), "title": "first"});
        (Message::new(Uuid::now_v7(), "item.created", &data), data)
    }

    const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NEW: &str = "whsec_b2xkLXNlY3JldC1uZXctc2VjcmV0LWJ5dGVzISE=";

    #[tokio::test]
    async fn deliveries_are_signed_and_every_answer_is_classified() {
        let (addr, received) = receiver().await;
        let dev = Policy {
            allow_insecure: true,
            allow_private: true,
        };
        let dns = answers(&[("receiver.test", &["127.0.0.1"])]);
        let sender = Sender::new(dev, dns, Duration::from_millis(500)).unwrap();
        let base = format!("http://receiver.test:{}", addr.port());

        // Signed with both secrets of a rotation; the official verifier accepts either.
        let (msg, data) = message();
        let outcome = sender
            .send(
                &format!("{base}/ok"),
                &msg,
                &[NEW.to_owned(), OLD.to_owned()],
            )
            .await;
        assert_eq!(
            outcome,
            Outcome::Delivered {
                status: 200,
                body: "thanks".into()
            }
        );
        let (headers, body) = received.lock().unwrap().pop().unwrap();
        assert_eq!(headers["webhook-id"], msg.message_id.as_str());
        assert_eq!(headers["content-type"], "application/json");
        let signature = headers["webhook-signature"].to_str().unwrap().to_owned();
        assert_eq!(signature.split(' ').count(), 2, "{signature}");
        assert!(signature.split(' ').all(|s| s.starts_with("v1,")));
        let http_headers = headers.clone();
        for secret in [OLD, NEW] {
            standardwebhooks::Webhook::new(secret)
                .unwrap()
                .verify(&body, &http_headers)
                .unwrap();
        }
        let other = "whsec_c29tZW9uZS1lbHNlcy1zZWNyZXQtYnl0ZXMhIQ==";
        assert!(
            standardwebhooks::Webhook::new(other)
                .unwrap()
                .verify(&body, &http_headers)
                .is_err()
        );
        let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent["type"], "item.created");
        assert_eq!(sent["data"], data);
        assert!(sent["timestamp"].as_str().unwrap().ends_with('Z'));

        let one = [NEW.to_owned()];
        assert_eq!(
            sender.send(&format!("{base}/gone"), &msg, &one).await,
            Outcome::Gone { body: "bye".into() }
        );
        let Outcome::Failed {
            status,
            retry_after,
            ..
        } = sender.send(&format!("{base}/busy"), &msg, &one).await
        else {
            panic!("429 is a failure")
        };
        assert_eq!(
            (status, retry_after),
            (Some(429), Some(Duration::from_secs(120)))
        );
        let Outcome::Failed {
            status,
            retry_after,
            ..
        } = sender.send(&format!("{base}/down"), &msg, &one).await
        else {
            panic!("503 is a failure")
        };
        assert_eq!(status, Some(503));
        let wait = retry_after.unwrap().as_secs();
        assert!((85..=90).contains(&wait), "an HTTP date 90 s ahead: {wait}");
        let Outcome::Failed { status, error, .. } =
            sender.send(&format!("{base}/moved"), &msg, &one).await
        else {
            panic!("a redirect is a failure")
        };
        assert_eq!(status, Some(302));
        assert!(error.contains("redirects are not followed"), "{error}");
        assert!(
            received.lock().unwrap().is_empty(),
            "the redirect was not followed"
        );
        let Outcome::Failed {
            status,
            error,
            body,
            ..
        } = sender.send(&format!("{base}/slow"), &msg, &one).await
        else {
            panic!("a timeout is a failure")
        };
        assert_eq!((status, body), (None, None));
        assert!(error.starts_with("timed out"), "{error}");
        let Outcome::Failed {
            status,
            body,
            retry_after,
            ..
        } = sender.send(&format!("{base}/broken"), &msg, &one).await
        else {
            panic!("500 is a failure")
        };
        assert_eq!((status, retry_after), (Some(500), None));
        assert_eq!(body.unwrap().len(), 1024, "kept to 1 KiB");
    }

    #[tokio::test]
    async fn the_guard_refuses_at_delivery_too_even_a_name_that_rebinds_after_its_check() {
        let (addr, received) = receiver().await;
        let strict = Policy::default();
        // Public when the guard checks it, loopback when the client resolves it.
        let dns = answers(&[
            ("rebind.test", &["93.184.216.34", "127.0.0.1"]),
            ("inside.test", &["10.0.0.7"]),
        ]);
        let sender = Sender::new(strict, dns, Duration::from_secs(2)).unwrap();
        let (msg, _) = message();
        let one = [NEW.to_owned()];
        for url in [
            format!("http://127.0.0.1:{}/ok", addr.port()),
            format!("https://127.0.0.1:{}/ok", addr.port()),
            format!("https://inside.test:{}/ok", addr.port()),
        ] {
            let outcome = sender.send(&url, &msg, &one).await;
            assert!(matches!(outcome, Outcome::Refused(_)), "{url}: {outcome:?}");
        }
        let outcome = sender
            .send(
                &format!("https://rebind.test:{}/ok", addr.port()),
                &msg,
                &one,
            )
            .await;
        let Outcome::Failed { status, error, .. } = outcome else {
            panic!("refused by the client's resolver: {outcome:?}")
        };
        assert_eq!(status, None);
        assert!(error.contains("webhooks may not reach"), "{error}");
        assert!(
            received.lock().unwrap().is_empty(),
            "nothing reached the receiver"
        );
    }
}

/// The official Python `standardwebhooks` package, in `scripts/webhook-receiver`, verifies what
/// `worker::delivery` sends: an implementation independent of the Rust signer.
#[tokio::test]
async fn the_python_standard_webhooks_receiver_verifies_our_signatures() {
    const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NEW: &str = "whsec_b2xkLXNlY3JldC1uZXctc2VjcmV0LWJ5dGVzISE=";
    const OTHER: &str = "whsec_c29tZW9uZS1lbHNlcy1zZWNyZXQtYnl0ZXMhIQ==";
    let receiver = shared::testing::PythonReceiver::start(OLD);
    let next = || receiver.next();
    let addr = receiver.addr.clone();
    let dev = shared::ssrf::Policy {
        allow_insecure: true,
        allow_private: true,
    };
    let sender = worker::delivery::Sender::new(
        dev,
        Arc::new(shared::ssrf::SystemResolver),
        Duration::from_secs(10),
    )
    .unwrap();
    let data = serde_json::json!({"id": Uuid::now_v7(), "title": "checked in Python"});
    let message = worker::delivery::Message::new(Uuid::now_v7(), "item.created", &data);
    let url = format!("http://{addr}/hook");
    // During a rotation: signed by the new secret and the old one; the receiver knows the old.
    let outcome = sender
        .send(&url, &message, &[NEW.to_owned(), OLD.to_owned()])
        .await;
    assert_eq!(
        outcome,
        worker::delivery::Outcome::Delivered {
            status: 204,
            body: String::new()
        }
    );
    let seen = next();
    assert_eq!(seen["verified"], true, "{seen}");
    assert_eq!(seen["webhook_id"], message.message_id.as_str());
    assert_eq!(seen["type"], "item.created");
    assert_eq!(seen["data"], data);
    // Signed only by a secret the receiver does not know: refused.
    let outcome = sender.send(&url, &message, &[OTHER.to_owned()]).await;
    assert!(
        matches!(
            outcome,
            worker::delivery::Outcome::Failed {
                status: Some(400),
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(next()["verified"], false);
    drop(receiver);
}

#[tokio::test]
async fn worker_sessions_commit_without_waiting_for_the_flush_and_keep_the_urls_options() {
    let url = shared::testing::create_database().await;
    // The test server commits asynchronously everywhere (scripts/test's tuning): this
    // database does not, so ours is seen to apply.
    let name = url.rsplit('/').next().unwrap().to_owned();
    Db::connect_lazy(&url, 1, Duration::from_secs(5))
        .unwrap()
        .read("test.sync_on", |c| {
            let sql = format!("ALTER DATABASE {name} SET synchronous_commit = on");
            async move { c.batch_execute(&sql).await }
        })
        .await
        .unwrap();
    // An `options` of the operator's own in DATABASE_URL stays in force beside ours.
    let with_options = format!("{url}?options=-c%20statement_timeout%3D4321");
    let env = shared::config::Env::from_lookup(shared::config::Runtime::Host, move |name| {
        (name == "DATABASE_URL").then(|| with_options.clone())
    })
    .unwrap();
    let settings = shared::config::DatabaseSettings::from_env(&env).unwrap();
    let show = |db: Db, name: &'static str| async move {
        db.read("test.show", |c| async move {
            c.query_one(&format!("SHOW {name}"), &[])
                .await?
                .try_get::<_, String>(0)
        })
        .await
        .unwrap()
    };
    let worker_db = Db::with_session_settings(&settings, worker::WORKER_SESSION).unwrap();
    assert_eq!(show(worker_db.clone(), "synchronous_commit").await, "off");
    assert_eq!(show(worker_db, "statement_timeout").await, "4321ms");
    let api_db = Db::new(&settings).unwrap();
    assert_eq!(show(api_db, "synchronous_commit").await, "on");
}

#[test]
fn worker_serve_refuses_to_start_without_the_webhook_key_and_names_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WEBHOOK_ENCRYPTION_KEY is required but not set"),
        "{stderr}"
    );
}

#[test]
fn the_drain_reads_an_epoch_deadline_and_cargo_lambdas_relative_one() {
    use worker::scheduled::time_left;
    let now = 1_796_186_384_539;
    assert_eq!(time_left(1_796_186_444_539, now), Duration::from_secs(60));
    assert_eq!(time_left(1_796_186_000_000, now), Duration::ZERO, "passed");
    assert_eq!(
        time_left(600_000, now),
        Duration::from_secs(600),
        "cargo lambda watch"
    );
}
