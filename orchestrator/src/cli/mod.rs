//! The `cde` command line: one module per command, each with its own `run`, acting through
//! a [`backend::Backend`] (this process, or a `cde server` when `CDE_SERVER` is set) and
//! printing through [`output::Output`].

mod backend;
mod conformance;
mod connector;
mod demo;
mod dev;
mod gc;
mod openapi;
mod output;
mod pipeline;
mod remote;
mod run;
mod server;
mod user;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use console::style;

use crate::{Cde, Config, Result};
use backend::{Backend, Embedded};
use output::Output;

/// Runs data connectors packaged as container images.
#[derive(Parser)]
#[command(name = "cde", version)]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Register and run a sample connector: the Python sample, built here, when its sources
    /// are at hand, else one built into cde that needs no image build.
    Demo(demo::Demo),
    /// Serve the management API, execute queued runs and adopt runs left by an earlier server.
    Server,
    /// Print the management API's OpenAPI specification (or a manifest's JSON Schema).
    Openapi(openapi::Openapi),
    /// Register and inspect connectors.
    #[command(subcommand)]
    Connector(connector::Cmd),
    /// Run a connector and wait for the outcome (exit status 0 exactly when it succeeded).
    Run(run::Run),
    /// The author's loop: build a connector folder's image, run it, stream its logs, show
    /// its output as a table; `--watch` does it again on every edit.
    Dev(dev::Dev),
    /// The conformance kit: check a connector (a folder, a manifest or a registered code)
    /// against the contract, one line per check; exit status 1 when any check fails.
    Test(conformance::Test),
    /// Create, inspect and run pipelines.
    #[command(subcommand)]
    Pipeline(pipeline::Cmd),
    /// List recent runs.
    Runs(run::Runs),
    /// Print a run's log lines.
    Logs(run::Logs),
    /// Cancel a run: a queued one at once, a started one with SIGTERM, then SIGKILL.
    Cancel(run::Cancel),
    /// Add, list and remove the console's users (besides the API token's holder).
    #[command(subcommand)]
    User(user::Cmd),
    /// Remove finished runs' directories and logs and dataset versions beyond the
    /// retention limits (`CDE_RETAIN_*`); the server does this every `CDE_GC_INTERVAL_SECS`.
    Gc(gc::Gc),
    /// Serve one run's Container API and supervise its connector; the entrypoint of every
    /// run's container, and a local loop for connector authors:
    /// `cde container-api --run-dir DIR --listen 127.0.0.1:8080 -- python3 main.py`.
    ContainerApi(container_api::cli::Args),
    /// The engine of declarative HTTP connectors; it runs inside a run's container.
    #[command(hide = true)]
    HttpConnector {
        /// The definition cde prepared for the run.
        #[arg(long)]
        definition: Option<std::path::PathBuf>,
        /// Exit 0 at once (the registration's health check).
        #[arg(long)]
        health_check: bool,
        /// Make the first request only and print what it found (`cde connector check`).
        #[arg(long)]
        check: bool,
    },
    /// The connector of `cde demo --connector builtin`; it runs inside a run's container.
    #[command(hide = true)]
    DemoConnector {
        /// Exit 0 at once (the registration's health check).
        #[arg(long)]
        health_check: bool,
    },
}

/// The `cde` executable: parses the command line, runs the command on a multi-threaded
/// runtime and reports an error as one line with status 2.
///
/// The runtime is started here rather than in `main.rs`, so that the whole command tree is
/// compiled once, with this crate, instead of again in the binary's single codegen pass.
pub fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!(
                "{} starting the async runtime: {e}",
                style("error:").red().bold()
            );
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(Cli::parse())) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{} {e}", style("error:").red().bold());
            ExitCode::from(2)
        }
    }
}

/// Runs the command; the exit status is 0 on success, 1 when a run, pipeline run or
/// garbage collection did not succeed. Errors are for the caller to report (status 2).
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let out = Output { json: cli.json };
    match cli.command {
        // Inside a run's container: no configuration, data directory or logging of cde's.
        Cmd::ContainerApi(args) => return container_api(args).await,
        Cmd::DemoConnector { health_check } => {
            return match health_check {
                true => Ok(ExitCode::SUCCESS),
                false => crate::demo::connector::run().await.map(ExitCode::from),
            }
        }
        Cmd::HttpConnector {
            definition,
            health_check,
            check,
        } => {
            let status = crate::http::run_engine(definition.as_deref(), health_check, check).await;
            return Ok(ExitCode::from(status));
        }
        Cmd::Openapi(cmd) => return cmd.run(),
        _ => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::from_env()?;
    match backend::remote(&config)? {
        Some(remote) => cli.command.run(&remote, out).await,
        None => {
            let embedded = Embedded(Arc::new(Cde::open(config).await?));
            embedded.preflight(&cli.command).await?;
            cli.command.run(&embedded, out).await
        }
    }
}

impl Cmd {
    async fn run(self, backend: &impl Backend, out: Output) -> Result<ExitCode> {
        match self {
            Cmd::Openapi(cmd) => cmd.run(),
            Cmd::Server => server::run(backend).await,
            Cmd::Demo(cmd) => cmd.run(backend, out).await,
            Cmd::Connector(cmd) => cmd.run(backend, out).await,
            Cmd::Run(cmd) => cmd.run(backend, out).await,
            Cmd::Dev(cmd) => cmd.run(backend, out).await,
            Cmd::Test(cmd) => cmd.run(backend, out).await,
            Cmd::Pipeline(cmd) => cmd.run(backend, out).await,
            Cmd::Runs(cmd) => cmd.run(backend, out).await,
            Cmd::Logs(cmd) => cmd.run(backend, out).await,
            Cmd::Cancel(cmd) => cmd.run(backend, out).await,
            Cmd::Gc(cmd) => cmd.run(backend, out).await,
            Cmd::User(cmd) => cmd.run(backend, out).await,
            Cmd::ContainerApi(_) | Cmd::DemoConnector { .. } | Cmd::HttpConnector { .. } => {
                unreachable!("handled in cli::run")
            }
        }
    }
}

/// `cde container-api`: its errors are reported as the `container-api` binary reports
/// them, with status 1, which a run's outcome tells apart from cde's own (2).
async fn container_api(args: container_api::cli::Args) -> Result<ExitCode> {
    match container_api::cli::run(args).await {
        Ok(status) => Ok(ExitCode::from(u8::try_from(status).unwrap_or(1))),
        Err(e) => {
            eprintln!("Error: {e:?}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// 0 exactly when `succeeded`.
fn status(succeeded: bool) -> ExitCode {
    if succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
