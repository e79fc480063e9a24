//! A run: one execution of a connector version in its pod, from `queued` to a recorded
//! outcome. Everything a run needs to continue lives in the store and on the engine, so
//! any orchestrator process can pick up a run another one started.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use container_api::{LogLine, LogSource, Summary};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::dataset::{self, RunInputs};
use crate::delta;
use crate::error::{Error, Result};
use crate::limits::{Limits, LimitsOverride};
use crate::manifest::{ConnectorType, Manifest};
use crate::pod::{self, ConnectorSpec, LineSplitter};
use crate::runtime::{Output, Runtime};
use crate::settings::Settings;
use crate::{api_binary, Cde};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Starting,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Queued,
        RunStatus::Starting,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::TimedOut,
    ];
    pub const ACTIVE: [RunStatus; 2] = [RunStatus::Starting, RunStatus::Running];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Starting => "starting",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::TimedOut => "timed_out",
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(
            self,
            RunStatus::Queued | RunStatus::Starting | RunStatus::Running
        )
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown run status {s:?}"))
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    pub id: String,
    pub connector_code: String,
    pub connector_version: i64,
    pub status: RunStatus,
    /// Why the run ended as it did: `exit code 1`, `timed out after 30s`, `image not found: …`.
    pub reason: Option<String>,
    pub exit_code: Option<i64>,
    /// Option values exactly as the connector gets them; holds secrets, never served.
    #[serde(skip)]
    pub config: BTreeMap<String, String>,
    /// Option values with passwords masked.
    pub options: BTreeMap<String, String>,
    pub limits: Limits,
    pub run_dir: String,
    pub output_rows: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub running_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What to run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub connector: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: LimitsOverride,
    /// The network the run joins, instead of its manifest's.
    #[serde(default)]
    pub network: Option<pod::Network>,
}

/// How a run ended.
struct Ending {
    status: RunStatus,
    reason: String,
    exit_code: Option<i64>,
}

impl Ending {
    fn failed(reason: impl Into<String>) -> Self {
        Self {
            status: RunStatus::Failed,
            reason: reason.into(),
            exit_code: None,
        }
    }
}

const LOST: &str = "lost: container disappeared";

impl Run {
    pub fn output_path(&self) -> PathBuf {
        Path::new(&self.run_dir).join("output/output.jsonl")
    }

    fn logs_path(&self) -> PathBuf {
        Path::new(&self.run_dir).join(container_api::LOG_FILE)
    }

    fn end(&mut self, ending: Ending) {
        self.status = ending.status;
        self.reason = Some(ending.reason);
        self.exit_code = ending.exit_code;
        self.finished_at = Some(Utc::now());
    }
}

impl Cde {
    /// Checks the request and records the run as `queued`. Nothing starts yet.
    pub async fn submit(&self, request: RunRequest) -> Result<Run> {
        self.submit_with(request, &RunInputs::default()).await
    }

    /// [`submit`](Self::submit) with the feeds a data service or export reads.
    pub async fn submit_with(&self, request: RunRequest, inputs: &RunInputs) -> Result<Run> {
        let run = self.prepare(request, inputs).await?;
        self.store.insert_run(&run, None).await?;
        self.queue_changed.notify_one();
        Ok(run)
    }

    /// Checks the request and records the run as started by this process, which must
    /// [`execute`](Self::execute) it: no scheduler can take it in between.
    pub async fn start_with(&self, request: RunRequest, inputs: &RunInputs) -> Result<Run> {
        let mut run = self.prepare(request, inputs).await?;
        run.status = RunStatus::Starting;
        run.started_at = Some(Utc::now());
        self.store.insert_run(&run, Some(&self.lease())).await?;
        Ok(run)
    }

    /// A checked request as a queued run, with its run directory and inputs in place.
    async fn prepare(&self, request: RunRequest, inputs: &RunInputs) -> Result<Run> {
        let connector = self.store.connector(&request.connector).await?;
        let manifest = &connector.manifest;
        let settings = Settings::resolve(manifest, request.options)?;
        let limits = self
            .config
            .default_limits()
            .with(&manifest.limits)
            .with(&request.limits);
        limits.validate().map_err(Error::InvalidConfig)?;
        let id = uuid::Uuid::now_v7().to_string();
        let run_dir = self.config.runs_dir().join(&id);
        prepare_run_dir(&run_dir)?;
        pod::record_requested_network(&run_dir, request.network.as_ref())?;
        if let Err(e) = prepare_inputs(manifest, &run_dir.join("input"), inputs) {
            std::fs::remove_dir_all(&run_dir)?;
            return Err(e);
        }
        let run = Run {
            id,
            connector_code: manifest.code.clone(),
            connector_version: connector.version,
            status: RunStatus::Queued,
            reason: None,
            exit_code: None,
            options: settings.masked(manifest),
            config: settings.into_values(),
            limits,
            run_dir: run_dir.canonicalize()?.display().to_string(),
            output_rows: None,
            created_at: Utc::now(),
            started_at: None,
            running_at: None,
            finished_at: None,
        };
        Ok(run)
    }

    /// Executes a run in this process, returning its outcome.
    pub async fn run(&self, request: RunRequest) -> Result<Run> {
        let run = self.start_with(request, &RunInputs::default()).await?;
        self.execute(run).await
    }

    /// Moves a queued run to `starting` for this process; `None` when another took it.
    pub async fn claim(&self, mut run: Run) -> Result<Option<Run>> {
        run.status = RunStatus::Starting;
        run.started_at = Some(Utc::now());
        Ok(self.store.claim(&run, &self.lease()).await?.then_some(run))
    }

    /// Drives a run claimed or started by this process to its end and records the outcome.
    pub async fn execute(&self, mut run: Run) -> Result<Run> {
        let _lease = self.keep_lease(&run.id);
        let manifest = self
            .store
            .connector_version(&run.connector_code, run.connector_version)
            .await?
            .manifest;
        let logs = LogPump::start(self, &run);
        let ending = match self.start_pod(&mut run, &manifest).await {
            Ok(Some(ending)) => Ok(ending),
            Ok(None) => self.supervise(&run, None).await,
            Err(e) => Err(e),
        };
        self.finish(run, ending, logs).await
    }

    /// Continues a run an earlier process started and this one took over.
    pub async fn resume(&self, mut run: Run) -> Result<Run> {
        let _lease = self.keep_lease(&run.id);
        let runtime = self.runtime().await?;
        let logs = LogPump::start(self, &run);
        let started = match pod::find(runtime, &run.id).await? {
            Some(id) => runtime.has_started(&id).await?,
            None => false,
        };
        let ending = if !started {
            Ok(Ending::failed(LOST))
        } else {
            if run.status == RunStatus::Starting {
                run.status = RunStatus::Running;
                run.running_at = Some(Utc::now());
                self.store.update_run(&run).await?;
            }
            // Output up to here is already in the log file; continue after its last line.
            let after = last_output_at(&run.logs_path())?;
            self.supervise(&run, after).await
        };
        self.finish(run, ending, logs).await
    }

    /// Stops a run: a queued one at once, a started one with SIGTERM, then SIGKILL after
    /// the grace period. Works from any process; the run's executor records the outcome.
    pub async fn cancel(&self, id: &str) -> Result<Run> {
        if self.store.cancel_queued(id).await? {
            return self.store.run(id).await;
        }
        if self.store.request_cancel(id).await? {
            let runtime = self.runtime().await?;
            if let Some(container) = pod::find(runtime, id).await? {
                self.stop(runtime, &container).await?;
            }
        }
        self.store.run(id).await
    }

    /// Creates and starts the pod; `Some` when the run ended before the connector started.
    async fn start_pod(&self, run: &mut Run, manifest: &Manifest) -> Result<Option<Ending>> {
        let runtime = self.runtime().await?;
        if !runtime.image_exists(&manifest.image).await? {
            return Ok(Some(Ending::failed(format!(
                "image not found: {}",
                manifest.image
            ))));
        }
        let api_binary = self
            .api_binary
            .get_or_try_init(|| async { api_binary::ensure(&self.config) })
            .await?;
        let (env, option_args) = Settings::delivery(&run.config, manifest.execution_mode);
        let spec = ConnectorSpec {
            instance: self.store.instance(),
            run_id: &run.id,
            connector_code: &manifest.code,
            image: &manifest.image,
            command: std::iter::once(manifest.command.clone())
                .chain(manifest.arguments.iter().cloned())
                .chain(option_args)
                .collect(),
            env,
            limits: run.limits,
            run_dir: Path::new(&run.run_dir),
            api_binary,
            grace_secs: self.config.stop_grace_secs,
            network: pod::network_for_run(Path::new(&run.run_dir), &manifest.network)?,
            runs_network: &self.config.run_network,
            input_values: manifest.input_values,
        };
        let container = pod::create(runtime, &spec).await?;
        if self.store.cancel_requested(&run.id).await? {
            return Ok(Some(Ending {
                status: RunStatus::Cancelled,
                reason: "cancelled".into(),
                exit_code: None,
            }));
        }
        runtime.start(&container).await?;
        run.status = RunStatus::Running;
        run.running_at = Some(Utc::now());
        self.store.update_run(run).await?;
        Ok(None)
    }

    /// SIGTERM to the connector, SIGKILL after the grace period. The supervisor kills it
    /// itself then, and the engine only if the supervisor could not close the files.
    async fn stop(&self, runtime: &Runtime, container: &str) -> Result<()> {
        let grace = self.config.stop_grace_secs + pod::SUPERVISOR_MARGIN_SECS;
        runtime.stop(container, grace).await
    }

    /// Follows the started container to its exit, enforcing the timeout.
    async fn supervise(&self, run: &Run, output_after: Option<DateTime<Utc>>) -> Result<Ending> {
        let runtime = self.runtime().await?;
        let Some(container) = pod::find(runtime, &run.id).await? else {
            return Ok(Ending::failed(LOST));
        };
        let following = tokio::spawn(record_output(
            runtime.clone(),
            container.clone(),
            run.logs_path(),
            output_after,
        ));
        let elapsed = run.running_at.map_or(Duration::ZERO, |at| {
            (Utc::now() - at).to_std().unwrap_or_default()
        });
        let remaining = run.limits.timeout().saturating_sub(elapsed);
        let run_dir = Path::new(&run.run_dir);
        let (exit, timed_out, disk_exceeded) = tokio::select! {
            waited = tokio::time::timeout(remaining, runtime.wait(&container)) => match waited {
                Ok(exit) => (exit, false, false),
                Err(_) => {
                    self.stop(runtime, &container).await?;
                    (runtime.wait(&container).await, true, false)
                }
            },
            _ = crate::disk::watch(runtime, &container, run_dir, run.limits.disk_mb) => {
                self.stop(runtime, &container).await?;
                (runtime.wait(&container).await, false, true)
            }
        };
        let Some(exit) = exit? else {
            return Ok(Ending::failed(LOST));
        };
        match tokio::time::timeout(Duration::from_secs(10), following).await {
            Ok(joined) => joined.map_err(std::io::Error::other)??,
            Err(_) => tracing::warn!(run = %run.id, "container output did not end after its exit"),
        }
        // Only this run removes its container, so one gone by now was removed by someone
        // else (`docker rm -f` kills before it removes, so its exit code alone cannot tell).
        if !runtime.exists(&container).await? {
            return Ok(Ending::failed(LOST));
        }
        let exit_code = Some(exit.code);
        Ok(if timed_out {
            Ending {
                status: RunStatus::TimedOut,
                reason: format!("timed out after {}s", run.limits.timeout_secs),
                exit_code,
            }
        } else if disk_exceeded {
            Ending {
                status: RunStatus::Failed,
                reason: format!("disk limit exceeded ({} MiB)", run.limits.disk_mb),
                exit_code,
            }
        } else if self.store.cancel_requested(&run.id).await? {
            Ending {
                status: RunStatus::Cancelled,
                reason: "cancelled".into(),
                exit_code,
            }
        } else if exit.oom_killed {
            Ending {
                status: RunStatus::Failed,
                reason: format!("out of memory (limit {} MiB)", run.limits.memory_mb),
                exit_code,
            }
        } else if exit.code == 0 {
            Ending {
                status: RunStatus::Succeeded,
                reason: "exit code 0".into(),
                exit_code,
            }
        } else {
            Ending {
                status: RunStatus::Failed,
                reason: format!("exit code {}", exit.code),
                exit_code,
            }
        })
    }

    /// Records the outcome, removes the pod and copies the last log lines.
    async fn finish(&self, mut run: Run, ending: Result<Ending>, logs: LogPump) -> Result<Run> {
        let ending = ending.unwrap_or_else(|e| Ending::failed(e.to_string()));
        let removed = match self.runtime().await {
            Ok(runtime) => pod::remove(runtime, &run.id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            tracing::warn!(run = %run.id, "could not remove the pod (the sweeper will): {e}");
        }
        // The Container API counted the output as it wrote it.
        let output = Summary::read(Path::new(&run.run_dir))
            .ok()
            .map(|summary| summary.files.get("output").cloned().unwrap_or_default());
        run.output_rows = output.as_ref().map(|file| file.rows as i64);
        run.end(ending);
        if run.status == RunStatus::Succeeded && run.output_rows.unwrap_or(0) == 0 {
            let manifest = self
                .store
                .connector_version(&run.connector_code, run.connector_version)
                .await?
                .manifest;
            if manifest.kind == ConnectorType::DataService {
                let warning = "the data service wrote no rows: the feed it returns is empty, and every product is gone from it";
                let file = container_api::logs::open_log_file(&run.logs_path())?;
                container_api::append_log_line(
                    &file,
                    &LogLine::now(LogSource::Cde, "warning", warning, None),
                )?;
            }
        }
        logs.stop().await?;
        if !self.store.update_run(&run).await? {
            return self.store.run(&run.id).await;
        }
        if run.status == RunStatus::Succeeded {
            // Only a recorded success makes a dataset; a failed commit fails nothing already done.
            let name = dataset::connector_dataset(&run.connector_code);
            let known = output.map(|file| (file.rows as i64, file.columns));
            if let Err(e) = self
                .commit_dataset(&name, Some(&run.id), &run.output_path(), known)
                .await
            {
                tracing::error!(run = %run.id, "recording the output as a dataset: {e}");
            }
        }
        Ok(run)
    }
}

/// Creates the run directory. The container runs as whatever user its image says, and
/// the Container API in it writes the output, the log and the summary as that user.
fn prepare_run_dir(run_dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let shared =
        |path: &Path, mode| std::fs::set_permissions(path, PermissionsExt::from_mode(mode));
    for dir in ["input", "output", "work"] {
        std::fs::create_dir_all(run_dir.join(dir))?;
    }
    for dir in [
        run_dir.to_path_buf(),
        run_dir.join("output"),
        run_dir.join("work"),
    ] {
        shared(&dir, 0o777)?;
    }
    let logs = run_dir.join(container_api::LOG_FILE);
    container_api::logs::open_log_file(&logs)?;
    shared(&logs, 0o666)?;
    Ok(())
}

/// Puts the feeds a connector reads into its run's `input/` directory: `input.jsonl` for a
/// data service or export, plus `new`, `modified`, `unchanged` and `deleted` for an export
/// delta. Everything is checked before the run is recorded.
fn prepare_inputs(manifest: &Manifest, input_dir: &Path, inputs: &RunInputs) -> Result<()> {
    let code = &manifest.code;
    let kind = serde_json::to_value(manifest.kind)?;
    let kind = kind.as_str().unwrap_or_default();
    let input = match (&inputs.input, manifest.reads_input()) {
        (Some(_), false) => return Err(Error::InvalidConfig(format!("{code} is a {kind}: it reads no input"))),
        (None, true) => {
            return Err(Error::InvalidConfig(format!(
                "{code} is a {kind} and reads an input feed: give one (cde run --input FILE.jsonl) or run it in a pipeline"
            )))
        }
        (None, false) => return Ok(()),
        (Some(input), true) => input,
    };
    if inputs.previous.is_some() && manifest.kind != ConnectorType::ExportDelta {
        return Err(Error::InvalidConfig(format!(
            "{code} is a {kind}: only an export-delta takes a previous snapshot"
        )));
    }
    let (_, columns) = dataset::scan(input)?;
    if let Some(missing) = manifest
        .required_columns
        .iter()
        .find(|c| !columns.contains(c))
    {
        return Err(Error::InvalidConfig(format!(
            "the input has no column {missing:?}, which {code} requires"
        )));
    }
    let feed = input_dir.join("input.jsonl");
    std::fs::copy(input, &feed)?;
    if manifest.kind == ConnectorType::ExportDelta {
        delta::compute(
            inputs.previous.as_deref(),
            &feed,
            manifest.delta_key(),
            input_dir,
        )
        .map_err(|e| Error::InvalidConfig(format!("computing the delta: {e}")))?;
    }
    Ok(())
}

/// Appends the connector's STDOUT (`info`) and STDERR (`error`) lines to the run's log
/// file, stamped with the engine's timestamps; lines at or before `after` are skipped.
async fn record_output(
    runtime: Runtime,
    container: String,
    logs_path: PathBuf,
    after: Option<DateTime<Utc>>,
) -> Result<()> {
    let file = container_api::logs::open_log_file(&logs_path)?;
    let write = |source: LogSource, at: DateTime<Utc>, message: String| {
        // The log file keeps microseconds; compare at that precision.
        let at = at.trunc_subsecs(6);
        if after.is_some_and(|after| at <= after) {
            return Ok(());
        }
        let level = if source == LogSource::Stderr {
            "error"
        } else {
            "info"
        };
        let line = LogLine {
            at,
            source,
            level: level.to_owned(),
            message,
            context: None,
        };
        container_api::append_log_line(&file, &line)
    };
    let (mut stdout, mut stderr) = (LineSplitter::default(), LineSplitter::default());
    let mut last_at = Utc::now();
    let mut output = Box::pin(runtime.follow(&container, true));
    while let Some(chunk) = output.next().await {
        let (source, splitter, bytes) = match chunk? {
            Output::Stdout(bytes) => (LogSource::Stdout, &mut stdout, bytes),
            Output::Stderr(bytes) => (LogSource::Stderr, &mut stderr, bytes),
        };
        let (at, text) = split_timestamp(&bytes);
        last_at = at.unwrap_or(last_at);
        for line in splitter.push(text) {
            write(source, last_at, line)?;
        }
    }
    for (source, splitter) in [(LogSource::Stdout, stdout), (LogSource::Stderr, stderr)] {
        if let Some(line) = splitter.finish() {
            write(source, last_at, line)?;
        }
    }
    Ok(())
}

/// Splits the engine's `2026-01-02T03:04:05.123456789Z ` prefix off a log frame.
fn split_timestamp(frame: &[u8]) -> (Option<DateTime<Utc>>, &[u8]) {
    let Some(space) = frame.iter().position(|&b| b == b' ') else {
        return (None, frame);
    };
    match std::str::from_utf8(&frame[..space])
        .ok()
        .and_then(|ts| DateTime::parse_from_rfc3339(ts).ok())
    {
        Some(at) => (Some(at.with_timezone(&Utc)), &frame[space + 1..]),
        None => (None, frame),
    }
}

/// The time of the last STDOUT/STDERR line in a run's log file.
fn last_output_at(logs_path: &Path) -> Result<Option<DateTime<Utc>>> {
    let text = match std::fs::read_to_string(logs_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<LogLine>(line).ok())
        .filter(|line| line.source != LogSource::Api)
        .map(|line| line.at)
        .max())
}

/// Copies a run's log file into the store as lines arrive, masking secret option values.
struct LogPump {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

const LOG_POLL: Duration = Duration::from_millis(200);

impl LogPump {
    fn start(cde: &Cde, run: &Run) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let store = cde.store.clone();
        let run_id = run.id.clone();
        let path = run.logs_path();
        let secrets: Vec<String> = run
            .config
            .iter()
            .filter(|(name, value)| run.options.get(*name) != Some(value) && !value.is_empty())
            .map(|(_, value)| value.clone())
            .collect();
        let task = tokio::spawn(async move {
            let mut offset = store.log_offset(&run_id).await?;
            let mut seq = store.next_log_seq(&run_id).await?;
            loop {
                let last_round = *stopped.borrow();
                (offset, seq) =
                    copy_new_lines(&store, &run_id, &path, (offset, seq), &secrets).await?;
                if last_round {
                    return Ok(());
                }
                let _ = tokio::time::timeout(LOG_POLL, stopped.changed()).await;
            }
        });
        Self { stop, task }
    }

    /// Copies what is left and ends.
    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Copies the complete lines after `offset`, numbered from `seq`; returns the new position.
async fn copy_new_lines(
    store: &crate::store::Store,
    run_id: &str,
    path: &Path,
    (offset, seq): (u64, i64),
    secrets: &[String],
) -> Result<(u64, i64)> {
    use std::io::{Read, Seek};
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((offset, seq)),
        Err(e) => return Err(e.into()),
    };
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
        return Ok((offset, seq));
    };
    let lines: Vec<LogLine> = bytes[..end]
        .split(|&b| b == b'\n')
        .filter_map(|line| match serde_json::from_slice::<LogLine>(line) {
            Ok(line) => Some(redact(line, secrets)),
            Err(e) => {
                tracing::warn!(run = %run_id, "skipping an unreadable log line: {e}");
                None
            }
        })
        .collect();
    let new_offset = offset + end as u64 + 1;
    store.append_logs(run_id, seq, &lines, new_offset).await?;
    Ok((new_offset, seq + lines.len() as i64))
}

fn redact(mut line: LogLine, secrets: &[String]) -> LogLine {
    for secret in secrets {
        if line.message.contains(secret.as_str()) {
            line.message = line.message.replace(secret.as_str(), crate::settings::MASK);
        }
        if let Some(context) = &line.context {
            let text = context.to_string();
            if text.contains(secret.as_str()) {
                line.context =
                    serde_json::from_str(&text.replace(secret.as_str(), crate::settings::MASK))
                        .ok();
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>().unwrap(), status);
        }
        assert_eq!(
            serde_json::to_string(&RunStatus::TimedOut).unwrap(),
            "\"timed_out\""
        );
    }

    #[test]
    fn engine_timestamps_are_split_off() {
        let (at, text) = split_timestamp(b"2026-11-23T03:29:27.301234567Z hello world\n");
        assert_eq!(
            at.unwrap().to_rfc3339(),
            "2026-11-23T03:29:27.301234567+00:00"
        );
        assert_eq!(text, b"hello world\n");
        assert_eq!(split_timestamp(b"no stamp here").1, b"no stamp here");
    }

    #[test]
    fn secrets_are_masked_in_messages_and_context() {
        let line = LogLine::now(
            LogSource::Api,
            "info",
            "token s3cret used",
            Some(serde_json::json!({"t": "s3cret"})),
        );
        let line = redact(line, &["s3cret".into()]);
        assert_eq!(line.message, "token ******** used");
        assert_eq!(line.context.unwrap()["t"], "********");
    }
}
