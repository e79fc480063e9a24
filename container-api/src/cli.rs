//! The command line of the Container API: `cde container-api ...` in every run, and the
//! `container-api` binary of this crate for the host development loop.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::Config;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

/// The Container API server for one connector run.
///
/// With a command after `--` it supervises the connector: it listens, runs the command
/// with `CONTAINER_API_URL` and `CDE_WORK_DIR` set (unless already set), and exits with
/// its status once the files are closed. This is how every run starts, and it is the
/// local loop for connector authors:
/// `cde container-api --run-dir DIR --listen 127.0.0.1:8080 -- python3 main.py`.
///
/// Without a command it only serves, until SIGTERM, printing
/// `container-api listening on ADDR` on stdout once ready.
#[derive(Parser, Debug)]
#[command(
    version,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Directory holding input/*.jsonl and receiving output/*.jsonl, logs.jsonl,
    /// storage/ and summary.json.
    #[arg(long, value_name = "DIR", required = true)]
    run_dir: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = Config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Maximum request body size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Config::DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Maximum nesting of arrays and objects in a request body.
    #[arg(long, value_name = "LEVELS", default_value_t = Config::DEFAULT_MAX_DEPTH)]
    max_depth: usize,
    /// Serve input values as typed JSON (numbers, booleans, null) instead of text, as a
    /// Productsup site does.
    #[arg(long)]
    typed_values: bool,
    /// Seconds a client has to send a request's headers.
    #[arg(long, value_name = "SECS", default_value_t = Config::DEFAULT_HEADER_TIMEOUT.as_secs())]
    header_timeout: u64,
    /// Seconds an idle keep-alive connection stays open.
    #[arg(long, value_name = "SECS", default_value_t = Config::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout: u64,
    /// Connections served at once; further ones wait until one closes.
    #[arg(long, value_name = "N", default_value_t = Config::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// With a connector command: seconds it has to exit after SIGTERM before it is killed.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    grace: u64,
    /// Answer every write of output with a 400 (used by `cde test`'s `bad-request` check).
    #[arg(long, hide = true)]
    reject_writes: bool,
    /// The connector command to supervise.
    #[arg(last = true, value_name = "COMMAND")]
    connector: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the OpenAPI document (as committed in openapi/container-api.json).
    Openapi,
}

/// Serves (or supervises) as `args` say; the exit status is the connector's, or 0 after
/// serving until a signal.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    if let Some(Command::Openapi) = args.command {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(crate::openapi_json().as_bytes())?;
        stdout.flush()?;
        return Ok(0);
    }
    let config = Config {
        run_dir: args.run_dir.expect("required by clap"),
        listen: args.listen,
        body_limit: args.body_limit,
        max_depth: args.max_depth,
        // Secret values to mask, handed over by the orchestrator; never passed on to the connector.
        masker: crate::Masker::from_env()?,
        typed_values: args.typed_values,
        header_timeout: Duration::from_secs(args.header_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        max_connections: args.max_connections.max(1),
        reject_writes: args.reject_writes,
    };
    if !args.connector.is_empty() {
        // The connector's stdout and stderr pass through, masked; the supervisor adds
        // nothing to them unless the run cannot go on.
        let grace = Duration::from_secs(args.grace);
        return crate::supervisor::run(config, &args.connector, grace).await;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    // Registered before the ready line is printed, so a signal sent right after it
    // is not lost (or fatal).
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    };
    crate::serve(config, shutdown).await?;
    Ok(0)
}
