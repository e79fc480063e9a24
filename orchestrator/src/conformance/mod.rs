//! The conformance kit (`cde test`): runs a connector against the contract, in a
//! throw-away store of its own beside the operator's, and judges one check at a time
//! (see [`Check`]). The same kit runs in `cargo test` against the samples.
//!
//! What it judges comes from cde's own records of the runs (status, exit code, log
//! lines, output read through [`Cde::output_page`]) and from the Container API's
//! diagnostics in each run's `summary.json`, read as the hostile file it may be.

pub mod feed;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use container_api::{Diagnostics, LogLine, Summary, SUMMARY_FILE};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::{
    Check, CheckResult, ConformanceReport, ConnectorType, FieldType, LimitsOverride, Manifest,
    RetryPolicy, Run, RunInputs, RunRequest, RunStatus, Verdict,
};
use crate::{rundir, Cde, Config};

/// Rows of the input of the `memory` check.
pub const MEMORY_ROWS: usize = 100_000;
/// Rows of the input of a valid run, unless `--input` gives one.
const SAMPLE_ROWS: usize = 50;
/// How long a run that should fail fast (invalid options, refused writes) may take.
const FAIL_FAST: Duration = Duration::from_secs(30);
/// How long the run of the `memory` check may take (a connector thrashing at its memory
/// limit crawls rather than ending).
const MEMORY_RUN_LIMIT: Duration = Duration::from_secs(300);
/// Writes refused before a connector counts as looping.
const MAX_REFUSED_WRITES: u64 = 10;
/// How long a run goes on before the `sigterm` check cancels it.
const BEFORE_SIGTERM: Duration = Duration::from_millis(500);

/// What the author gives the kit besides the manifest.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Option values of the valid runs (the manifest's defaults fill the rest).
    pub options: BTreeMap<String, String>,
    /// The feed of the valid run of a connector that reads one (JSONL); else a generated one.
    pub input: Option<PathBuf>,
    /// Option values the connector must refuse (`invalid-options`); else the kit makes some.
    pub invalid: BTreeMap<String, String>,
    /// Only these checks (all when empty).
    pub only: Vec<Check>,
}

/// A finished run of the kit's, with what it left.
struct Outcome {
    run: Run,
    logs: Vec<LogLine>,
    /// The Container API's report, when the run left a readable one.
    diagnostics: Option<Diagnostics>,
    took: Duration,
}

impl Outcome {
    fn succeeded(&self) -> bool {
        self.run.status == RunStatus::Succeeded
    }

    /// The first line logged at `error` level or worse, by the API or on stderr.
    fn error_line(&self) -> Option<&LogLine> {
        self.logs.iter().find(|line| {
            matches!(
                line.level.as_str(),
                "error" | "critical" | "alert" | "emergency"
            )
        })
    }

    /// A line of a crash trace: Python's, a Rust panic, a Node or Java stack.
    fn crash_trace(&self) -> Option<&LogLine> {
        self.logs.iter().find(|line| {
            let m = line.message.trim();
            m.starts_with("Traceback (most recent call last)")
                || m.contains("panicked at")
                || m.starts_with("Exception in thread")
                || (m.starts_with("at ") && m.ends_with(')') && m.contains(".js:"))
                || m.starts_with("node:internal")
        })
    }

    /// `failed (exit code 1)` and the first error line, for a reason.
    fn ending(&self) -> String {
        let mut text = format!(
            "ended {} ({})",
            self.run.status,
            self.run.reason.as_deref().unwrap_or("-")
        );
        if let Some(line) = self.error_line() {
            text.push_str(&format!("; it logged: {}", quote(&line.message)));
        }
        text
    }
}

/// The conformance kit for one connector.
pub struct Kit {
    base: Config,
    manifest: Manifest,
    settings: Settings,
    /// The kit's folder: its stores, feeds and runs.
    work: PathBuf,
    /// The stores opened so far, whose runs' containers [`Kit::abandon`] removes.
    opened: std::sync::Mutex<Vec<Arc<Cde>>>,
}

impl Kit {
    /// `base` is the operator's configuration: the kit keeps its store and runs in a
    /// folder of its own below `base.data_dir`, removed when it is done.
    pub fn new(base: &Config, manifest: Manifest, settings: Settings) -> Self {
        let work = base
            .data_dir
            .join("conformance")
            .join(uuid::Uuid::new_v4().simple().to_string());
        Self {
            base: base.clone(),
            manifest,
            settings,
            work,
            opened: Default::default(),
        }
    }

    /// After [`Kit::run`] was dropped midway (Ctrl-C): removes the containers of its runs
    /// and its folder.
    pub async fn abandon(&self) -> Result<()> {
        let opened = std::mem::take(&mut *self.opened.lock().unwrap_or_else(|e| e.into_inner()));
        for cde in opened {
            let engine = cde.engine().await?;
            let label = format!(
                "{}={}",
                crate::engine::container::INSTANCE_LABEL,
                cde.store.instance()
            );
            for container in engine.containers_labelled(&label).await? {
                engine.remove(&container.id).await?;
            }
        }
        let _ = std::fs::remove_dir_all(&self.work);
        Ok(())
    }

    /// A store of the kit's, in `dir` (see [`Kit::config`]).
    async fn open(&self, dir: &str, reject_writes: bool) -> Result<Arc<Cde>> {
        let cde = Arc::new(Cde::open(self.config(&self.work.join(dir), reject_writes)).await?);
        self.opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cde.clone());
        Ok(cde)
    }

    /// Runs the checks in order, telling each result to `progress` as it is judged.
    pub async fn run(&self, mut progress: impl FnMut(&CheckResult)) -> Result<ConformanceReport> {
        let work = &self.work;
        std::fs::create_dir_all(work).map_err(Error::file("creating", work))?;
        let mut report = ConformanceReport {
            connector: self.manifest.code.clone(),
            results: Vec::new(),
        };
        let outcome = self
            .judge(&mut |result: CheckResult| {
                progress(&result);
                report.results.push(result);
            })
            .await;
        // Runs' directories may hold files of another user (the connector's): best effort.
        let _ = std::fs::remove_dir_all(work);
        outcome.map(|()| report)
    }

    fn wanted(&self, check: Check) -> bool {
        self.settings.only.is_empty() || self.settings.only.contains(&check)
    }

    fn applies(&self, check: Check) -> bool {
        let kind = self.manifest.kind;
        match check {
            Check::KeepsRows | Check::ColumnPrefix => kind == ConnectorType::DataService,
            Check::EmptyInput => kind == ConnectorType::Export,
            Check::DeltaStreams => kind == ConnectorType::ExportDelta,
            _ => true,
        }
    }

    async fn judge(&self, say: &mut dyn FnMut(CheckResult)) -> Result<()> {
        let mut say = |check: Check, verdict: Verdict, reason: String| {
            if self.wanted(check) && self.applies(check) {
                say(CheckResult {
                    check,
                    verdict,
                    reason,
                })
            }
        };
        let cde = self.open("store", false).await?;
        let m = &self.manifest;

        let started = Instant::now();
        match cde.health_check(m).await {
            Ok(()) => say(
                Check::HealthCheck,
                Verdict::Pass,
                format!(
                    "exited 0 in {:.1} s, with no network",
                    started.elapsed().as_secs_f64()
                ),
            ),
            Err(Error::HealthCheck { reason, .. }) => {
                say(Check::HealthCheck, Verdict::Fail, reason);
                for check in <Check as strum::IntoEnumIterator>::iter().skip(1) {
                    say(
                        check,
                        Verdict::Skip,
                        "cde registers no connector whose health check fails".into(),
                    );
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        cde.store.register(m).await?;

        // The valid run, on the author's feed or a generated one.
        let feeds = self.work.join("feeds");
        std::fs::create_dir_all(&feeds).map_err(Error::file("creating", &feeds))?;
        let inputs = self.valid_inputs(&feeds)?;
        let valid = self.execute(&cde, self.request(m), &inputs).await?;
        if valid.succeeded() {
            let output = read_all(&cde, &valid.run.id, false).await?;
            let feedback = read_all(&cde, &valid.run.id, true).await?;
            let wrote = match (output.len(), feedback.len()) {
                (0, 0) => "wrote no rows".to_owned(),
                (n, 0) => format!("{n} rows of output"),
                (0, f) => format!("{f} rows of feedback"),
                (n, f) => format!("{n} rows of output, {f} of feedback"),
            };
            say(
                Check::ValidRun,
                Verdict::Pass,
                format!("succeeded in {:.1} s: {wrote}", valid.took.as_secs_f64()),
            );
            self.judge_valid_run(&inputs, &valid, &output, &feedback, &mut say)?;
        } else {
            say(Check::ValidRun, Verdict::Fail, valid.ending());
            for check in [
                Check::Columns,
                Check::KeepsRows,
                Check::ColumnPrefix,
                Check::Exhaustion,
            ] {
                say(check, Verdict::Skip, "needs a successful valid run".into());
            }
        }

        if self.wanted(Check::EmptyInput) && self.applies(Check::EmptyInput) {
            let (verdict, reason) = self.empty_input(&cde, &feeds).await?;
            say(Check::EmptyInput, verdict, reason);
        }
        if self.wanted(Check::DeltaStreams) && self.applies(Check::DeltaStreams) {
            let (verdict, reason) = self.delta_streams(&cde, &feeds).await?;
            say(Check::DeltaStreams, verdict, reason);
        }
        if self.wanted(Check::InvalidOptions) {
            let (verdict, reason) = self.invalid_options(&cde, &inputs).await?;
            say(Check::InvalidOptions, verdict, reason);
        }
        // A big feed keeps a reader busy long enough to be stopped, and measures its memory.
        let big =
            match m.reads_input() && (self.wanted(Check::Sigterm) || self.wanted(Check::Memory)) {
                true => Some(self.big_inputs(&feeds)?),
                false => None,
            };
        if self.wanted(Check::Sigterm) {
            let (verdict, reason) = self.sigterm(&cde, big.as_ref().unwrap_or(&inputs)).await?;
            say(Check::Sigterm, verdict, reason);
        }
        if self.wanted(Check::BadRequest) {
            let (verdict, reason) = self.bad_request(&inputs).await?;
            say(Check::BadRequest, verdict, reason);
        }
        if self.wanted(Check::Memory) {
            let (verdict, reason) = self.memory(&cde, big.as_ref(), &valid).await?;
            say(Check::Memory, verdict, reason);
        }
        Ok(())
    }

    async fn empty_input(&self, cde: &Cde, feeds: &Path) -> Result<(Verdict, String)> {
        let empty = feeds.join("empty.jsonl");
        feed::write(&empty, [])?;
        let inputs = RunInputs {
            input: Some(empty),
            previous: None,
        };
        let outcome = self
            .execute(cde, self.request(&self.manifest), &inputs)
            .await?;
        Ok(match outcome.succeeded() {
            true => (Verdict::Pass, "succeeded on an empty input".into()),
            false => (
                Verdict::Fail,
                format!("on an empty input it {}", outcome.ending()),
            ),
        })
    }

    async fn delta_streams(&self, cde: &Cde, feeds: &Path) -> Result<(Verdict, String)> {
        let mut failed = Vec::new();
        for stream in feed::STREAMS {
            let inputs = self.delta_inputs(feeds, stream)?;
            let outcome = self
                .execute(cde, self.request(&self.manifest), &inputs)
                .await?;
            if !outcome.succeeded() {
                failed.push(format!("with `{stream}` empty it {}", outcome.ending()));
            }
        }
        Ok(match failed.is_empty() {
            true => (
                Verdict::Pass,
                "succeeded with each of new, modified, unchanged and deleted empty".into(),
            ),
            false => (Verdict::Fail, failed.join("; ")),
        })
    }

    /// The valid run again, in a store of its own whose runs' Container API answers every
    /// write with 400.
    async fn bad_request(&self, inputs: &RunInputs) -> Result<(Verdict, String)> {
        let m = &self.manifest;
        let refusing = self.open("refusing", true).await?;
        refusing.store.register(m).await?;
        let outcome = self
            .execute(&refusing, self.failing_request(m), inputs)
            .await?;
        Ok(refused_writes(&outcome))
    }

    /// On the big feed; a source's valid run.
    async fn memory(
        &self,
        cde: &Cde,
        big: Option<&RunInputs>,
        valid: &Outcome,
    ) -> Result<(Verdict, String)> {
        let limit = valid.run.limits.memory_mb;
        let Some(big) = big else {
            return Ok(memory_use(
                valid,
                limit,
                "(a source reads no input: its valid run)",
            ));
        };
        let request = RunRequest {
            limits: LimitsOverride {
                timeout_secs: Some(MEMORY_RUN_LIMIT.as_secs()),
                ..Default::default()
            },
            ..self.request(&self.manifest)
        };
        let outcome = self.execute(cde, request, big).await?;
        Ok(memory_use(
            &outcome,
            limit,
            &format!("on {MEMORY_ROWS} rows"),
        ))
    }

    /// The checks made on the valid run's output and diagnostics.
    fn judge_valid_run(
        &self,
        inputs: &RunInputs,
        valid: &Outcome,
        output: &[Map<String, Value>],
        feedback: &[Map<String, Value>],
        say: &mut impl FnMut(Check, Verdict, String),
    ) -> Result<()> {
        let columns = columns_of(output.iter().chain(feedback));
        let refused = valid.diagnostics.as_ref().map(|d| d.bad_requests);
        let mut problems = Vec::new();
        if columns.iter().any(|c| c.is_empty()) {
            problems.push("a column has an empty name".to_owned());
        }
        if let Some(refused) = refused.filter(|n| *n > 0) {
            problems.push(format!(
                "the Container API answered 400 to {refused} of its requests (colliding columns after flattening, or another bad request: see its log)"
            ));
        }
        match problems.is_empty() {
            true => say(
                Check::Columns,
                Verdict::Pass,
                format!(
                    "{} columns, none empty{}",
                    columns.len(),
                    match refused {
                        Some(_) => ", no request refused",
                        None => " (no diagnostics to tell refused requests)",
                    }
                ),
            ),
            false => say(Check::Columns, Verdict::Fail, problems.join("; ")),
        }

        if self.manifest.kind == ConnectorType::DataService {
            let input = match &inputs.input {
                Some(path) => read_jsonl(path)?,
                None => Vec::new(),
            };
            let ids = |rows: &[Map<String, Value>]| -> BTreeSet<String> {
                rows.iter().filter_map(|r| r.get("id").map(text)).collect()
            };
            let missing: Vec<String> = ids(&input).difference(&ids(output)).cloned().collect();
            if self.manifest.filters {
                say(
                    Check::KeepsRows,
                    Verdict::Skip,
                    "its manifest says it filters rows (`filters: true`)".into(),
                );
            } else if missing.is_empty() {
                say(
                    Check::KeepsRows,
                    Verdict::Pass,
                    format!("all {} input rows came back", input.len()),
                );
            } else {
                say(
                    Check::KeepsRows,
                    Verdict::Fail,
                    format!(
                        "{} of {} input rows did not come back (e.g. id {}); a data service writes back every row it keeps, or declares `filters: true`",
                        missing.len(),
                        input.len(),
                        missing[..missing.len().min(3)].join(", ")
                    ),
                );
            }
            let prefix = self.manifest.column_prefix.clone().unwrap_or_default();
            let before = columns_of(&input);
            let added: Vec<&String> = columns_of(output)
                .into_iter()
                .filter(|c| !before.contains(*c))
                .collect();
            let stray: Vec<&str> = added
                .iter()
                .filter(|c| !c.starts_with(&prefix))
                .map(|c| c.as_str())
                .collect();
            match stray.is_empty() {
                true => say(
                    Check::ColumnPrefix,
                    Verdict::Pass,
                    match added.is_empty() {
                        true => "adds no column".into(),
                        false => format!(
                            "its new columns start with {prefix}: {}",
                            added
                                .iter()
                                .map(|c| c.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    },
                ),
                false => say(
                    Check::ColumnPrefix,
                    Verdict::Fail,
                    format!(
                        "new columns without its prefix {prefix}: {}",
                        stray.join(", ")
                    ),
                ),
            }
        }

        let (verdict, reason) = match (&valid.diagnostics, self.manifest.reads_input()) {
            (_, false) => (Verdict::Skip, "a source reads no input".into()),
            (None, true) => (
                Verdict::Skip,
                "the run left no diagnostics (summary.json) to tell".into(),
            ),
            (Some(d), true) if d.reads_after_end.is_empty() => (
                Verdict::Pass,
                "read no stream again once it was exhausted".into(),
            ),
            (Some(d), true) => (
                Verdict::Fail,
                format!(
                    "kept reading after the end: {}",
                    d.reads_after_end
                        .iter()
                        .map(|(stream, n)| format!("`{stream}` {n} more time(s)"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        };
        say(Check::Exhaustion, verdict, reason);
        Ok(())
    }

    /// Runs the connector with an invalid value (see [`invalid_run`]).
    async fn invalid_options(&self, cde: &Cde, inputs: &RunInputs) -> Result<(Verdict, String)> {
        let m = &self.manifest;
        let Some(Invalid {
            manifest: relaxed,
            options,
            described,
        }) = invalid_run(m, &self.settings)
        else {
            return Ok((
                Verdict::Skip,
                "no required, select or checkbox option to make invalid; give one with --invalid NAME=VALUE".into(),
            ));
        };
        cde.store.register(&relaxed).await?;
        let request = RunRequest {
            connector: relaxed.code.clone(),
            options,
            ..self.failing_request(m)
        };
        let outcome = self.execute(cde, request, inputs).await?;
        Ok(match outcome.run.status {
            RunStatus::Succeeded => (
                Verdict::Fail,
                format!("exited 0 with {described}: it should refuse it"),
            ),
            RunStatus::TimedOut => (
                Verdict::Fail,
                format!(
                    "did not exit within {} s with {described}",
                    FAIL_FAST.as_secs()
                ),
            ),
            _ => match (outcome.crash_trace(), outcome.error_line()) {
                (Some(trace), _) => (
                    Verdict::Fail,
                    format!(
                        "with {described} it crashed with a trace: {}",
                        quote(&trace.message)
                    ),
                ),
                (None, None) => (
                    Verdict::Fail,
                    format!(
                        "with {described} it {} without an `error` log line",
                        outcome.ending()
                    ),
                ),
                (None, Some(line)) => (
                    Verdict::Pass,
                    format!(
                        "with {described} it exited {} and logged: {}",
                        outcome.run.exit_code.unwrap_or(-1),
                        quote(&line.message)
                    ),
                ),
            },
        })
    }

    async fn sigterm(&self, cde: &Arc<Cde>, inputs: &RunInputs) -> Result<(Verdict, String)> {
        let grace = self.base.stop_grace_secs;
        let run = cde.start_with(self.request(&self.manifest), inputs).await?;
        let executor = tokio::spawn({
            let (cde, run) = (cde.clone(), run.clone());
            async move { cde.execute_with_retries(run).await }
        });
        // Running (the container started), then a little more, then the signal.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let current = cde.store.run(&run.id).await?;
            if current.status == RunStatus::Running || current.status.is_finished() {
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(BEFORE_SIGTERM).await;
        cde.cancel(&run.id).await?;
        let run = executor
            .await
            .map_err(|e| Error::Other(format!("executing run {}: {e}", run.id)))??;
        let diagnostics = diagnostics(&run);
        Ok(match diagnostics.and_then(|d| d.signal) {
            Some(signal) if !signal.killed => (
                Verdict::Pass,
                format!(
                    "exited {} ms after SIGTERM (the grace period is {grace} s)",
                    signal.after_ms
                ),
            ),
            Some(_) => (
                Verdict::Fail,
                format!("still running {grace} s after SIGTERM: it was killed"),
            ),
            None if run.status != RunStatus::Cancelled => (
                Verdict::Skip,
                format!(
                    "it ended ({}) before SIGTERM was sent; give it more work (--input) to check",
                    run.status
                ),
            ),
            None => (
                Verdict::Skip,
                "the run left no diagnostics (summary.json) to tell how it ended".into(),
            ),
        })
    }

    /// The kit's store and runs: in `dir`, with the operator's engine settings.
    fn config(&self, dir: &Path, reject_writes: bool) -> Config {
        Config {
            data_dir: dir.to_path_buf(),
            database_url: None,
            health_check_timeout_secs: 5,
            reject_writes,
            ..self.base.clone()
        }
    }

    fn request(&self, m: &Manifest) -> RunRequest {
        RunRequest {
            connector: m.code.clone(),
            options: self.settings.options.clone(),
            retry: Some(RetryPolicy {
                attempts: 1,
                backoff_secs: 0,
            }),
            ..Default::default()
        }
    }

    /// [`Kit::request`] for a run that should end fast: it times out after [`FAIL_FAST`].
    fn failing_request(&self, m: &Manifest) -> RunRequest {
        RunRequest {
            limits: LimitsOverride {
                timeout_secs: Some(FAIL_FAST.as_secs()),
                ..Default::default()
            },
            ..self.request(m)
        }
    }

    async fn execute(&self, cde: &Cde, request: RunRequest, inputs: &RunInputs) -> Result<Outcome> {
        let started = Instant::now();
        let run = cde.start_with(request, inputs).await?;
        let run = cde.execute_with_retries(run).await?;
        let logs = cde
            .store
            .logs(&run.id, 0)
            .await?
            .into_iter()
            .map(|(_, line)| line)
            .collect();
        Ok(Outcome {
            diagnostics: diagnostics(&run),
            logs,
            took: started.elapsed(),
            run,
        })
    }

    fn required_columns(&self) -> Vec<String> {
        let mut columns = self.manifest.required_columns.clone();
        if self.manifest.kind == ConnectorType::ExportDelta {
            columns.push(self.manifest.delta_key().to_owned());
        }
        columns
    }

    /// The valid run's feeds: none for a source; `--input` or generated products; for an
    /// export delta also a previous snapshot, so that every stream has products.
    fn valid_inputs(&self, feeds: &Path) -> Result<RunInputs> {
        let m = &self.manifest;
        if !m.reads_input() {
            return Ok(RunInputs::default());
        }
        if m.kind == ConnectorType::ExportDelta && self.settings.input.is_none() {
            return self.delta_inputs(feeds, "");
        }
        let input = match &self.settings.input {
            Some(path) => path.clone(),
            None => {
                let path = feeds.join("input.jsonl");
                feed::write(&path, feed::products(SAMPLE_ROWS, &self.required_columns()))?;
                path
            }
        };
        Ok(RunInputs {
            input: Some(input),
            previous: None,
        })
    }

    fn delta_inputs(&self, feeds: &Path, empty: &str) -> Result<RunInputs> {
        let (previous, current) =
            feed::delta_pair(empty, self.manifest.delta_key(), &self.required_columns());
        let name = if empty.is_empty() { "all" } else { empty };
        let (p, c) = (
            feeds.join(format!("previous-{name}.jsonl")),
            feeds.join(format!("current-{name}.jsonl")),
        );
        feed::write(&p, previous)?;
        feed::write(&c, current)?;
        Ok(RunInputs {
            input: Some(c),
            previous: Some(p),
        })
    }

    fn big_inputs(&self, feeds: &Path) -> Result<RunInputs> {
        let path = feeds.join("big.jsonl");
        feed::write(&path, feed::products(MEMORY_ROWS, &self.required_columns()))?;
        Ok(RunInputs {
            input: Some(path),
            previous: None,
        })
    }
}

/// A run with an invalid option value, of a copy of the manifest that takes any value
/// (cde refuses invalid values before a run starts, so the connector would never see them).
struct Invalid {
    manifest: Manifest,
    options: BTreeMap<String, String>,
    /// What is invalid, for the reason.
    described: String,
}

/// The value: `--invalid`, else a required option left out (its default too), else a
/// select given a value outside its choices or a checkbox given neither 0 nor 1; `None`
/// when the manifest has nothing of the kind.
fn invalid_run(m: &Manifest, settings: &Settings) -> Option<Invalid> {
    let mut options = settings.options.clone();
    let mut left_out = None;
    let described = if !settings.invalid.is_empty() {
        options.extend(settings.invalid.clone());
        let given: Vec<String> = settings
            .invalid
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("given {}", given.join(" "))
    } else if let Some(option) = m.options.iter().find(|o| o.required) {
        options.remove(&option.name);
        left_out = Some(option.name.clone());
        format!("required option {} left out", option.name)
    } else {
        let option = m
            .options
            .iter()
            .find(|o| matches!(o.field_type, FieldType::Select | FieldType::Checkbox))?;
        let value = match option.field_type {
            FieldType::Checkbox => "maybe",
            _ => "not-one-of-the-choices",
        };
        options.insert(option.name.clone(), value.into());
        format!("{}={value}", option.name)
    };
    let mut manifest = m.clone();
    manifest.code = format!("{}-invalid-options", m.code);
    for option in &mut manifest.options {
        option.required = false;
        if left_out.as_ref() == Some(&option.name) {
            option.default = None;
        }
        if option.field_type != FieldType::Password {
            option.field_type = FieldType::Input;
            option.config = None;
        }
    }
    Some(Invalid {
        manifest,
        options,
        described,
    })
}

fn refused_writes(outcome: &Outcome) -> (Verdict, String) {
    let Some(d) = &outcome.diagnostics else {
        return (
            Verdict::Skip,
            "the run left no diagnostics (summary.json) to tell".into(),
        );
    };
    let refused = d.rejected_writes;
    if refused == 0 {
        return (
            Verdict::Skip,
            "it wrote nothing, so no write was answered 400".into(),
        );
    }
    match outcome.run.status {
        RunStatus::Succeeded => (
            Verdict::Fail,
            format!("exited 0 although {refused} write(s) were answered 400: its data is lost without a word"),
        ),
        _ if refused > MAX_REFUSED_WRITES => (
            Verdict::Fail,
            format!(
                "kept writing: {refused} writes answered 400{}",
                match outcome.run.status {
                    RunStatus::TimedOut => format!(", still going after {} s", FAIL_FAST.as_secs()),
                    _ => String::new(),
                }
            ),
        ),
        RunStatus::TimedOut => (
            Verdict::Fail,
            format!(
                "did not exit within {} s after its writes were answered 400 ({refused} refused)",
                FAIL_FAST.as_secs()
            ),
        ),
        _ => match outcome.error_line() {
            None => (
                Verdict::Fail,
                format!(
                    "{} after a write answered 400, without an `error` log line",
                    outcome.ending()
                ),
            ),
            Some(line) => (
                Verdict::Pass,
                format!(
                    "exited {} after {refused} write(s) answered 400, logging: {}",
                    outcome.run.exit_code.unwrap_or(-1),
                    quote(&line.message)
                ),
            ),
        },
    }
}

fn memory_use(outcome: &Outcome, limit_mb: u64, on: &str) -> (Verdict, String) {
    let peak = outcome
        .diagnostics
        .as_ref()
        .and_then(|d| d.memory_peak_bytes)
        .map(|bytes| format!("peak {} MiB", bytes.div_ceil(1 << 20)))
        .unwrap_or_else(|| "peak not reported by the kernel".into());
    match outcome.run.status {
        RunStatus::Succeeded => (
            Verdict::Pass,
            format!("{peak} of its {limit_mb} MiB limit {on}"),
        ),
        _ => (Verdict::Fail, format!("{on} it {}", outcome.ending())),
    }
}

/// The Container API's diagnostics of a finished run, if its `summary.json` is a regular
/// file that parses (the connector could have replaced it: nothing here is trusted for
/// the run's own outcome).
fn diagnostics(run: &Run) -> Option<Diagnostics> {
    let file = rundir::open(Path::new(&run.run_dir), SUMMARY_FILE, 1 << 20).ok()??;
    let summary: Summary = serde_json::from_reader(std::io::BufReader::new(file)).ok()?;
    Some(summary.diagnostics)
}

/// Every record of a run's output (or feedback).
async fn read_all(cde: &Cde, run_id: &str, feedback: bool) -> Result<Vec<Map<String, Value>>> {
    cde.fold_output(run_id, feedback, Vec::new(), |mut records, record| {
        if let Value::Object(map) = record {
            records.push(map);
        }
        records
    })
    .await
}

fn read_jsonl(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let text = std::fs::read_to_string(path).map_err(Error::file("reading", path))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                Error::InvalidConfig(format!(
                    "{}: line {} is not a JSON object: {e}",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

fn columns_of<'a>(rows: impl IntoIterator<Item = &'a Map<String, Value>>) -> BTreeSet<&'a String> {
    rows.into_iter().flat_map(|row| row.keys()).collect()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A log message in a reason: quoted, on one line, at most 160 characters.
fn quote(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    let short: String = line.chars().take(160).collect();
    let more = if short.len() < line.len() { "…" } else { "" };
    format!("«{short}{more}»")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(options: &str) -> Manifest {
        Manifest::parse(
            &format!("{{code: c, label: C, type: data-source, image: i, command: x, options: {options}}}"),
            false,
        )
        .unwrap()
    }

    #[test]
    fn a_required_option_is_left_out_and_the_others_keep_their_defaults() {
        let m = manifest(
            "[{name: REGION, field_type: select, default: eu, config: {choices: [eu, us]}}, {name: TOKEN, field_type: password, required: true, default: t}]",
        );
        let settings = Settings {
            options: [("TOKEN".to_owned(), "given".to_owned())].into(),
            ..Default::default()
        };
        let invalid = invalid_run(&m, &settings).unwrap();
        assert_eq!(invalid.described, "required option TOKEN left out");
        assert!(invalid.options.is_empty());
        let token = invalid.manifest.option("TOKEN").unwrap();
        assert!(!token.required && token.default.is_none());
        assert_eq!(token.field_type, FieldType::Password);
        let region = invalid.manifest.option("REGION").unwrap();
        assert_eq!(region.default.as_deref(), Some("eu"));
        assert_eq!(region.field_type, FieldType::Input);
        assert_ne!(invalid.manifest.code, m.code);
    }

    #[test]
    fn a_select_or_checkbox_gets_a_value_outside_its_choices_unless_one_is_given() {
        let m = manifest("[{name: N, field_type: input}, {name: LOUD, field_type: checkbox}]");
        let invalid = invalid_run(&m, &Settings::default()).unwrap();
        assert_eq!(invalid.described, "LOUD=maybe");
        let given = Settings {
            invalid: [("N".to_owned(), "-1".to_owned())].into(),
            ..Default::default()
        };
        let invalid = invalid_run(&m, &given).unwrap();
        assert_eq!(invalid.described, "given N=-1");
        assert_eq!(invalid.options["N"], "-1");
        assert!(invalid_run(
            &manifest("[{name: N, field_type: input}]"),
            &Settings::default()
        )
        .is_none());
    }
}
