//! `worker [serve]`: drains the job queue until SIGTERM/SIGINT (see the `worker` library).
//! Reads only `DATABASE_URL` and the database settings, the `WORKER_*` settings and
//! `LOG_FORMAT`: it needs no `JWT_SECRET`.

use std::process::ExitCode;

use anyhow::Context;
use shared::{
    config::{DatabaseSettings, Env, LogFormat, Runtime, WorkerSettings},
    db::Db,
    telemetry,
};
use worker::{ServeError, runner::RunError};

const USAGE: &str = "usage: worker [serve]";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
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

async fn run() -> anyhow::Result<()> {
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    if command != "serve" {
        anyhow::bail!("unknown command {command:?}; {USAGE}");
    }
    let env = Env::from_process(Runtime::Host).context("invalid configuration")?;
    let database = DatabaseSettings::from_env(&env).context("invalid configuration")?;
    let settings = WorkerSettings::from_env(&env).context("invalid configuration")?;
    let log_format = LogFormat::from_env(&env).context("invalid configuration")?;
    telemetry::init(log_format);
    let db = Db::new(&database)?;
    worker::serve(db, database.url(), &settings, worker::shutdown_signal).await?;
    tracing::info!("stopped");
    Ok(())
}
