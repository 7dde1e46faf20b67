//! `host [serve]` serves the API; `host migrate` applies migrations and exits;
//! `host openapi` prints the OpenAPI document.

use anyhow::Context;
use clap::{Parser, Subcommand};
use shared::{
    AppState,
    config::{Config, Runtime},
    telemetry,
};

// glibc malloc was ~10 % of the host's CPU under load (perf, scripts/bench); mimalloc's
// per-thread heaps suit a request-per-task server better.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Basalt API host: every route group behind the shared middleware chain. Settings come
/// from the environment (README, "Configuration").
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
enum Command {
    /// Serve the API on BIND_ADDR until SIGTERM/SIGINT (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// GET /ready of the host serving on BIND_ADDR; exit 0 when it answers 2xx, 1 otherwise
    /// (a container healthcheck: the image has no shell or curl).
    Healthcheck,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo lambda watch` offers every binary of the workspace, this one included; started as
    // a "function" it would listen on BIND_ADDR and never answer the runtime API.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        shared::lambda::refuse_invocations(
            "host is the long-running server, not a Lambda function: invoke one of \
             auth, users, api-keys, items, webhooks, health, worker-drain, migrate (README, \"Lambda \
             locally\")",
        )
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
        return Ok(());
    }
    // `openapi` needs no configuration: it is answered before any is read.
    let migrate_only = match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            let (_, doc) = host::routes();
            let json = serde_json::to_string_pretty(&*doc)?;
            #[allow(clippy::print_stdout)] // a CLI printing its output
            {
                println!("{json}");
            }
            return Ok(());
        }
        Command::Healthcheck => return healthcheck().await,
        Command::Migrate => true,
        Command::Serve => false,
    };
    let config = Config::from_env(Runtime::Host).context("invalid configuration")?;
    if !migrate_only {
        // The host serves the webhooks routes: without the key they could only answer 503.
        config
            .webhooks
            .require_key()
            .context("invalid configuration")?;
    }
    // Held until main returns: dropping it flushes the lines still queued.
    let _log_writer = telemetry::init_non_blocking(config.log_format);
    let state = AppState::new(config)?;
    if migrate_only {
        let applied = state.db.migrate().await.context("migration failed")?;
        tracing::info!(applied, "database is up to date");
        return Ok(());
    }
    let app = host::Application::build(state.clone())
        .await
        .with_context(|| format!("cannot bind {}", state.config.http.bind_addr))?;
    tracing::info!(addr = %app.local_addr()?, "listening");
    app.run_until(async {
        shared::signal::terminate_or_interrupt().await;
        tracing::info!("draining in-flight requests");
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

async fn healthcheck() -> anyhow::Result<()> {
    let env = shared::config::Env::from_process(Runtime::Host).context("invalid configuration")?;
    let http = shared::config::HttpSettings::from_env(&env).context("invalid configuration")?;
    shared::probe::check(http.bind_addr, "/ready", std::time::Duration::from_secs(5)).await?;
    Ok(())
}
