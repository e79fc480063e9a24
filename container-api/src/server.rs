//! Wiring: state, router, bind/serve and the shutdown sequence.

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::logs::ApiLogs;
use crate::output::OutputFiles;
use crate::summary::Summary;
use crate::{logs, output, ping, ApiError};

#[derive(Clone, Debug)]
pub struct Config {
    pub run_dir: PathBuf,
    pub listen: SocketAddr,
    /// Maximum request body size in bytes.
    pub body_limit: usize,
}

impl Config {
    pub const DEFAULT_LISTEN: &str = "127.0.0.1:80";
    pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024 * 1024;

    pub fn new(run_dir: impl Into<PathBuf>) -> Self {
        Self {
            run_dir: run_dir.into(),
            listen: Self::DEFAULT_LISTEN.parse().expect("valid default address"),
            body_limit: Self::DEFAULT_BODY_LIMIT,
        }
    }
}

/// Shared state of one run's server; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    run_dir: PathBuf,
    body_limit: usize,
    outputs: OutputFiles,
    logs: ApiLogs,
}

impl AppState {
    /// Creates the run dir if needed and opens `logs.jsonl`.
    pub fn open(config: &Config) -> io::Result<Self> {
        std::fs::create_dir_all(&config.run_dir)?;
        Ok(Self(Arc::new(Inner {
            run_dir: config.run_dir.clone(),
            body_limit: config.body_limit,
            outputs: OutputFiles::new(&config.run_dir),
            logs: ApiLogs::open(&config.run_dir)?,
        })))
    }

    pub fn run_dir(&self) -> &Path {
        &self.0.run_dir
    }

    pub(crate) fn outputs(&self) -> &OutputFiles {
        &self.0.outputs
    }

    pub(crate) fn logs(&self) -> &ApiLogs {
        &self.0.logs
    }

    pub async fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for (kind, file) in self.outputs().summaries().await {
            if kind == output::OutputType::Output {
                summary.columns = file.columns.clone();
            }
            summary.files.insert(kind.as_str().to_string(), file);
        }
        summary.logs = self
            .logs()
            .counts()
            .map(|(level, n)| (level.to_string(), n))
            .collect();
        summary
    }

    /// Flushes and fsyncs every file and writes `summary.json`; call once no
    /// request is in flight any more.
    pub async fn finish(&self) -> anyhow::Result<Summary> {
        self.outputs()
            .sync()
            .await
            .context("syncing output files")?;
        self.logs().sync().context("syncing logs.jsonl")?;
        let summary = self.summary().await;
        let run_dir = self.run_dir().to_path_buf();
        let summary =
            tokio::task::spawn_blocking(move || summary.write(&run_dir).map(|()| summary))
                .await?
                .context("writing summary.json")?;
        Ok(summary)
    }
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.0.body_limit;
    Router::new()
        .route("/ping", get(ping::ping))
        .route("/output/{type}", post(output::write_output))
        .route("/logs/{level}", post(logs::write_log))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// A bound, not yet serving, server: lets the caller learn the real address first.
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        let state = AppState::open(&config)
            .with_context(|| format!("opening run dir {}", config.run_dir.display()))?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, lets in-flight requests finish, then
    /// syncs the files and writes `summary.json`.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Summary> {
        axum::serve(self.listener, router(self.state.clone()))
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving")?;
        tracing::info!("shutting down");
        self.state.finish().await
    }
}

/// Binds, prints `container-api listening on <addr>` to stdout (the readiness
/// signal the orchestrator waits for), serves until `shutdown`, writes the summary.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let server = Server::bind(config).await?;
    let addr = server.local_addr()?;
    {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "container-api listening on {addr}")?;
        stdout.flush()?;
    }
    tracing::info!(%addr, "listening");
    server.run(shutdown).await?;
    Ok(())
}
