use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cde::run::{Run, RunStatus};
use cde::settings::Settings;
use cde::{Cde, Config, Result};

/// Runs data connectors packaged as container images.
#[derive(Parser)]
#[command(name = "cde", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build, register and run the sample Python connector.
    Demo,
    /// Register and inspect connectors.
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// Run a connector and wait for the outcome (exit status 0 exactly when it succeeded).
    Run {
        /// The connector's code.
        code: String,
        /// An option value, NAME=VALUE (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// List recent runs.
    Runs {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Print a run's log lines.
    Logs { run_id: String },
}

#[derive(Subcommand)]
enum ConnectorCommand {
    /// Register a manifest (JSON or YAML); a changed manifest adds a version.
    Register { path: PathBuf },
    /// List registered connectors.
    List,
    /// Show a connector's latest manifest.
    Show { code: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match execute(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn execute(cli: Cli) -> Result<ExitCode> {
    let cde = Cde::open(Config::from_env()?).await?;
    match cli.command {
        Command::Demo => {
            let run = cde::demo::run(&cde).await?;
            print_run(&cde, &run, true).await
        }
        Command::Connector(ConnectorCommand::Register { path }) => {
            let registration = cde.register(&path).await?;
            let what = if registration.created {
                "registered"
            } else {
                "unchanged"
            };
            println!(
                "{what} {} version {}",
                registration.manifest.code, registration.version
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Connector(ConnectorCommand::List) => {
            println!("{:<32} {:>7}  {:<12}  IMAGE", "CODE", "VERSION", "TYPE");
            for connector in cde.store.connectors().await? {
                let m = &connector.manifest;
                let kind = serde_json::to_value(m.kind)?;
                println!(
                    "{:<32} {:>7}  {:<12}  {}",
                    m.code,
                    connector.version,
                    kind.as_str().unwrap_or_default(),
                    m.image
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Connector(ConnectorCommand::Show { code }) => {
            let connector = cde.store.connector(&code).await?;
            println!("# version {}", connector.version);
            print!(
                "{}",
                serde_yaml_ng::to_string(&connector.manifest)
                    .map_err(|e| cde::Error::Config(e.to_string()))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { code, set } => {
            let run = cde.run(&code, Settings::parse_pairs(&set)?).await?;
            print_run(&cde, &run, true).await
        }
        Command::Runs { limit } => {
            println!(
                "{:<36}  {:<28}  {:<9}  {:<20}  REASON",
                "RUN", "CONNECTOR", "STATUS", "CREATED"
            );
            for run in cde.store.runs(limit).await? {
                println!(
                    "{:<36}  {:<28}  {:<9}  {:<20}  {}",
                    run.id,
                    format!("{} v{}", run.connector_code, run.connector_version),
                    run.status,
                    run.created_at.format("%Y-%m-%d %H:%M:%S"),
                    run.reason.unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs { run_id } => {
            print_logs(&cde, &run_id).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn print_logs(cde: &Cde, run_id: &str) -> Result<()> {
    for line in cde.store.logs(run_id).await? {
        println!(
            "{} {:<9} {:<6} {}",
            line.at.format("%H:%M:%S%.3f"),
            line.level,
            line.source.as_str(),
            line.message
        );
    }
    Ok(())
}

async fn print_run(cde: &Cde, run: &Run, with_logs: bool) -> Result<ExitCode> {
    if with_logs {
        print_logs(cde, &run.id).await?;
    }
    println!("run       {}", run.id);
    println!(
        "connector {} v{}",
        run.connector_code, run.connector_version
    );
    println!(
        "status    {} ({})",
        run.status,
        run.reason.as_deref().unwrap_or("-")
    );
    if let Some(rows) = run.output_rows {
        println!("output    {} ({rows} rows)", run.output_path().display());
    }
    Ok(if run.status == RunStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
