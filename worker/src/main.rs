//! `worker [serve]` drains the job queue until SIGTERM/SIGINT; `worker jobs …` shows and
//! repairs it (see the `worker` library). Reads only the database settings (`DATABASE_URL`,
//! …), the `WORKER_*`/`JOBS_*` settings and `LOG_FORMAT`: it needs no `JWT_SECRET`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shared::{
    config::{DatabaseSettings, Env, LogFormat, Runtime, WorkerSettings},
    db::Db,
    telemetry,
};
use uuid::Uuid;
use worker::{ServeError, ops, runner::RunError};

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
    Serve,
    /// Inspect and repair the job queue.
    #[command(subcommand)]
    Jobs(Jobs),
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
    let env = Env::from_process(Runtime::Host).context("invalid configuration")?;
    let database = DatabaseSettings::from_env(&env).context("invalid configuration")?;
    let log_format = LogFormat::from_env(&env).context("invalid configuration")?;
    let db = Db::new(&database)?;
    let jobs = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let settings = WorkerSettings::from_env(&env).context("invalid configuration")?;
            telemetry::init(log_format);
            worker::serve(
                db,
                database.url(),
                &settings,
                shared::signal::terminate_or_interrupt,
            )
            .await?;
            tracing::info!("stopped");
            return Ok(());
        }
        Command::Jobs(jobs) => jobs,
    };
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
