//! Wiring: state, router, bind/serve and the shutdown sequence.

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Router;
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::classification::{self, Classifications};
use crate::diagnostics::{self, Counters, SignalOutcome};
use crate::input::{self, InputStreams};
use crate::logs::{self, ApiLogs};
use crate::mask::Masker;
use crate::openapi::ApiDoc;
use crate::output::{self, OutputFiles};
use crate::state::{self, RunState};
use crate::storage::{self, Storage};
use crate::summary::Summary;
use crate::{conn, ping, ApiError};

#[derive(Clone, Debug)]
pub struct Config {
    pub run_dir: PathBuf,
    pub listen: SocketAddr,
    /// Maximum request body size in bytes.
    pub body_limit: usize,
    /// Maximum nesting of arrays and objects in a request body.
    pub max_depth: usize,
    /// Secret values masked in the log lines written through the API.
    pub masker: Masker,
    /// Serve input values as typed JSON instead of text (see `README.md`).
    pub typed_values: bool,
    /// Time a client has to send a request's headers, counted from its first byte (or
    /// from the connection's start).
    pub header_timeout: Duration,
    /// How long an idle keep-alive connection is kept open.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Answer every write of output with a 400 (the conformance kit's `bad-request` check).
    pub reject_writes: bool,
}

impl Config {
    pub const DEFAULT_LISTEN: &str = "127.0.0.1:80";
    pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024 * 1024;
    pub const DEFAULT_MAX_DEPTH: usize = 64;
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

    pub fn new(run_dir: impl Into<PathBuf>) -> Self {
        Self {
            run_dir: run_dir.into(),
            listen: Self::DEFAULT_LISTEN.parse().expect("valid default address"),
            body_limit: Self::DEFAULT_BODY_LIMIT,
            max_depth: Self::DEFAULT_MAX_DEPTH,
            masker: Masker::default(),
            typed_values: false,
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            reject_writes: false,
        }
    }
}

/// How long requests still in flight at shutdown may take before the files are
/// closed anyway (the engine kills the run's container a few seconds after the
/// connector's grace period).
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Shared state of one run's server; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: Config,
    outputs: OutputFiles,
    inputs: InputStreams,
    logs: ApiLogs,
    storage: Storage,
    classifications: Classifications,
    state: RunState,
    counters: Counters,
}

impl AppState {
    /// Creates the run dir if needed, opens `logs.jsonl` and reads the classifications.
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        let run_dir = &config.run_dir;
        std::fs::create_dir_all(run_dir.join(storage::WORK_DIR))
            .with_context(|| format!("creating {}", run_dir.display()))?;
        Ok(Self(Arc::new(Inner {
            config: config.clone(),
            outputs: OutputFiles::new(run_dir),
            inputs: InputStreams::new(run_dir),
            logs: ApiLogs::open(run_dir, &config.masker).context("opening logs.jsonl")?,
            storage: Storage::new(run_dir),
            classifications: Classifications::load(run_dir)?,
            state: RunState::new(run_dir),
            counters: Counters::default(),
        })))
    }

    pub fn run_dir(&self) -> &Path {
        &self.0.config.run_dir
    }

    pub(crate) fn config(&self) -> &Config {
        &self.0.config
    }

    pub(crate) fn outputs(&self) -> &OutputFiles {
        &self.0.outputs
    }

    pub(crate) fn inputs(&self) -> &InputStreams {
        &self.0.inputs
    }

    pub(crate) fn logs(&self) -> &ApiLogs {
        &self.0.logs
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.0.storage
    }

    pub(crate) fn classifications(&self) -> &Classifications {
        &self.0.classifications
    }

    pub(crate) fn run_state(&self) -> &RunState {
        &self.0.state
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.0.counters
    }

    /// Notes how the connector ended after a signal, for the summary's diagnostics.
    pub fn signal_outcome(&self, outcome: SignalOutcome) {
        self.counters().set_signal(outcome);
    }

    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for (kind, file) in self.outputs().summaries() {
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
        summary.diagnostics = self.counters().report(self.inputs().reads_after_end());
        summary
    }

    /// Waits for running copies, closes (fsyncs) every output file, syncs the log
    /// and writes `summary.json` if it can. Writes arriving afterwards are refused.
    pub async fn finish(&self) -> anyhow::Result<Summary> {
        self.storage().wait().await;
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            state
                .outputs()
                .close_all()
                .context("syncing output files")?;
            state.logs().sync().context("syncing logs.jsonl")?;
            let summary = state.summary();
            // Advisory only (the orchestrator counts the output itself), and the
            // connector can make it unwritable: a failure must not fail the run.
            if let Err(e) = summary.write(state.run_dir()) {
                eprintln!("cde: summary.json was not written: {e}");
            }
            Ok(summary)
        })
        .await?
    }
}

/// Every documented route; the OpenAPI document is collected from the same list.
pub(crate) fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(output::write_output))
        .routes(routes!(output::close_output))
        .routes(routes!(input::next_item))
        .routes(routes!(input::next_batch))
        .routes(routes!(input::restart_input))
        .routes(routes!(input::count_items))
        .routes(routes!(logs::write_log))
        .routes(routes!(storage::store_internal))
        .routes(routes!(storage::store_to_transport))
        .routes(routes!(storage::pending_processes))
        .routes(routes!(storage::get_process))
        .routes(routes!(classification::csa_classifications))
        .routes(routes!(state::get_state, state::put_state))
        .routes(routes!(ping::ping))
        .routes(routes!(openapi_spec))
}

/// The OpenAPI document of this API
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "misc",
    responses((status = 200, description = "This document.", content_type = "application/json", body = Object))
)]
async fn openapi_spec() -> impl IntoResponse {
    static SPEC: OnceLock<String> = OnceLock::new();
    let spec = SPEC.get_or_init(crate::openapi::openapi_json);
    ([(header::CONTENT_TYPE, "application/json")], spec.as_str())
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.config().body_limit;
    let (router, _) = api_routes().split_for_parts();
    let mut router = router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit));
    if state.config().reject_writes {
        router = router.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            diagnostics::reject_writes,
        ));
    }
    router
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            diagnostics::count_bad_requests,
        ))
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

    /// Serves until `shutdown` resolves, lets in-flight requests finish (for at most
    /// [`DRAIN_LIMIT`]), then closes the files and writes `summary.json`.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Summary> {
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let limits = conn::Limits::of(self.state.config());
        let serve = conn::serve(
            self.listener,
            router(self.state.clone()),
            limits,
            async move {
                shutdown.await;
                let _ = stopping_tx.send(());
            },
        );
        let drain_expired = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(DRAIN_LIMIT).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = serve => {}
            () = drain_expired => tracing::warn!("requests still in flight after {DRAIN_LIMIT:?}; closing anyway"),
        }
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
