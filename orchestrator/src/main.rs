use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use console::style;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

use cde::api::connectors::Connector;
use cde::client::Client;
use cde::model::{
    LimitsOverride, Pipeline, PipelineRun, PipelineStatus, Registration, Run, RunFilter, RunInputs,
    RunRequest, RunStatus,
};
use cde::settings::Settings;
use cde::{Cde, Config, Error, Result};
use container_api::LogLine;

/// Runs data connectors packaged as container images.
#[derive(Parser)]
#[command(name = "cde", version)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build, register and run the sample Python connector.
    Demo,
    /// Serve the management API, execute queued runs and adopt runs left by an earlier server.
    Server,
    /// Print the management API's OpenAPI specification.
    Openapi,
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
        /// Seconds before the run is stopped as `timed_out`.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// Memory limit in MiB.
        #[arg(long, value_name = "MIB")]
        memory: Option<u64>,
        /// CPU limit (fractions allowed).
        #[arg(long)]
        cpus: Option<f64>,
        /// Process limit.
        #[arg(long)]
        pids: Option<i64>,
        /// Disk limit in MiB (run directory plus the container's writable layer).
        #[arg(long, value_name = "MIB")]
        disk: Option<u64>,
        /// The network to join: isolated (cde's own), none, or an existing network's name.
        #[arg(long, value_name = "NETWORK")]
        network: Option<cde::model::Network>,
        /// The feed a data service or export reads (JSONL, one object per line).
        #[arg(long, value_name = "FILE.jsonl")]
        input: Option<PathBuf>,
        /// For an export delta: the previous snapshot to compute new/modified/unchanged/deleted against.
        #[arg(long, value_name = "FILE.jsonl")]
        previous: Option<PathBuf>,
    },
    /// Create, inspect and run pipelines.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// List recent runs.
    Runs {
        #[arg(long)]
        status: Option<RunStatus>,
        #[arg(long)]
        connector: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Print a run's log lines.
    Logs {
        run_id: String,
        /// Keep printing new lines until the run ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Cancel a run: a queued one at once, a started one with SIGTERM, then SIGKILL.
    Cancel { run_id: String },
    /// Remove finished runs' directories and logs and dataset versions beyond the
    /// retention limits (`CDE_RETAIN_*`); the server does this every `CDE_GC_INTERVAL_SECS`.
    Gc {
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
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

#[derive(Subcommand)]
enum PipelineCommand {
    /// Create or replace a pipeline from a file (JSON or YAML).
    Create { path: PathBuf },
    /// List pipelines.
    List,
    /// Show a pipeline's definition.
    Show { name: String },
    /// Run a pipeline to its end and show each step (exit status 0 exactly when it succeeded).
    Run { name: String },
    /// List a pipeline's recent runs.
    Runs {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

const POLL: Duration = Duration::from_millis(200);

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match execute(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{} {e}", style("error:").red().bold());
            ExitCode::from(2)
        }
    }
}

/// Where the commands act: this process with its own store and engine, or a `cde server`.
enum Backend {
    Local(Arc<Cde>),
    Remote(Client),
}

impl Backend {
    async fn open(config: Config) -> Result<Self> {
        match config.server.clone() {
            Some(url) => {
                let token = match &config.api_token {
                    Some(token) => token.clone(),
                    None => std::fs::read_to_string(config.api_token_path())
                        .map(|t| t.trim().to_owned())
                        .map_err(|e| {
                            Error::Config(format!(
                                "CDE_SERVER is set but CDE_API_TOKEN is not, and {} cannot be read: {e}",
                                config.api_token_path().display()
                            ))
                        })?,
                };
                Ok(Backend::Remote(Client::new(&url, token)))
            }
            None => Ok(Backend::Local(Arc::new(Cde::open(config).await?))),
        }
    }

    fn local(&self, command: &str) -> Result<&Arc<Cde>> {
        match self {
            Backend::Local(cde) => Ok(cde),
            Backend::Remote(_) => Err(Error::Config(format!(
                "`cde {command}` runs in this process; unset CDE_SERVER"
            ))),
        }
    }

    async fn register(&self, path: &std::path::Path) -> Result<Registration> {
        match self {
            Backend::Local(cde) => cde.register_file(path).await,
            Backend::Remote(client) => client.register(path).await,
        }
    }

    async fn connectors(&self) -> Result<Vec<Connector>> {
        match self {
            Backend::Local(cde) => Ok(cde
                .store
                .connectors()
                .await?
                .into_iter()
                .map(Into::into)
                .collect()),
            Backend::Remote(client) => client.connectors().await,
        }
    }

    async fn connector(&self, code: &str) -> Result<Connector> {
        match self {
            Backend::Local(cde) => Ok(cde.store.connector(code).await?.into()),
            Backend::Remote(client) => client.connector(code).await,
        }
    }

    async fn run(&self, id: &str) -> Result<Run> {
        match self {
            Backend::Local(cde) => cde.store.run(id).await,
            Backend::Remote(client) => client.run(id).await,
        }
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        match self {
            Backend::Local(cde) => cde.store.runs(filter).await,
            Backend::Remote(client) => client.runs(filter).await,
        }
    }

    async fn logs(&self, id: &str, from: i64) -> Result<Vec<(i64, LogLine)>> {
        match self {
            Backend::Local(cde) => cde.store.logs(id, from).await,
            Backend::Remote(client) => client.logs(id, from).await,
        }
    }

    async fn cancel(&self, id: &str) -> Result<Run> {
        match self {
            Backend::Local(cde) => cde.cancel(id).await,
            Backend::Remote(client) => client.cancel(id).await,
        }
    }

    /// Starts a run: executed by this process when local, queued on the server otherwise.
    async fn start(
        &self,
        request: RunRequest,
        inputs: &RunInputs,
    ) -> Result<(Run, Option<JoinHandle<Result<Run>>>)> {
        match self {
            Backend::Local(cde) => {
                let run = cde.start_with(request, inputs).await?;
                let cde = cde.clone();
                let executing = run.clone();
                Ok((
                    run,
                    Some(tokio::spawn(async move { cde.execute(executing).await })),
                ))
            }
            Backend::Remote(client) => Ok((client.submit(&request).await?, None)),
        }
    }
}

async fn execute(cli: Cli) -> Result<ExitCode> {
    if let Command::Openapi = cli.command {
        print!("{}", cde::api::openapi_json());
        return Ok(ExitCode::SUCCESS);
    }
    let backend = Backend::open(Config::from_env()?).await?;
    let json = cli.json;
    match cli.command {
        Command::Openapi => unreachable!("answered above"),
        Command::Server => serve(backend.local("server")?.clone()).await,
        Command::Demo => {
            let cde = backend.local("demo")?;
            cde::demo::build_sample_image()?;
            let root = cde::api_binary::source_root().expect("checked by build_sample_image");
            let manifest = root.join(cde::demo::SAMPLE_CONNECTOR).join("manifest.yaml");
            let registration = cde.register_file(&manifest).await?;
            eprintln!(
                "registered {} version {}",
                registration.code, registration.version
            );
            let request = RunRequest {
                connector: registration.code,
                options: [("NAME".to_owned(), "demo".to_owned())].into(),
                ..Default::default()
            };
            run_and_watch(&backend, request, &RunInputs::default(), json).await
        }
        Command::Connector(ConnectorCommand::Register { path }) => {
            let registration = backend.register(&path).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&registration)?);
            } else {
                let what = if registration.created {
                    "registered"
                } else {
                    "unchanged"
                };
                println!(
                    "{what} {} version {}",
                    registration.code, registration.version
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Connector(ConnectorCommand::List) => {
            let connectors = backend.connectors().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&connectors)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<32} {:>7}  {:<12}  IMAGE", "CODE", "VERSION", "TYPE");
            for connector in connectors {
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
            let connector = backend.connector(&code).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&connector)?);
            } else {
                println!("# version {}", connector.version);
                let yaml = serde_yaml_ng::to_string(&connector.manifest)
                    .map_err(|e| Error::Config(e.to_string()))?;
                print!("{yaml}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            code,
            set,
            timeout,
            memory,
            cpus,
            pids,
            disk,
            network,
            input,
            previous,
        } => {
            let request = RunRequest {
                connector: code,
                options: Settings::parse_pairs(&set)?,
                limits: LimitsOverride {
                    timeout_secs: timeout,
                    memory_mb: memory,
                    cpus,
                    pids,
                    disk_mb: disk,
                },
                network,
            };
            let inputs = RunInputs { input, previous };
            if inputs.input.is_some() || inputs.previous.is_some() {
                backend.local("run --input/--previous")?;
            }
            run_and_watch(&backend, request, &inputs, json).await
        }
        Command::Pipeline(command) => {
            pipeline_command(backend.local("pipeline")?, command, json).await
        }
        Command::Runs {
            status,
            connector,
            limit,
        } => {
            let filter = RunFilter {
                status,
                connector,
                limit: Some(limit),
            };
            let runs = backend.runs(&filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<36}  {:<28}  {:<9}  {:<19}  REASON",
                "RUN", "CONNECTOR", "STATUS", "CREATED"
            );
            for run in runs {
                println!(
                    "{:<36}  {:<28}  {:<9}  {:<19}  {}",
                    run.id,
                    format!("{} v{}", run.connector_code, run.connector_version),
                    run.status,
                    run.created_at.format("%Y-%m-%d %H:%M:%S"),
                    run.reason.unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs { run_id, follow } => {
            let mut next = 0;
            loop {
                let run = backend.run(&run_id).await?;
                next = print_logs(&backend, &run_id, next, json, None).await?;
                if !follow || run.status.is_finished() {
                    return Ok(ExitCode::SUCCESS);
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Command::Gc { dry_run } => {
            let report = backend.local("gc")?.collect_garbage(dry_run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.describe());
            }
            Ok(if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Cancel { run_id } => {
            let run = backend.cancel(&run_id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else if run.status.is_finished() {
                println!("run {} is {}", run.id, run.status);
            } else {
                println!("run {} is being cancelled", run.id);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn pipeline_command(
    cde: &Arc<Cde>,
    command: PipelineCommand,
    json: bool,
) -> Result<ExitCode> {
    match command {
        PipelineCommand::Create { path } => {
            let pipeline = Pipeline::load(&path)?;
            cde.save_pipeline(&pipeline).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&pipeline)?);
            } else {
                println!("saved pipeline {}", pipeline.name);
            }
        }
        PipelineCommand::List => {
            let pipelines = cde.store.pipelines().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&pipelines)?);
            } else {
                println!(
                    "{:<32} {:>7} {:>8} {:>7}  SCHEDULE",
                    "PIPELINE", "SOURCES", "SERVICES", "EXPORTS"
                );
                for p in pipelines {
                    println!(
                        "{:<32} {:>7} {:>8} {:>7}  {}",
                        p.name,
                        p.sources.len(),
                        p.services.len(),
                        p.exports.len(),
                        p.schedule.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        PipelineCommand::Show { name } => {
            let pipeline = cde.store.pipeline(&name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&pipeline)?);
            } else {
                print!(
                    "{}",
                    serde_yaml_ng::to_string(&pipeline)
                        .map_err(|e| Error::Config(e.to_string()))?
                );
            }
        }
        PipelineCommand::Run { name } => {
            let run = cde.begin_pipeline_run(&name, "manual").await?;
            if !json {
                eprintln!("pipeline run {} of {name}", run.id);
            }
            let run = cde.execute_pipeline_run(run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                print_pipeline_run(&run);
            }
            return Ok(if run.status == PipelineStatus::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        PipelineCommand::Runs { name, limit } => {
            let runs = cde.store.pipeline_runs(&name, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                for run in runs {
                    print_pipeline_run(&run);
                    println!();
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_pipeline_run(run: &PipelineRun) {
    println!(
        "pipeline run {} of {}: {}{}",
        run.id,
        run.pipeline,
        run.status.as_str(),
        run.reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    if let Some(version) = run.dataset_version {
        println!("dataset pipeline/{} version {version}", run.pipeline);
    }
    println!(
        "{:>4}  {:<8} {:<30} {:<10} {:>8} {:>8}  RUN",
        "STEP", "KIND", "CONNECTOR", "STATUS", "ROWS IN", "ROWS OUT"
    );
    let count = |rows: Option<i64>| rows.map_or("-".to_owned(), |r| r.to_string());
    for step in &run.steps {
        println!(
            "{:>4}  {:<8} {:<30} {:<10} {:>8} {:>8}  {}",
            step.position,
            step.kind.as_str(),
            step.connector,
            step.status,
            count(step.rows_in),
            count(step.rows_out),
            step.run_id.as_deref().unwrap_or("-")
        );
    }
}

/// Starts a run and prints its log lines as they arrive under a progress line until it
/// ends. Ctrl-C cancels the run (and waits for its outcome).
async fn run_and_watch(
    backend: &Backend,
    request: RunRequest,
    inputs: &RunInputs,
    json: bool,
) -> Result<ExitCode> {
    let (run, executor) = backend.start(request, inputs).await?;
    let progress = (!json && console::Term::stderr().is_term()).then(|| {
        let bar = ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    if !json {
        eprintln!(
            "run {} of {} v{}",
            run.id, run.connector_code, run.connector_version
        );
    }
    let started = Instant::now();
    let mut next = 0;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut cancelling = false;
    let run = loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = &mut ctrl_c, if !cancelling => {
                cancelling = true;
                eprintln!("cancelling run {} …", run.id);
                backend.cancel(&run.id).await?;
            }
        }
        if !json {
            next = print_logs(backend, &run.id, next, false, progress.as_ref()).await?;
        }
        let current = match &executor {
            Some(executor) if !executor.is_finished() => None,
            _ => Some(backend.run(&run.id).await?).filter(|r| r.status.is_finished()),
        };
        if let Some(current) = current {
            break current;
        }
        if let Some(bar) = &progress {
            bar.set_message(format!(
                "{} · {}s",
                run.connector_code,
                started.elapsed().as_secs()
            ));
        }
    };
    let run = match executor {
        Some(executor) => executor.await.map_err(std::io::Error::other)??,
        None => run,
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print_logs(backend, &run.id, next, false, None).await?;
        print_outcome(&run);
    }
    Ok(if run.status == RunStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints log lines from `from` on; returns the next sequence number.
async fn print_logs(
    backend: &Backend,
    run_id: &str,
    from: i64,
    json: bool,
    progress: Option<&ProgressBar>,
) -> Result<i64> {
    let lines = backend.logs(run_id, from).await?;
    let next = lines.last().map_or(from, |(seq, _)| seq + 1);
    let print = || {
        for (_, line) in &lines {
            if json {
                println!(
                    "{}",
                    serde_json::to_string(line).expect("a log line serialises")
                );
            } else {
                println!("{}", format_line(line));
            }
        }
    };
    match progress {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
    Ok(next)
}

fn format_line(line: &LogLine) -> String {
    let level = format!("{:<9}", line.level);
    let level = match line.level.as_str() {
        "error" | "critical" | "alert" | "emergency" => style(level).red(),
        "warning" => style(level).yellow(),
        "success" => style(level).green(),
        "debug" => style(level).dim(),
        "notice" | "report" => style(level).cyan(),
        _ => style(level),
    };
    format!(
        "{} {level} {:<6} {}",
        style(line.at.format("%H:%M:%S%.3f")).dim(),
        line.source.as_str(),
        line.message
    )
}

fn print_outcome(run: &Run) {
    let status = match run.status {
        RunStatus::Succeeded => style(run.status.to_string()).green().bold(),
        RunStatus::Failed | RunStatus::TimedOut => style(run.status.to_string()).red().bold(),
        _ => style(run.status.to_string()).yellow().bold(),
    };
    println!("run       {}", run.id);
    println!(
        "connector {} v{}",
        run.connector_code, run.connector_version
    );
    println!(
        "status    {status} ({})",
        run.reason.as_deref().unwrap_or("-")
    );
    if let Some(rows) = run.output_rows {
        println!("output    {} ({rows} rows)", run.output_path().display());
    }
}

/// `cde server`: the management API, the scheduler, recovery and the sweeper.
async fn serve(cde: Arc<Cde>) -> Result<ExitCode> {
    eprint!("cde server configuration:\n{}", cde.config.describe());
    let token = api_token(&cde.config)?;
    let adopted = cde.recover().await?;
    if adopted > 0 {
        eprintln!("adopted {adopted} run(s) left by an earlier server");
    }
    tokio::spawn(cde.clone().schedule());
    tokio::spawn(cde.clone().sweep_periodically());
    tokio::spawn(cde.clone().adopt_periodically());
    tokio::spawn(cde.clone().run_schedules());
    tokio::spawn(cde.clone().collect_garbage_periodically());
    let listener = tokio::net::TcpListener::bind(&cde.config.listen).await?;
    eprintln!("cde server listening on http://{}", listener.local_addr()?);
    axum::serve(listener, cde::api::router(cde.clone(), token))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    eprintln!("cde server stopped; runs in flight continue and are adopted at the next start");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `CDE_API_TOKEN`, or the token in `<data dir>/api-token`, created on first use.
fn api_token(config: &Config) -> Result<String> {
    if let Some(token) = &config.api_token {
        return Ok(token.clone());
    }
    let path = config.api_token_path();
    match std::fs::read_to_string(&path) {
        Ok(token) => Ok(token.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let token = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            file.write_all(token.as_bytes())?;
            eprintln!("created an API token in {}", path.display());
            Ok(token)
        }
        Err(e) => Err(e.into()),
    }
}
