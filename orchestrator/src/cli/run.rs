//! `cde run`, `cde runs`, `cde logs` and `cde cancel`.

use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use console::style;
use container_api::LogLine;
use indicatif::{ProgressBar, ProgressStyle};

use super::backend::{Backend, POLL};
use super::output::Output;
use crate::error::{Error, ErrorCode, Result};

use crate::model::{LimitsOverride, RetryPolicy, RunFilter, RunInputs, RunRequest, RunStatus};
use crate::options::OptionValues;

#[derive(Args)]
pub struct Run {
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
    network: Option<crate::model::Network>,
    /// The feed a data service or export reads (JSONL, one object per line).
    #[arg(long, value_name = "FILE.jsonl")]
    input: Option<PathBuf>,
    /// For an export delta: the previous snapshot to compute new/modified/unchanged/deleted against.
    #[arg(long, value_name = "FILE.jsonl")]
    previous: Option<PathBuf>,
    /// Attempts in all (1 to 10) when the run fails as transient (exit status 75) or loses
    /// its container, instead of the manifest's `retry.attempts`.
    #[arg(long, value_name = "N")]
    attempts: Option<u32>,
    /// Seconds before the second attempt, doubling for each later one (at most an hour),
    /// instead of the manifest's `retry.backoff_secs`.
    #[arg(long, value_name = "SECS")]
    backoff: Option<u64>,
}

impl Run {
    pub async fn run(self, backend: &impl Backend, out: Output) -> Result<ExitCode> {
        // The request's policy replaces the manifest's whole: what is not given is the manifest's.
        let retry = match (self.attempts, self.backoff) {
            (None, None) => None,
            (attempts, backoff) => {
                let manifest = backend.connector(&self.code).await?.manifest.retry;
                Some(RetryPolicy {
                    attempts: attempts.unwrap_or(manifest.attempts),
                    backoff_secs: backoff.unwrap_or(manifest.backoff_secs),
                })
            }
        };
        let request = RunRequest {
            connector: self.code,
            options: OptionValues::parse_pairs(&self.set)?,
            limits: LimitsOverride {
                timeout_secs: self.timeout,
                memory_mb: self.memory,
                cpus: self.cpus,
                pids: self.pids,
                disk_mb: self.disk,
            },
            network: self.network,
            state_key: None,
            retry,
        };
        let inputs = RunInputs {
            input: self.input,
            previous: self.previous,
        };
        run_and_watch(backend, request, &inputs, out).await
    }
}

#[derive(Args)]
pub struct Runs {
    #[arg(long)]
    status: Option<RunStatus>,
    #[arg(long)]
    connector: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: i64,
}

impl Runs {
    pub async fn run(self, backend: &impl Backend, out: Output) -> Result<ExitCode> {
        let filter = RunFilter {
            status: self.status,
            connector: self.connector,
            limit: Some(self.limit),
        };
        out.show(&backend.runs(&filter).await?, |runs| {
            let mut text = format!(
                "{:<36}  {:<28}  {:<9}  {:<7}  {:<19}  REASON\n",
                "RUN", "CONNECTOR", "STATUS", "ATTEMPT", "CREATED"
            );
            for run in runs {
                writeln!(
                    text,
                    "{:<36}  {:<28}  {:<9}  {:<7}  {:<19}  {}",
                    run.id,
                    format!("{} v{}", run.connector_code, run.connector_version),
                    run.status,
                    format!("{}/{}", run.attempt, run.retry.attempts),
                    run.created_at.format("%Y-%m-%d %H:%M:%S"),
                    run.reason.as_deref().unwrap_or_default()
                )
                .expect("writing to a String");
            }
            Ok(text)
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct Logs {
    run_id: String,
    /// Keep printing new lines until the run ends.
    #[arg(short, long)]
    follow: bool,
}

impl Logs {
    pub async fn run(self, backend: &impl Backend, out: Output) -> Result<ExitCode> {
        let mut next = 0;
        loop {
            let run = backend.run(&self.run_id).await?;
            next = print_logs(backend, &self.run_id, next, out, None).await?;
            if !self.follow || run.status.is_finished() {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[derive(Args)]
pub struct Cancel {
    run_id: String,
}

impl Cancel {
    pub async fn run(self, backend: &impl Backend, out: Output) -> Result<ExitCode> {
        out.show(&backend.cancel(&self.run_id).await?, |run| {
            Ok(if run.status.is_finished() {
                format!("run {} is {}\n", run.id, run.status)
            } else {
                format!("run {} is being cancelled\n", run.id)
            })
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Starts a run and prints its log lines as they arrive under a progress line until it
/// ends; when it is retried, says so and goes on with the next attempt, to the last one,
/// whose outcome it prints (and whose status is the exit status). Ctrl-C cancels the
/// attempt being watched (and waits for its outcome).
pub async fn run_and_watch(
    backend: &impl Backend,
    request: RunRequest,
    inputs: &RunInputs,
    out: Output,
) -> Result<ExitCode> {
    let (run, executor) = backend.start(request, inputs).await?;
    watch_run(backend, run, executor, out).await
}

/// [`run_and_watch`] of a run already started.
pub async fn watch_run(
    backend: &impl Backend,
    mut run: crate::model::Run,
    executor: super::backend::Executor<crate::model::Run>,
    out: Output,
) -> Result<ExitCode> {
    let progress = (!out.json && console::Term::stderr().is_term()).then(|| {
        let bar = ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let note = |text: String| match &progress {
        Some(bar) => bar.suspend(|| out.note(|| text)),
        None => out.note(|| text),
    };
    note(format!(
        "run {} of {} v{}",
        run.id, run.connector_code, run.connector_version
    ));
    let started = Instant::now();
    let mut next = 0;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut cancelling = false;
    // Since when the next attempt a run names could not be read (it is being queued).
    let mut missing_since: Option<Instant> = None;
    // Log lines stream only as text; `--json` prints the finished run alone.
    let streaming = (!out.json).then_some(out);
    let finished = loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = &mut ctrl_c, if !cancelling => {
                cancelling = true;
                eprintln!("cancelling run {} …", run.id);
                backend.cancel(&run.id).await?;
            }
        }
        if let Some(out) = streaming {
            next = print_logs(backend, &run.id, next, out, progress.as_ref()).await?;
        }
        let current = backend.run(&run.id).await?;
        if current.status.is_finished() {
            if let Some(next_id) = &current.next_attempt {
                let next_run = match backend.run(next_id).await {
                    Ok(next_run) => next_run,
                    // Named before it is recorded: look again, a while.
                    Err(e) if e.code() == ErrorCode::NotFound => {
                        let since = *missing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() < NEXT_ATTEMPT_PATIENCE {
                            continue;
                        }
                        break current;
                    }
                    Err(e) => return Err(e),
                };
                missing_since = None;
                if let Some(out) = streaming {
                    print_logs(backend, &run.id, next, out, progress.as_ref()).await?;
                }
                note(retrying(&current, &next_run));
                run = next_run;
                next = 0;
                if cancelling {
                    backend.cancel(&run.id).await?;
                }
                continue;
            }
        }
        match &executor {
            // This process executes the attempts: its result is the last one (or its error).
            Some(executor) if executor.is_finished() => break current,
            Some(_) => {}
            None if current.status.is_finished() => break current,
            None => {}
        }
        if let Some(bar) = &progress {
            bar.set_message(format!(
                "{} · {}s",
                run.connector_code,
                started.elapsed().as_secs()
            ));
        }
    };
    let finished = match executor {
        Some(executor) => executor
            .await
            .map_err(|e| Error::Other(format!("executing run {}: {e}", run.id)))??,
        None => finished,
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if let Some(out) = streaming {
        print_logs(backend, &run.id, next, out, None).await?;
    }
    out.show(&finished, |run| Ok(outcome(run)))?;
    Ok(super::status(finished.status == RunStatus::Succeeded))
}

/// How long a run's next attempt may be missing before the run is taken as the last one
/// (its executor died between recording the run and queueing the attempt).
const NEXT_ATTEMPT_PATIENCE: Duration = Duration::from_secs(30);

/// `attempt 1 of 3 failed: <reason>; retrying in 10 s as run <id>`.
fn retrying(failed: &crate::model::Run, next: &crate::model::Run) -> String {
    format!(
        "attempt {} of {} failed: {}; retrying in {} s as run {}",
        failed.attempt,
        failed.retry.attempts,
        failed.reason.as_deref().unwrap_or("-"),
        failed.retry.delay_before(next.attempt).as_secs(),
        next.id
    )
}

/// Prints log lines from `from` on; returns the next sequence number.
async fn print_logs(
    backend: &impl Backend,
    run_id: &str,
    from: i64,
    out: Output,
    progress: Option<&ProgressBar>,
) -> Result<i64> {
    let lines = backend.logs(run_id, from).await?;
    let next = lines.last().map_or(from, |(seq, _)| seq + 1);
    let print = || {
        for (_, line) in &lines {
            out.line(line, format_line);
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

fn outcome(run: &crate::model::Run) -> String {
    let status = match run.status {
        RunStatus::Succeeded => style(run.status.to_string()).green().bold(),
        RunStatus::Failed | RunStatus::TimedOut => style(run.status.to_string()).red().bold(),
        _ => style(run.status.to_string()).yellow().bold(),
    };
    let mut text = format!(
        "run       {}\nconnector {} v{}\nstatus    {status} ({})\n",
        run.id,
        run.connector_code,
        run.connector_version,
        run.reason.as_deref().unwrap_or("-")
    );
    if let Some(rows) = run.output_rows {
        writeln!(
            text,
            "output    {} ({rows} rows)",
            run.output_path().display()
        )
        .expect("writing to a String");
    }
    text
}
