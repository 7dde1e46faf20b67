//! `worker [serve]` drains the job queue until SIGTERM/SIGINT; `worker jobs …` shows and
//! repairs it (see the `worker` library). Reads only the database settings (`DATABASE_URL`,
//! …), the `WORKER_*`/`JOBS_*` settings, the `WEBHOOK_*` settings (`serve` requires
//! `WEBHOOK_ENCRYPTION_KEY`: it signs deliveries) and `LOG_FORMAT`: it needs no `JWT_SECRET`.

use std::{collections::HashMap, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use shared::{
    config::{DatabaseSettings, Env, LogFormat, Runtime, WebhookSettings, WorkerSettings},
    db::Db,
    telemetry,
};
use uuid::Uuid;
use worker::{ServeError, handlers, ops, runner::RunError, webhooks::Webhooks};

/// The Basalt worker. Settings come from the environment (README, "Configuration").
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drain the job queue until SIGTERM/SIGINT (the default).
    Serve(ServeFlags),
    /// Inspect and repair the job queue.
    #[command(subcommand)]
    Jobs(Jobs),
    /// GET /readyz of the worker whose health server is on WORKER_HEALTH_ADDR; exit 0 when it
    /// answers 2xx, 1 otherwise (a container healthcheck: the image has no shell or curl).
    Healthcheck,
}

/// `worker serve`'s settings as flags, each in front of the environment variable it names.
#[derive(Debug, Default, clap::Args)]
struct ServeFlags {
    /// Where /healthz, /readyz and /metrics listen [WORKER_HEALTH_ADDR, 0.0.0.0:8081].
    #[arg(long, value_name = "ADDR")]
    health_addr: Option<String>,
    /// Wait after an idle poll while work was seen recently [WORKER_POLL_ACTIVE_MS, 1000].
    #[arg(long, value_name = "MS")]
    poll_active_ms: Option<String>,
    /// Longest wait between idle polls [WORKER_POLL_IDLE_MS, 30000].
    #[arg(long, value_name = "MS")]
    poll_idle_ms: Option<String>,
    /// Consecutive failed polls before exiting non-zero [WORKER_MAX_FAILURES, 10].
    #[arg(long, value_name = "N")]
    max_failures: Option<String>,
    /// After SIGTERM, how long running jobs may finish [WORKER_SHUTDOWN_GRACE_SECONDS, 30].
    #[arg(long, value_name = "SECONDS")]
    shutdown_grace_seconds: Option<String>,
    /// How long a claim holds without a heartbeat [WORKER_LEASE_SECONDS, 30].
    #[arg(long, value_name = "SECONDS")]
    lease_seconds: Option<String>,
    /// Jobs of one kind claimed and run together per poll [WORKER_BATCH_SIZE, 10].
    #[arg(long, value_name = "N")]
    batch_size: Option<String>,
    /// Completed jobs are deleted after this long [JOBS_RETENTION_HOURS, 24].
    #[arg(long, value_name = "HOURS")]
    retention_hours: Option<String>,
}

impl ServeFlags {
    /// The flags given, by the variable each stands for; validated with the environment's.
    fn overrides(&self) -> HashMap<&'static str, String> {
        [
            ("WORKER_HEALTH_ADDR", self.health_addr.clone()),
            ("WORKER_POLL_ACTIVE_MS", self.poll_active_ms.clone()),
            ("WORKER_POLL_IDLE_MS", self.poll_idle_ms.clone()),
            ("WORKER_MAX_FAILURES", self.max_failures.clone()),
            (
                "WORKER_SHUTDOWN_GRACE_SECONDS",
                self.shutdown_grace_seconds.clone(),
            ),
            ("WORKER_LEASE_SECONDS", self.lease_seconds.clone()),
            ("WORKER_BATCH_SIZE", self.batch_size.clone()),
            ("JOBS_RETENTION_HOURS", self.retention_hours.clone()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect()
    }
}

#[derive(Debug, Subcommand)]
enum Jobs {
    /// Per kind: due jobs, the oldest one's wait, running, scheduled and dead jobs.
    Stats,
    /// Jobs in one state, most recently changed first.
    List {
        /// available, running, retryable, completed, dead or cancelled.
        #[arg(long, default_value = "dead")]
        state: String,
        /// Only this kind (e.g. item.created).
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Make a dead (or cancelled, or waiting) job due now, its attempts starting over.
    Retry {
        /// The job's id.
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        id: Option<Uuid>,
        /// Every dead job instead.
        #[arg(long)]
        dead: bool,
        /// With --dead: only this kind.
        #[arg(long, requires = "dead")]
        kind: Option<String>,
    },
    /// Cancel a waiting or dead job (it is kept as cancelled).
    Discard {
        /// The job's id.
        id: Uuid,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    // `cargo lambda watch` offers every binary of the workspace: started as a "function" this
    // one would drain forever and never answer the runtime API.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let refused = shared::lambda::refuse_invocations(
            "worker is the long-running worker, not a Lambda function: invoke worker-drain, the \
             scheduled drain (README, \"Lambda locally\")",
        )
        .await;
        return if refused.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "worker stopped");
            #[allow(clippy::print_stderr)] // the subscriber may not exist yet
            {
                eprintln!("worker: {e:#}");
            }
            // 130 like a shell's interrupted process; 1 for everything else.
            match e.downcast_ref::<ServeError>() {
                Some(ServeError::Run(RunError::Interrupted)) => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeFlags::default()));
    let overrides = match &command {
        Command::Serve(flags) => flags.overrides(),
        Command::Jobs(_) | Command::Healthcheck => HashMap::new(),
    };
    let env = Env::from_process_with(Runtime::Host, overrides).context("invalid configuration")?;
    let jobs = match command {
        // Before the database settings: a probe needs none.
        Command::Healthcheck => {
            let settings = WorkerSettings::from_env(&env).context("invalid configuration")?;
            shared::probe::check(settings.health_addr, "/readyz", Duration::from_secs(5)).await?;
            return Ok(());
        }
        Command::Jobs(jobs) => jobs,
        Command::Serve(_) => {
            let database = DatabaseSettings::from_env(&env).context("invalid configuration")?;
            let log_format = LogFormat::from_env(&env).context("invalid configuration")?;
            let db = Db::with_session_settings(&database, worker::WORKER_SESSION)?;
            let settings = WorkerSettings::from_env(&env).context("invalid configuration")?;
            let webhook_settings =
                WebhookSettings::from_env(&env).context("invalid configuration")?;
            let webhooks =
                Webhooks::new(db.clone(), &webhook_settings).context("invalid configuration")?;
            telemetry::init(log_format);
            worker::serve(
                db,
                database.url(),
                &settings,
                handlers::register(webhooks),
                shared::signal::terminate_or_interrupt,
            )
            .await?;
            tracing::info!("stopped");
            return Ok(());
        }
    };
    let database = DatabaseSettings::from_env(&env).context("invalid configuration")?;
    // Operators' commands keep synchronous commits: a replay they were told happened did.
    let db = Db::new(&database)?;
    let out = match jobs {
        Jobs::Stats => ops::stats(&db).await?,
        Jobs::List { state, kind, limit } => ops::list(&db, &state, kind.as_deref(), limit).await?,
        Jobs::Retry { id: Some(id), .. } => ops::retry(&db, id).await?,
        Jobs::Retry { kind, .. } => ops::retry_dead(&db, kind.as_deref()).await?,
        Jobs::Discard { id } => ops::discard(&db, id).await?,
    };
    #[allow(clippy::print_stdout)] // a CLI printing its output
    {
        print!("{out}");
    }
    Ok(())
}
