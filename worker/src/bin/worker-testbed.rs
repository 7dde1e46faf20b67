//! `worker-testbed`: the real `worker serve` plus two kinds that exist for tests and
//! `scripts/bench-worker`, never for deployments (the images ship `worker` only):
//!
//! - `testbed.sleep` `{"tag", "ms"}` records each start in `testbed_runs` (tag, pid, time) and
//!   sleeps `ms`: a slow job to signal or kill a process under, and a run count per job for
//!   the tests that SIGKILL workers at random.
//! - `testbed.noop` `{"enqueued_at_us"?}` does nothing; when it carries the wall-clock time
//!   its enqueuer took just before enqueuing, it records enqueue→start latency, printed as
//!   one JSON line on stdout when `serve` stops.
//!
//! `insert --count N` pre-inserts N noop jobs; `enqueue --rate R --seconds S` enqueues noop
//! jobs at a steady rate, one transaction each through `shared::repo::jobs::enqueue`. With
//! `--graphile` both do the same through graphile-worker's SQL API (`add_jobs`, `add_job`, task
//! `noop`), so one load generator drives both systems that `scripts/bench-worker` compares.
//! `migrate` applies Basalt's migrations (the benchmark's database needs no `host`).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use shared::{
    config::{DatabaseSettings, Env, LogFormat, Runtime, WebhookSettings, WorkerSettings},
    db::Db,
    repo::jobs::{self, Job, NewJob},
    telemetry,
};
use tokio_postgres::types::Json as PgJson;
use worker::{
    handlers,
    queue::{JobError, JobHandler},
    webhooks::Webhooks,
};

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// `worker serve` plus the testbed kinds; prints the noop latencies on stdout when stopped.
    Serve,
    /// Pre-insert noop jobs (one statement), for a burn-down.
    Insert {
        #[arg(long)]
        count: i64,
        /// Into graphile-worker's queue (task `noop`) instead.
        #[arg(long)]
        graphile: bool,
    },
    /// Enqueue noop jobs carrying their enqueue time at a steady rate.
    Enqueue {
        /// Jobs per second.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[arg(long, default_value_t = 20)]
        seconds: u32,
        /// Into graphile-worker's queue (task `noop`) instead.
        #[arg(long)]
        graphile: bool,
    },
    /// Apply Basalt's migrations.
    Migrate,
}

/// graphile-worker's bulk insert: `add_jobs` with one `job_spec` per job, all defaults but the
/// task and an empty payload (as Basalt's insert).
const GRAPHILE_INSERT: &str = "SELECT count(*) FROM graphile_worker.add_jobs(ARRAY( \
       SELECT ROW('noop', '{}'::json, NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec \
       FROM generate_series(1, $1::bigint)))";

/// graphile-worker's enqueue, which also sends its `NOTIFY` (delivered at commit).
const GRAPHILE_ADD_JOB: &str = "SELECT id FROM graphile_worker.add_job('noop', $1::json)";

#[derive(Debug, Serialize, Deserialize)]
struct Sleep {
    tag: i64,
    ms: u64,
}

impl Job for Sleep {
    const KIND: &'static str = "testbed.sleep";
    const MAX_ATTEMPTS: i32 = 5;
}

#[derive(Debug, Serialize, Deserialize)]
struct Noop {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enqueued_at_us: Option<i64>,
}

impl Job for Noop {
    const KIND: &'static str = "testbed.noop";
}

const CREATE_RUNS: &str = "CREATE TABLE IF NOT EXISTS testbed_runs ( \
       tag bigint NOT NULL, pid integer NOT NULL, \
       started_at timestamptz NOT NULL DEFAULT clock_timestamp())";

struct SleepHandler {
    db: Db,
}

impl JobHandler for SleepHandler {
    type Job = Sleep;

    async fn run(&self, job: Sleep) -> Result<(), JobError> {
        let pid = std::process::id() as i32;
        self.db
            .read("testbed.run", |c| async move {
                c.execute(
                    "INSERT INTO testbed_runs (tag, pid) VALUES ($1, $2)",
                    &[&job.tag, &pid],
                )
                .await
            })
            .await?;
        tokio::time::sleep(Duration::from_millis(job.ms)).await;
        Ok(())
    }
}

#[derive(Default)]
struct NoopHandler {
    latencies_us: Arc<Mutex<Vec<i64>>>,
}

impl JobHandler for NoopHandler {
    type Job = Noop;

    async fn run(&self, job: Noop) -> Result<(), JobError> {
        if let Some(at) = job.enqueued_at_us {
            let latency = now_us() - at;
            self.latencies_us
                .lock()
                .map_err(|_| "latency log poisoned")?
                .push(latency);
        }
        Ok(())
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let env = Env::from_process(Runtime::Host).context("invalid configuration")?;
    let database = DatabaseSettings::from_env(&env).context("invalid configuration")?;
    // `serve` is `worker serve`, its sessions' settings included; the load (`insert`,
    // `enqueue`) commits synchronously, like the API it stands for.
    let db = if matches!(cli.command, Command::Serve) {
        Db::with_session_settings(&database, worker::WORKER_SESSION)?
    } else {
        Db::new(&database)?
    };
    match cli.command {
        Command::Serve => {
            let settings = WorkerSettings::from_env(&env).context("invalid configuration")?;
            telemetry::init(LogFormat::from_env(&env).context("invalid configuration")?);
            // Two testbeds starting together must not race to create the table.
            db.write("testbed.create", |tx| {
                Box::pin(async move {
                    tx.execute("SELECT pg_advisory_xact_lock(8081)", &[])
                        .await?;
                    tx.batch_execute(CREATE_RUNS).await
                })
            })
            .await?;
            let webhook_settings =
                WebhookSettings::from_env(&env).context("invalid configuration")?;
            let webhooks =
                Webhooks::new(db.clone(), &webhook_settings).context("invalid configuration")?;
            let noop = NoopHandler::default();
            let latencies = noop.latencies_us.clone();
            let sleep = SleepHandler { db: db.clone() };
            worker::serve(
                db,
                database.url(),
                &settings,
                |queues| {
                    handlers::register(webhooks)(queues);
                    queues.drain(sleep).drain(noop);
                },
                shared::signal::terminate_or_interrupt,
            )
            .await?;
            let mut latencies = std::mem::take(
                &mut *latencies
                    .lock()
                    .map_err(|_| anyhow::anyhow!("latency log poisoned"))?,
            );
            latencies.sort_unstable();
            let at = |q: f64| {
                let i = ((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
                latencies.get(i).copied()
            };
            let summary = serde_json::json!({
                "kind": Noop::KIND,
                "latency_us": {
                    "n": latencies.len(),
                    "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": latencies.last(),
                },
            });
            #[allow(clippy::print_stdout)] // the benchmark reads it
            {
                println!("{summary}");
            }
        }
        Command::Migrate => {
            let n = db.migrate().await?;
            tracing::info!(n, "applied migrations");
        }
        Command::Insert {
            count,
            graphile: true,
        } => {
            let n: i64 = db
                .read("testbed.insert_graphile", |c| async move {
                    c.query_one(GRAPHILE_INSERT, &[&count]).await?.try_get(0)
                })
                .await?;
            tracing::debug!(n, "inserted into graphile-worker");
        }
        Command::Insert {
            count,
            graphile: false,
        } => {
            let n = db
                .read("testbed.insert", |c| async move {
                    c.execute(
                        "INSERT INTO jobs (id, kind, payload, max_attempts) \
                         SELECT gen_random_uuid(), $1, '{}', $2 FROM generate_series(1, $3::bigint)",
                        &[&Noop::KIND, &Noop::MAX_ATTEMPTS, &count],
                    )
                    .await
                })
                .await?;
            tracing::debug!(n, "inserted");
        }
        Command::Enqueue {
            rate,
            seconds,
            graphile,
        } => {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for _ in 0..u64::from(rate) * u64::from(seconds) {
                tick.tick().await;
                let at = Some(now_us());
                if graphile {
                    db.write("testbed.enqueue_graphile", move |tx| {
                        Box::pin(async move {
                            let job = Noop { enqueued_at_us: at };
                            let stmt = tx.prepare_cached(GRAPHILE_ADD_JOB).await?;
                            tx.execute(&stmt, &[&PgJson(&job)]).await
                        })
                    })
                    .await?;
                } else {
                    db.write("testbed.enqueue", move |tx| {
                        Box::pin(async move {
                            let job = Noop { enqueued_at_us: at };
                            jobs::enqueue(tx, &NewJob::new(&job)).await
                        })
                    })
                    .await?;
                }
            }
        }
    }
    Ok(())
}
