//! A run: one execution of a connector version in its pod, from `queued` to a recorded
//! outcome. Everything a run needs to continue lives in the store and on the engine, so
//! any orchestrator process can pick up a run another one started.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use container_api::mask::{Masker, MASK_ENV};
use container_api::{LogLine, LogSource};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::dataset::{self, RowsError, StagedRows};
use crate::delta;
use crate::error::{Error, Result};

use crate::model::{ConnectorType, Ending, Manifest, Run, RunInputs, RunRequest, RunStatus};
use crate::pod::{self, ConnectorSpec, LineSplitter};
use crate::runtime::{Output, Runtime};
use crate::settings::Settings;
use crate::{api_binary, rundir, Cde};

const LOST: &str = "lost: container disappeared";

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
            network: request.network,
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
        let logs = LogPump::start(self, &run);
        let ending = self.start_and_supervise(&mut run, &logs.engine).await;
        self.finish(run, ending, logs).await
    }

    /// Continues a run an earlier process started and this one took over: follows its
    /// container, or starts it when its executor died before it could. A running run
    /// whose container is gone is lost.
    pub async fn resume(&self, mut run: Run) -> Result<Run> {
        let _lease = self.keep_lease(&run.id);
        let runtime = self.runtime().await?;
        let logs = LogPump::start(self, &run);
        let started = match pod::find(runtime, &run.id).await? {
            Some(id) => Some(runtime.has_started(&id).await?),
            None => None,
        };
        let ending = if started.is_none() && run.status == RunStatus::Running {
            Ok(Ending::failed(LOST))
        } else if started == Some(true) {
            if run.status == RunStatus::Starting {
                run.status = RunStatus::Running;
                run.running_at = Some(Utc::now());
                self.store.update_run(&run).await?;
            }
            // The engine's output up to here is in the store; continue after its last line.
            let after = self.store.last_output_at(&run.id).await?;
            self.supervise(&run, after, &logs.engine).await
        } else {
            self.start_and_supervise(&mut run, &logs.engine).await
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

    /// Starts the run's container (creating it unless an earlier executor did) and follows
    /// it to its end.
    async fn start_and_supervise(&self, run: &mut Run, engine: &EngineLines) -> Result<Ending> {
        let container = match self.create_container(run).await? {
            Ok(container) => container,
            Err(ending) => return Ok(ending),
        };
        if self.store.cancel_requested(&run.id).await? {
            return Ok(Ending::cancelled(None));
        }
        self.runtime().await?.start(&container).await?;
        run.status = RunStatus::Running;
        run.running_at = Some(Utc::now());
        self.store.update_run(run).await?;
        self.supervise(run, None, engine).await
    }

    /// The run's container, created now unless it exists already; `Err` with the run's
    /// ending when it cannot have one.
    pub async fn create_container(&self, run: &Run) -> Result<Result<String, Ending>> {
        let runtime = self.runtime().await?;
        if let Some(container) = pod::find(runtime, &run.id).await? {
            return Ok(Ok(container));
        }
        let manifest = self
            .store
            .connector_version(&run.connector_code, run.connector_version)
            .await?
            .manifest;
        if !runtime.image_exists(&manifest.image).await? {
            return Ok(Err(Ending::failed(format!(
                "image not found: {}",
                manifest.image
            ))));
        }
        let api_binary = self
            .api_binary
            .get_or_try_init(|| async { api_binary::ensure(&self.config) })
            .await?;
        let (mut env, option_args) = Settings::delivery(&run.config, manifest.execution_mode);
        let secrets = run.secrets();
        if !secrets.is_empty() {
            // The Container API masks these in everything it writes, then drops the variable.
            env.push(format!("{MASK_ENV}={}", serde_json::to_string(&secrets)?));
        }
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
            network: run
                .network
                .clone()
                .unwrap_or_else(|| manifest.network.clone()),
            runs_network: &self.config.run_network,
            input_values: manifest.input_values,
        };
        Ok(Ok(pod::create(runtime, &spec).await?))
    }

    /// SIGTERM to the connector, SIGKILL after the grace period. The supervisor kills it
    /// itself then, and the engine only if the supervisor could not close the files.
    async fn stop(&self, runtime: &Runtime, container: &str) -> Result<()> {
        let grace = self.config.stop_grace_secs + pod::SUPERVISOR_MARGIN_SECS;
        runtime.stop(container, grace).await
    }

    /// Follows the started container to its exit, enforcing the timeout.
    async fn supervise(
        &self,
        run: &Run,
        output_after: Option<DateTime<Utc>>,
        engine: &EngineLines,
    ) -> Result<Ending> {
        let runtime = self.runtime().await?;
        let Some(container) = pod::find(runtime, &run.id).await? else {
            return Ok(Ending::failed(LOST));
        };
        let following = tokio::spawn(record_output(
            runtime.clone(),
            container.clone(),
            engine.clone(),
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
            Ending::cancelled(exit_code)
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

    /// Records the outcome, removes the pod, copies the last log lines and makes the
    /// validated output of a success the run's datasets.
    async fn finish(&self, mut run: Run, ending: Result<Ending>, logs: LogPump) -> Result<Run> {
        let mut ending = ending.unwrap_or_else(|e| Ending::failed(e.to_string()));
        let removed = match self.runtime().await {
            Ok(runtime) => pod::remove(runtime, &run.id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            tracing::warn!(run = %run.id, "could not remove the pod (the sweeper will): {e}");
        }
        // Counts come from reading the output, never from the connector's summary.
        let mut staged = None;
        if ending.status == RunStatus::Succeeded {
            match self.stage_outputs(&run) {
                Ok(outputs) => {
                    run.output_rows = Some(outputs.output.rows);
                    staged = Some(outputs);
                }
                Err(reason) => {
                    ending = Ending {
                        status: RunStatus::Failed,
                        reason,
                        exit_code: ending.exit_code,
                    }
                }
            }
        } else {
            run.output_rows = count_output(&run);
        }
        run.end(ending);
        if run.status == RunStatus::Succeeded && run.output_rows.unwrap_or(0) == 0 {
            let manifest = self
                .store
                .connector_version(&run.connector_code, run.connector_version)
                .await?
                .manifest;
            if manifest.kind == ConnectorType::DataService {
                let warning = "the data service wrote no rows: the feed it returns is empty, and every product is gone from it";
                logs.engine
                    .push(LogLine::now(LogSource::Cde, "warning", warning, None));
            }
        }
        logs.stop().await?;
        // The work directory is scratch space and may hold what the connector was given.
        let work = Path::new(&run.run_dir).join(container_api::storage::WORK_DIR);
        if let Err(e) = std::fs::remove_dir_all(&work) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(run = %run.id, "removing {}: {e}", work.display());
            }
        }
        if !self.store.update_run(&run).await? {
            return self.store.run(&run.id).await;
        }
        if let Some(outputs) = staged {
            // Only a recorded success makes a dataset; a failed commit fails nothing already done.
            let commits = [
                (
                    dataset::connector_dataset(&run.connector_code),
                    Some(outputs.output),
                ),
                (
                    dataset::connector_feedback_dataset(&run.connector_code),
                    outputs.feedback,
                ),
            ];
            for (name, rows) in commits {
                let Some(rows) = rows else { continue };
                if let Err(e) = self.commit_dataset(&name, Some(&run.id), rows).await {
                    tracing::error!(run = %run.id, "recording the output as dataset {name}: {e}");
                }
            }
        }
        Ok(run)
    }

    /// Validates a successful run's output and feedback into staged dataset files; `Err`
    /// with the reason the run fails instead.
    fn stage_outputs(&self, run: &Run) -> std::result::Result<StagedOutputs, String> {
        let open = |relative: &str| {
            rundir::open(Path::new(&run.run_dir), relative, output_limit(run))
                .map_err(|e| format!("output rejected: {e}"))
        };
        let stage = |name: String, relative: &str, file: Option<std::fs::File>| {
            self.stage_rows(&name, file).map_err(|e| match e {
                RowsError::Invalid { .. } => format!("output rejected: {relative} {e}"),
                RowsError::Io(e) => format!("recording {relative}: {e}"),
            })
        };
        let code = &run.connector_code;
        let output = stage(
            dataset::connector_dataset(code),
            rundir::OUTPUT,
            open(rundir::OUTPUT)?,
        )?;
        let feedback = match open(rundir::FEEDBACK)? {
            Some(file) => Some(stage(
                dataset::connector_feedback_dataset(code),
                rundir::FEEDBACK,
                Some(file),
            )?),
            None => None,
        };
        Ok(StagedOutputs { output, feedback })
    }
}

/// A successful run's validated output and feedback, before they become datasets.
struct StagedOutputs {
    output: StagedRows,
    feedback: Option<StagedRows>,
}

/// The valid rows an unsuccessful run left in its output, if they can be counted.
fn count_output(run: &Run) -> Option<i64> {
    let file = rundir::open(Path::new(&run.run_dir), rundir::OUTPUT, output_limit(run)).ok()??;
    dataset::copy_rows(file, &mut std::io::sink())
        .ok()
        .map(|(rows, _)| rows)
}

/// No output file larger than the run's disk limit is read.
fn output_limit(run: &Run) -> u64 {
    run.limits.disk_bytes()
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
    // The connector runs as whatever user its image says, and reads these (copies of
    // read-only datasets) as that user; the data directory above keeps them private.
    for entry in std::fs::read_dir(input_dir)? {
        crate::private::chmod(&entry?.path(), 0o644)?;
    }
    crate::private::chmod(input_dir, 0o755)?;
    Ok(())
}

/// Passes the connector's STDOUT (`info`) and STDERR (`error`) lines, stamped with the
/// engine's timestamps, to the run's log; lines at or before `after` are skipped.
async fn record_output(
    runtime: Runtime,
    container: String,
    engine: EngineLines,
    after: Option<DateTime<Utc>>,
) -> Result<()> {
    let write = |source: LogSource, at: DateTime<Utc>, message: String| {
        // The store keeps microseconds; compare at that precision.
        let at = at.trunc_subsecs(6);
        if after.is_some_and(|after| at <= after) {
            return;
        }
        let level = if source == LogSource::Stderr {
            "error"
        } else {
            "info"
        };
        engine.push(LogLine {
            at,
            source,
            level: level.to_owned(),
            message,
            context: None,
        });
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
            write(source, last_at, line);
        }
    }
    for (source, splitter) in [(LogSource::Stdout, stdout), (LogSource::Stderr, stderr)] {
        if let Some(line) = splitter.finish() {
            write(source, last_at, line);
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

/// Lines cde itself produced for a run (the engine's STDOUT and STDERR, its own notes),
/// waiting for the [`LogPump`] to store them.
#[derive(Clone, Default)]
pub(crate) struct EngineLines(Arc<Mutex<Vec<LogLine>>>);

impl EngineLines {
    fn push(&self, line: LogLine) {
        self.0.lock().expect("not poisoned").push(line);
    }

    fn take(&self) -> Vec<LogLine> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

/// Stores a run's log lines as they arrive: those the Container API appended to the
/// run's `logs.jsonl` (which the connector can write too, so each is checked and counts
/// as an API line whatever it claims) and those cde got from the engine. Secret option
/// values are masked. The position in the file is kept in the store, never in the run
/// directory.
struct LogPump {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
    engine: EngineLines,
}

const LOG_POLL: Duration = Duration::from_millis(200);
/// The most of `logs.jsonl` read in one round; a longer line is skipped.
const LOG_CHUNK: u64 = 16 << 20;

impl LogPump {
    fn start(cde: &Cde, run: &Run) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let engine = EngineLines::default();
        let mut reader = ApiLogReader {
            run_dir: PathBuf::from(&run.run_dir),
            skipping: false,
            refused: false,
        };
        let store = cde.store.clone();
        let run_id = run.id.clone();
        let masker = Masker::new(run.secrets());
        let lines = engine.clone();
        let task = tokio::spawn(async move {
            let mut offset = store.log_offset(&run_id).await?;
            let mut seq = store.next_log_seq(&run_id).await?;
            loop {
                let last_round = *stopped.borrow();
                let (mut batch, new_offset) = match reader.read(offset) {
                    Ok(read) => read,
                    Err(e) => {
                        let note = format!("the run's logs.jsonl is no longer read: {e}");
                        tracing::warn!(run = %run_id, "{note}");
                        reader.refused = true;
                        (
                            vec![LogLine::now(LogSource::Cde, "warning", note, None)],
                            offset,
                        )
                    }
                };
                batch.extend(lines.take());
                batch.sort_by_key(|line| line.at);
                let batch: Vec<_> = batch.into_iter().map(|l| redact(l, &masker)).collect();
                if !batch.is_empty() || new_offset != offset {
                    store.append_logs(&run_id, seq, &batch, new_offset).await?;
                    seq += batch.len() as i64;
                    offset = new_offset;
                }
                if last_round {
                    return Ok(());
                }
                let _ = tokio::time::timeout(LOG_POLL, stopped.changed()).await;
            }
        });
        Self { stop, task, engine }
    }

    /// Stores what is left and ends.
    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Reads the complete lines of a run's `logs.jsonl` after an offset.
struct ApiLogReader {
    run_dir: PathBuf,
    /// Inside a line too long to keep.
    skipping: bool,
    /// The file could not be opened safely (the connector replaced it); not read again.
    refused: bool,
}

impl ApiLogReader {
    /// The valid API lines after `offset`, and the offset after the last complete line.
    fn read(&mut self, offset: u64) -> Result<(Vec<LogLine>, u64)> {
        use std::io::{Read, Seek};
        if self.refused {
            return Ok((vec![], offset));
        }
        let Some(mut file) = rundir::open(&self.run_dir, container_api::LOG_FILE, u64::MAX)? else {
            return Ok((vec![], offset));
        };
        file.seek(std::io::SeekFrom::Start(offset))?;
        let mut bytes = Vec::new();
        file.take(LOG_CHUNK).read_to_end(&mut bytes)?;
        let mut notes = vec![];
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
            if bytes.len() as u64 == LOG_CHUNK {
                // One line longer than a chunk: skip it to its end.
                self.skipping = true;
                return Ok((vec![], offset + LOG_CHUNK));
            }
            return Ok((vec![], offset));
        };
        let mut complete = &bytes[..end];
        if std::mem::take(&mut self.skipping) {
            let first_end = complete.iter().position(|&b| b == b'\n');
            complete = first_end.map_or(&[][..], |at| &complete[at + 1..]);
            notes.push("a line of logs.jsonl longer than 16 MiB was skipped".to_owned());
        }
        let (mut lines, mut invalid) = (vec![], 0);
        for text in complete.split(|&b| b == b'\n').filter(|t| !t.is_empty()) {
            match api_line(text) {
                Some(line) => lines.push(line),
                None => invalid += 1,
            }
        }
        if invalid > 0 {
            notes.push(format!(
                "{invalid} line(s) in logs.jsonl were not lines of the Container API and were skipped"
            ));
        }
        lines.extend(
            notes
                .into_iter()
                .map(|note| LogLine::now(LogSource::Cde, "warning", note, None)),
        );
        Ok((lines, offset + end as u64 + 1))
    }
}

/// A line of `logs.jsonl` as an API line: whatever source it claims, only the Container
/// API writes that file, and anything else there was written around it.
fn api_line(text: &[u8]) -> Option<LogLine> {
    let mut line: LogLine = serde_json::from_slice(text).ok()?;
    if !container_api::LOG_LEVELS.contains(&line.level.as_str()) {
        return None;
    }
    line.source = LogSource::Api;
    Some(line)
}

/// Masks secret values once more on cde's side: the Container API masked them already,
/// unless the connector wrote around it.
fn redact(mut line: LogLine, masker: &Masker) -> LogLine {
    if let std::borrow::Cow::Owned(masked) = masker.mask(&line.message) {
        line.message = masked;
    }
    if let Some(context) = &mut line.context {
        masker.mask_value(context);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let line = redact(line, &Masker::new(["s3cret".to_owned()]));
        assert_eq!(line.message, "token ******** used");
        assert_eq!(line.context.unwrap()["t"], "********");
    }
}
