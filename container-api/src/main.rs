use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use container_api::Config;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

/// The Container API server for one connector run.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Directory receiving output/*.jsonl, logs.jsonl and summary.json.
    #[arg(long, value_name = "DIR")]
    run_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = Config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Maximum request body size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Config::DEFAULT_BODY_LIMIT)]
    body_limit: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

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
            run_dir: args.run_dir,
            listen: args.listen,
            body_limit: args.body_limit,
        },
        shutdown,
    )
    .await
}
