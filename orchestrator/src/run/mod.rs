//! A run: one execution of a connector version in its pod, from `queued` to a recorded
//! outcome. Everything a run needs to continue lives in the store and on the engine, so
//! any orchestrator process can pick up a run another one started.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use container_api::mask::MASK_ENV;
use container_api::{LogLine, LogSource};

use crate::dataset::{self, RowsError, StagedRows};
use crate::error::{Error, Result};

use crate::engine::container::{self as pod, ConnectorSpec};
use crate::engine::{Engine, Exit};
use crate::model::{ConnectorType, Ending, Run, RunInputs, RunRequest, RunStatus};
use crate::options::OptionValues;
use crate::{rundir, state, Cde};

mod disk;
mod inputs;
mod logs;
pub mod outcome;
mod output;
mod retry;

use inputs::{prepare_inputs, prepare_run_dir};
use logs::{record_output, EngineLines, LogPump};
use outcome::{Observed, Resumption, StopCause, LOST};

/// The environment variable that tells a connector which attempt of its run it is.
pub const ATTEMPT_ENV: &str = "CDE_ATTEMPT";

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
        let values = OptionValues::resolve(manifest, request.options)?;
        let state_key = request
            .state_key
            .unwrap_or_else(|| state::connector_key(manifest, values.as_map()));
        let previous_state = self.store.state(&state_key).await?;
        let limits = self
            .config
            .limits_for(manifest, &request.limits)
            .map_err(Error::InvalidConfig)?;
        let retry = request.retry.unwrap_or(manifest.retry);
        retry.validate().map_err(Error::InvalidConfig)?;
        let id = uuid::Uuid::now_v7().to_string();
        let run_dir = self.config.runs_dir().join(&id);
        prepare_run_dir(&run_dir)?;
        let prepared = match &previous_state {
            Some(previous) => state::prepare(&run_dir, previous),
            None => Ok(()),
        }
        .and_then(|()| crate::http::prepare(manifest, values.as_map(), &run_dir))
        .and_then(|()| prepare_inputs(manifest, &run_dir.join("input"), inputs));
        let delta = match prepared {
            Ok(delta) => delta,
            Err(e) => {
                std::fs::remove_dir_all(&run_dir).map_err(Error::file("removing", &run_dir))?;
                return Err(e);
            }
        };
        let run = Run {
            id,
            connector_code: manifest.code.clone(),
            connector_version: connector.version,
            delta,
            status: RunStatus::Queued,
            reason: None,
            exit_code: None,
            options: values.masked(manifest),
            unmasked_options: values.into_values(),
            limits,
            run_dir: run_dir
                .canonicalize()
                .map_err(Error::file("resolving", &run_dir))?
                .display()
                .to_string(),
            output_rows: None,
            network: request.network,
            state_key: Some(state_key),
            attempt: 1,
            retry,
            retry_of: None,
            next_attempt: None,
            not_before: None,
            created_at: Utc::now(),
            started_at: None,
            running_at: None,
            finished_at: None,
        };
        Ok(run)
    }

    /// Executes a run in this process, with its retries, returning the last attempt.
    pub async fn run(&self, request: RunRequest) -> Result<Run> {
        let run = self.start_with(request, &RunInputs::default()).await?;
        self.execute_with_retries(run).await
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
        let ending = self.start_and_supervise(&mut run, &logs.lines).await;
        self.finish(run, ending, logs).await
    }

    /// Continues a run an earlier process started and this one took over: follows its
    /// container, or starts it when its executor died before it could. A running run
    /// whose container is gone is lost.
    pub async fn resume(&self, mut run: Run) -> Result<Run> {
        let _lease = self.keep_lease(&run.id);
        let engine = self.engine().await?;
        let logs = LogPump::start(self, &run);
        let started = match pod::find(engine, &run.id).await? {
            Some(id) => Some(engine.has_started(&id).await?),
            None => None,
        };
        let ending = match outcome::resumption(run.status, started) {
            Resumption::Lost => Ok(Ending::failed(LOST)),
            Resumption::Follow => {
                if run.status == RunStatus::Starting {
                    run.status = RunStatus::Running;
                    run.running_at = Some(Utc::now());
                    self.store.update_run(&run).await?;
                }
                // The engine's output up to here is in the store; continue after its last line.
                let after = self.store.last_output_at(&run.id).await?;
                self.supervise(&run, after, &logs.lines).await
            }
            Resumption::Start => self.start_and_supervise(&mut run, &logs.lines).await,
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
            let engine = self.engine().await?;
            if let Some(container) = pod::find(engine, id).await? {
                self.stop(engine, &container).await?;
            }
        }
        self.store.run(id).await
    }

    /// Starts the run's container (creating it unless an earlier executor did) and follows
    /// it to its end.
    async fn start_and_supervise(&self, run: &mut Run, lines: &EngineLines) -> Result<Ending> {
        let container = match self.create_container(run).await? {
            Ok(container) => container,
            Err(ending) => return Ok(ending),
        };
        if self.store.cancel_requested(&run.id).await? {
            return Ok(Ending::cancelled(None));
        }
        self.engine().await?.start(&container).await?;
        run.status = RunStatus::Running;
        run.running_at = Some(Utc::now());
        self.store.update_run(run).await?;
        self.supervise(run, None, lines).await
    }

    /// The run's container, created now unless it exists already; `Err` with the run's
    /// ending when it cannot have one.
    pub async fn create_container(&self, run: &Run) -> Result<Result<String, Ending>> {
        let engine = self.engine().await?;
        if let Some(container) = pod::find(engine, &run.id).await? {
            return Ok(Ok(container));
        }
        let manifest = self
            .store
            .connector_version(&run.connector_code, run.connector_version)
            .await?
            .manifest;
        if !engine.image_exists(&manifest.image).await? {
            return Ok(Err(Ending::failed(format!(
                "image not found: {}",
                manifest.image
            ))));
        }
        let executable = self.executable().await?;
        let (mut env, option_args) =
            OptionValues::delivery(&run.unmasked_options, manifest.execution_mode);
        // Which attempt this is, 1 for the first: a connector may log it, or behave by it.
        env.push(format!("{ATTEMPT_ENV}={}", run.attempt));
        let secrets = run.secrets();
        if !secrets.is_empty() {
            // The Container API masks these in everything it writes, then drops the variable.
            let secrets = serde_json::to_string(&secrets).map_err(Error::json(format!(
                "listing the secrets of run {}",
                run.id
            )))?;
            env.push(format!("{MASK_ENV}={secrets}"));
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
            executable,
            grace_secs: self.config.stop_grace_secs,
            network: run
                .network
                .clone()
                .unwrap_or_else(|| manifest.network.clone()),
            runs_network: &self.config.run_network,
            input_values: manifest.input_values,
            reject_writes: self.config.reject_writes,
        };
        Ok(Ok(pod::create(engine, &spec).await?))
    }

    /// SIGTERM to the connector, SIGKILL after the grace period. The supervisor kills it
    /// itself then, and the engine only if the supervisor could not close the files.
    async fn stop(&self, engine: &dyn Engine, container: &str) -> Result<()> {
        engine.stop(container, self.stop_grace()).await
    }

    fn stop_grace(&self) -> u64 {
        self.config.stop_grace_secs + pod::SUPERVISOR_MARGIN_SECS
    }

    /// Follows the started container to its exit, enforcing the timeout.
    async fn supervise(
        &self,
        run: &Run,
        output_after: Option<DateTime<Utc>>,
        lines: &EngineLines,
    ) -> Result<Ending> {
        let engine = self.engine().await?;
        let Some(container) = pod::find(engine, &run.id).await? else {
            return Ok(Ending::failed(LOST));
        };
        let following = tokio::spawn(record_output(
            engine.follow(&container, true),
            lines.clone(),
            output_after,
        ));
        let elapsed = run.running_at.map_or(Duration::ZERO, |at| {
            (Utc::now() - at).to_std().unwrap_or_default()
        });
        let remaining = run.limits.timeout().saturating_sub(elapsed);
        let (exit, stopped_by_cde) = await_exit(
            engine,
            &container,
            remaining,
            Path::new(&run.run_dir),
            run.limits.disk_mb,
            self.stop_grace(),
        )
        .await?;
        if exit.is_some() {
            match tokio::time::timeout(Duration::from_secs(10), following).await {
                Ok(joined) => joined.map_err(|e| {
                    Error::Other(format!("following the output of run {}: {e}", run.id))
                })??,
                Err(_) => {
                    tracing::warn!(run = %run.id, "container output did not end after its exit")
                }
            }
        }
        let observed = Observed {
            exit,
            still_exists: exit.is_some() && engine.exists(&container).await?,
            stopped_by_cde,
            cancel_requested: self.store.cancel_requested(&run.id).await?,
        };
        Ok(outcome::ending(observed, &run.limits))
    }

    /// Records the outcome, removes the pod, copies the last log lines and makes the
    /// validated output of a success the run's datasets.
    async fn finish(&self, mut run: Run, ending: Result<Ending>, logs: LogPump) -> Result<Run> {
        let mut ending = ending.unwrap_or_else(|e| Ending::failed(e.to_string()));
        let removed = match self.engine().await {
            Ok(engine) => pod::remove(engine, &run.id).await,
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
        let retried = outcome::retries(&ending, run.attempt, &run.retry);
        run.end(ending);
        let mut next_attempt = None;
        if retried {
            // Named before the run is recorded, so its record says where its retry is.
            let id = uuid::Uuid::now_v7().to_string();
            let attempt = run.attempt + 1;
            let delay = run.retry.delay_before(attempt);
            let message = format!(
                "retrying in {} s as run {id} (attempt {attempt} of {})",
                delay.as_secs(),
                run.retry.attempts
            );
            logs.lines
                .push(LogLine::now(LogSource::Cde, "warning", &message, None));
            run.next_attempt = Some(id.clone());
            next_attempt = Some((id, delay));
        }
        if run.status == RunStatus::Succeeded && run.output_rows.unwrap_or(0) == 0 {
            let manifest = self
                .store
                .connector_version(&run.connector_code, run.connector_version)
                .await?
                .manifest;
            if manifest.kind == ConnectorType::DataService {
                let warning = "the data service wrote no rows: the feed it returns is empty, and every product is gone from it";
                logs.lines
                    .push(LogLine::now(LogSource::Cde, "warning", warning, None));
            }
        }
        logs.stop().await?;
        if let Some(code) = run.exit_code.filter(|_| run.status == RunStatus::Failed) {
            let reason = outcome::exit_reason(code);
            if run.reason.as_deref() == Some(reason.as_str()) {
                if let Some(error) = self.store.last_error(&run.id).await? {
                    run.reason = Some(outcome::with_last_error(&reason, &error));
                }
            }
        }
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
        if let Some((id, delay)) = next_attempt {
            let not_before = Utc::now() + delay;
            if let Err(e) = self.queue_next_attempt(&run, id, not_before).await {
                tracing::error!(run = %run.id, "queueing its next attempt: {e}");
                run.next_attempt = None;
                if let Err(e) = self.store.clear_next_attempt(&run.id).await {
                    tracing::error!(run = %run.id, "forgetting its next attempt: {e}");
                }
            }
        }
        if let Some(outputs) = staged {
            if let (Some(key), Some(new)) = (&run.state_key, &outputs.state) {
                if let Err(e) = self.store.commit_state(key, &run.id, new).await {
                    tracing::error!(run = %run.id, "committing the state {key}: {e}");
                }
            }
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
        let secrets: Vec<&str> = run
            .unmasked_options
            .iter()
            .filter(|(name, value)| run.options.get(*name) != Some(*value))
            .map(|(_, value)| value.as_str())
            .collect();
        let state = state::read_new(Path::new(&run.run_dir), &secrets)?;
        let feedback = match open(rundir::FEEDBACK)? {
            Some(file) => Some(stage(
                dataset::connector_feedback_dataset(code),
                rundir::FEEDBACK,
                Some(file),
            )?),
            None => None,
        };
        Ok(StagedOutputs {
            output,
            feedback,
            state,
        })
    }
}

/// A successful run's validated output and feedback, before they become datasets.
struct StagedOutputs {
    output: StagedRows,
    feedback: Option<StagedRows>,
    /// The incremental state the run put, validated.
    state: Option<String>,
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

/// Waits for the started container to exit, stopping it (SIGTERM, SIGKILL after
/// `grace_secs`) once `timeout` passes or its disk use exceeds `disk_mb`; its exit (`None`
/// when it vanished) and why cde stopped it, if it did.
pub async fn await_exit(
    engine: &dyn Engine,
    container: &str,
    timeout: Duration,
    run_dir: &Path,
    disk_mb: u64,
    grace_secs: u64,
) -> Result<(Option<Exit>, Option<StopCause>)> {
    let cause = tokio::select! {
        waited = tokio::time::timeout(timeout, engine.wait(container)) => match waited {
            Ok(exit) => return Ok((exit?, None)),
            Err(_) => StopCause::Timeout,
        },
        _ = disk::watch(engine, container, run_dir, disk_mb) => StopCause::Disk,
    };
    engine.stop(container, grace_secs).await?;
    Ok((engine.wait(container).await?, Some(cause)))
}
