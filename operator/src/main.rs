//! `operator [run]` reconciles AppDeployments until SIGTERM/SIGINT; `operator crd` prints the
//! CustomResourceDefinition. Reads the cluster from `KUBECONFIG` (or the in-cluster service
//! account), `OPERATOR_*` and `LOG_FORMAT`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use shared::{
    config::{Env, LogFormat, OperatorSettings, Runtime},
    telemetry,
};

/// The Basalt operator.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Reconcile AppDeployments until SIGTERM/SIGINT (the default).
    Run,
    /// Print the AppDeployment CustomResourceDefinition (YAML).
    Crd,
    /// Print the operator's ServiceAccount and least-privilege RBAC (YAML).
    Rbac {
        /// The namespace the operator runs in.
        #[arg(long, default_value = "basalt-system")]
        namespace: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "operator stopped");
            #[allow(clippy::print_stderr)] // the subscriber may not exist yet
            {
                eprintln!("operator: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let printed = match &cli.command {
        Some(Command::Crd) => Some(operator::crd_yaml()?),
        Some(Command::Rbac { namespace }) => Some(operator::rbac_yaml(namespace)?),
        _ => None,
    };
    if let Some(yaml) = printed {
        #[allow(clippy::print_stdout)] // a CLI printing its output
        {
            print!("{yaml}");
        }
        return Ok(());
    }
    let env = Env::from_process(Runtime::Host).context("invalid configuration")?;
    let settings = OperatorSettings::from_env(&env).context("invalid configuration")?;
    telemetry::init(LogFormat::from_env(&env).context("invalid configuration")?);
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (KUBECONFIG or the in-cluster account)")?;
    let identity = std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".to_owned());
    operator::run(
        client,
        &settings,
        &identity,
        shared::signal::terminate_or_interrupt(),
    )
    .await?;
    tracing::info!("stopped");
    Ok(())
}
