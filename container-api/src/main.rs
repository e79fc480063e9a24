use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use container_api::Config;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

/// The Container API server for one connector run.
///
/// In a run it is the sidecar, on 127.0.0.1:80. For development, run it on your
/// machine (`--run-dir DIR --listen 127.0.0.1:PORT`) and start the connector as a
/// plain process with `CONTAINER_API_URL=http://127.0.0.1:PORT` and
/// `CDE_WORK_DIR=DIR/work`.
#[derive(Parser, Debug)]
#[command(version, subcommand_negates_reqs = true)]
struct Args {
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
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the OpenAPI document (as committed in openapi/container-api.json).
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Openapi) = args.command {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(container_api::openapi_json().as_bytes())?;
        return Ok(stdout.flush()?);
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

    container_api::serve(
        Config {
            run_dir: args.run_dir.expect("required by clap"),
            listen: args.listen,
            body_limit: args.body_limit,
            max_depth: args.max_depth,
        },
        shutdown,
    )
    .await
}
