//! A run: one execution of a connector version in its pod, from start to recorded outcome.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use container_api::{LogLine, LogSource, Summary};
use futures_util::StreamExt;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::pod::{self, ConnectorSpec, LineSplitter};
use crate::runtime::{Output, Runtime};
use crate::settings::Settings;
use crate::{sidecar, Cde};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Starting,
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Starting => "starting",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "queued" => RunStatus::Queued,
            "starting" => RunStatus::Starting,
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            other => return Err(format!("unknown run status {other:?}")),
        })
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: String,
    pub connector_code: String,
    pub connector_version: i64,
    pub status: RunStatus,
    /// Why the run ended as it did, for humans: `exit code 1`, `image not found: …`.
    pub reason: Option<String>,
    pub exit_code: Option<i64>,
    /// The option values as JSON.
    pub config: String,
    pub run_dir: String,
    pub output_rows: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Run {
    pub fn output_path(&self) -> PathBuf {
        Path::new(&self.run_dir).join("output/output.jsonl")
    }

    fn logs_path(&self) -> PathBuf {
        Path::new(&self.run_dir).join("logs.jsonl")
    }

    fn finish(&mut self, status: RunStatus, reason: String) {
        self.status = status;
        self.reason = Some(reason);
        self.finished_at = Some(Utc::now());
    }
}

impl Cde {
    /// Runs the latest version of connector `code` to the end and records the outcome.
    /// Bad configuration is an error before anything starts; everything that goes wrong
    /// after that is recorded as a failed run.
    pub async fn run(&self, code: &str, given: BTreeMap<String, String>) -> Result<Run> {
        let connector = self.store.connector(code).await?;
        let manifest = &connector.manifest;
        let settings = Settings::resolve(manifest, given)?;
        let id = uuid::Uuid::now_v7().to_string();
        let run_dir = self.config.runs_dir().join(&id);
        for dir in ["input", "output"] {
            std::fs::create_dir_all(run_dir.join(dir))?;
        }
        let mut run = Run {
            id,
            connector_code: manifest.code.clone(),
            connector_version: connector.version,
            status: RunStatus::Queued,
            reason: None,
            exit_code: None,
            config: settings.to_json(),
            run_dir: run_dir.canonicalize()?.display().to_string(),
            output_rows: None,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
        };
        self.store.insert_run(&run).await?;

        let (env, option_args) = settings.delivery(manifest.execution_mode);
        let spec = ConnectorSpec {
            connector_code: &manifest.code,
            image: &manifest.image,
            command: std::iter::once(manifest.command.clone())
                .chain(manifest.arguments.iter().cloned())
                .chain(option_args)
                .collect(),
            env,
        };
        let outcome = self.execute(&mut run, &spec).await;
        let runtime = self.runtime().await;
        let removed = match runtime {
            Ok(runtime) => pod::remove(runtime, &run.id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = outcome.and(removed) {
            run.exit_code = None;
            run.finish(RunStatus::Failed, e.to_string());
        }
        self.import_logs(&run).await?;
        self.store.update_run(&run).await?;
        Ok(run)
    }

    async fn execute(&self, run: &mut Run, spec: &ConnectorSpec<'_>) -> Result<()> {
        let runtime = self.runtime().await?;
        if !runtime.image_exists(spec.image).await? {
            run.finish(
                RunStatus::Failed,
                format!("image not found: {}", spec.image),
            );
            return Ok(());
        }
        let sidecar_image = sidecar::ensure_image(&self.config, runtime).await?;
        run.status = RunStatus::Starting;
        run.started_at = Some(Utc::now());
        self.store.update_run(run).await?;

        let run_dir = Path::new(&run.run_dir);
        let sidecar_body =
            pod::sidecar_body(&run.id, spec.connector_code, &sidecar_image, run_dir)?;
        let ready_timeout = Duration::from_secs(self.config.sidecar_ready_timeout_secs);
        let sidecar = pod::start_sidecar(runtime, &run.id, sidecar_body, ready_timeout).await?;
        let connector = runtime
            .create(
                &format!("cde-{}-connector", run.id),
                pod::connector_body(&run.id, &sidecar, spec),
            )
            .await?;
        runtime.start(&connector).await?;
        // Following a started container replays its output from the beginning.
        let following = tokio::spawn(record_output(
            runtime.clone(),
            connector.clone(),
            run.logs_path(),
        ));
        run.status = RunStatus::Running;
        self.store.update_run(run).await?;

        let exit = runtime.wait(&connector).await?;
        following.await.map_err(std::io::Error::other)??;
        // Stopping the sidecar makes it flush the output and write summary.json.
        runtime.stop(&sidecar, self.config.stop_grace_secs).await?;
        runtime.wait(&sidecar).await?;

        run.exit_code = Some(exit.code);
        run.output_rows =
            read_summary(run_dir)?.map(|s| s.files.get("output").map_or(0, |f| f.rows as i64));
        if exit.code == 0 {
            run.finish(RunStatus::Succeeded, "exit code 0".into());
        } else if exit.oom_killed {
            run.finish(RunStatus::Failed, "out of memory".into());
        } else {
            run.finish(RunStatus::Failed, format!("exit code {}", exit.code));
        }
        Ok(())
    }

    /// Copies the run's log file into the store, in file order.
    async fn import_logs(&self, run: &Run) -> Result<()> {
        let file = match std::fs::File::open(run.logs_path()) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            match serde_json::from_str::<LogLine>(&line) {
                Ok(parsed) => lines.push(parsed),
                Err(e) => tracing::warn!(run = %run.id, "skipping unreadable log line: {e}"),
            }
        }
        self.store.append_logs(&run.id, 0, &lines).await
    }
}

/// Appends the connector's STDOUT (`info`) and STDERR (`error`) lines to the run's log file.
async fn record_output(runtime: Runtime, container: String, logs_path: PathBuf) -> Result<()> {
    let file = container_api::logs::open_log_file(&logs_path)?;
    let write = |source: LogSource, message: String| {
        let level = if source == LogSource::Stderr {
            "error"
        } else {
            "info"
        };
        container_api::append_log_line(&file, &LogLine::now(source, level, message, None))
    };
    let (mut stdout, mut stderr) = (LineSplitter::default(), LineSplitter::default());
    let mut output = Box::pin(runtime.follow(&container));
    while let Some(chunk) = output.next().await {
        let (source, splitter, bytes) = match chunk? {
            Output::Stdout(bytes) => (LogSource::Stdout, &mut stdout, bytes),
            Output::Stderr(bytes) => (LogSource::Stderr, &mut stderr, bytes),
        };
        for line in splitter.push(&bytes) {
            write(source, line)?;
        }
    }
    for (source, splitter) in [(LogSource::Stdout, stdout), (LogSource::Stderr, stderr)] {
        if let Some(line) = splitter.finish() {
            write(source, line)?;
        }
    }
    Ok(())
}

fn read_summary(run_dir: &Path) -> Result<Option<Summary>> {
    match Summary::read(run_dir) {
        Ok(summary) => Ok(Some(summary)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io(e)),
    }
}
