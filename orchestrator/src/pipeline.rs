//! Pipelines (a Productsup "site"): data sources joined into a feed, data services that
//! rewrite it in stage order, and exports that deliver it. Each successful pipeline run
//! adds a version of the `pipeline/<name>` dataset; feedback from exports comes back on the
//! next run as an additional source. A step that maps columns gets a mapped copy of its
//! rows (see [`crate::mapping`]).

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::mapping::{self, Mapping};
use crate::{dataset, delta};

use crate::model::{
    ConnectorType, Dataset, Leased, Manifest, Pipeline, PipelineRun, PipelineStatus, Run,
    RunInputs, RunRequest, RunStatus, Source, Stage, Step, StepKind, StepRun,
};
use crate::options::OptionValues;
use crate::Cde;

/// What a service or export step reads: the feed, its row count, and for an export delta
/// the snapshot its export last delivered.
struct Feed<'a> {
    path: &'a Path,
    rows: i64,
    previous: Option<&'a Path>,
}

/// The column additional sources and feedback are joined on.
pub const PRODUCT_ID: &str = "id";

/// A cron expression with or without its seconds field.
pub fn parse_schedule(expression: &str) -> Result<cron::Schedule, String> {
    let fields = expression.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {expression}")
    } else {
        expression.to_owned()
    };
    cron::Schedule::from_str(&full)
        .map_err(|e| format!("schedule: {expression:?} is not a cron expression: {e}"))
}

impl Pipeline {
    pub fn load(path: &Path) -> Result<Self> {
        crate::document::load(path, Self::parse)
    }

    /// Parses and checks the shape; [`Cde::save_pipeline`] checks it against the registry.
    pub fn parse(text: &str, json: bool) -> Result<Self, String> {
        let pipeline: Pipeline = crate::document::parse(text, json)?;
        if !crate::manifest::is_kebab_case(&pipeline.name) {
            return Err(format!("name: {:?} must be kebab-case", pipeline.name));
        }
        if pipeline.sources.is_empty() {
            return Err("sources: a pipeline has at least its main data source".into());
        }
        if let Some(schedule) = &pipeline.schedule {
            parse_schedule(schedule)?;
        }
        pipeline.check_listeners()?;
        pipeline.check_columns()?;
        Ok(pipeline)
    }

    /// Checks the column mappings of the steps; the message names the step
    /// (`services[0].columns[1] (title): ...`).
    fn check_columns(&self) -> Result<(), String> {
        for (group, index, step) in self.steps() {
            if step.connector.is_empty() && step.connection.is_none() {
                return Err(format!(
                    "{group}[{index}]: a step names a connector or a connection"
                ));
            }
            if let Some(columns) = &step.columns {
                mapping::check(columns).map_err(|e| format!("{group}[{index}].{e}"))?;
            }
        }
        Ok(())
    }

    /// Every connector step with the list it is in and its index there, for messages.
    fn steps(&self) -> Vec<(&'static str, usize, &Step)> {
        let mut steps: Vec<_> = (self.sources.iter().enumerate())
            .filter_map(|(i, source)| match source {
                Source::Connector(step) => Some(("sources", i, step)),
                Source::Listener(_) => None,
            })
            .collect();
        for (group, list) in [("services", &self.services), ("exports", &self.exports)] {
            steps.extend(list.iter().enumerate().map(|(i, step)| (group, i, step)));
        }
        steps
    }
}

fn stage_order(stage: Option<Stage>) -> u8 {
    match stage {
        Some(Stage::Import) | None => 0,
        Some(Stage::Intermediate) => 1,
        Some(Stage::Export) => 2,
    }
}

impl Cde {
    /// Checks a pipeline against the registry (connector types, options, `max_usage`,
    /// listeners described by a hub document) and stores it, replacing an earlier
    /// definition of the same name. Returns it as stored.
    pub async fn save_pipeline(&self, pipeline: &Pipeline) -> Result<Pipeline> {
        pipeline.check_columns().map_err(Error::InvalidConfig)?;
        let resolved = self.with_connections(pipeline).await?;
        let mut uses: HashMap<&str, u32> = HashMap::new();
        for (group, index, step) in resolved.steps() {
            let at = |message: String| {
                Error::InvalidConfig(format!("{group}[{index}] ({}): {message}", step.connector))
            };
            let manifest = self
                .store
                .connector(&step.connector)
                .await
                .map_err(|e| at(e.to_string()))?
                .manifest;
            let expected: &[ConnectorType] = match group {
                "sources" => &[ConnectorType::DataSource],
                "services" => &[ConnectorType::DataService],
                _ => &[ConnectorType::Export, ConnectorType::ExportDelta],
            };
            if !expected.contains(&manifest.kind) {
                return Err(at(format!(
                    "a {} does not belong in {group}",
                    manifest.kind
                )));
            }
            OptionValues::resolve(&manifest, step.options.clone())
                .map_err(|e| at(e.to_string()))?;
            self.config
                .limits_for(&manifest, &step.limits)
                .map_err(at)?;
            let used = uses.entry(step.connector.as_str()).or_default();
            *used += 1;
            if let Some(max) = manifest.max_usage.filter(|max| *used > *max) {
                return Err(at(format!(
                    "may be used at most {max} time(s) in a pipeline"
                )));
            }
        }
        let pipeline = self.resolve_listeners(pipeline).await?;
        pipeline.check_listeners().map_err(Error::InvalidConfig)?;
        self.store.save_pipeline(&pipeline).await?;
        self.prepare_listeners(&pipeline).await?;
        Ok(pipeline)
    }

    /// `pipeline` with each step that names a connection given that connection's
    /// connector and values (the step's own options take precedence), as they are now.
    pub(crate) async fn with_connections(&self, pipeline: &Pipeline) -> Result<Pipeline> {
        let mut resolved = pipeline.clone();
        let sources = resolved
            .sources
            .iter_mut()
            .filter_map(|source| match source {
                Source::Connector(step) => Some(("sources", step)),
                Source::Listener(_) => None,
            });
        let others = (resolved.services.iter_mut().map(|step| ("services", step)))
            .chain(resolved.exports.iter_mut().map(|step| ("exports", step)));
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (group, step) in sources.chain(others) {
            let at = index.entry(group).or_default();
            let i = *at;
            *at += 1;
            let Some(name) = step.connection.clone() else {
                continue;
            };
            let invalid = |message: String| {
                Error::InvalidConfig(format!("{group}[{i}] (connection {name}): {message}"))
            };
            let connection = self
                .store
                .connection(&name)
                .await
                .map_err(|e| invalid(e.to_string()))?;
            if !step.connector.is_empty() && step.connector != connection.connector {
                return Err(invalid(format!(
                    "the connection is of {}, not {}",
                    connection.connector, step.connector
                )));
            }
            step.connector = connection.connector;
            let mut options = connection.values;
            options.append(&mut step.options);
            step.options = options;
        }
        Ok(resolved)
    }

    /// Records a new run of the pipeline; an error when one is still going.
    pub async fn begin_pipeline_run(&self, name: &str, trigger: &str) -> Result<PipelineRun> {
        self.store.pipeline(name).await?;
        let run = PipelineRun {
            id: uuid::Uuid::now_v7().to_string(),
            pipeline: name.to_owned(),
            status: PipelineStatus::Running,
            reason: None,
            trigger: trigger.to_owned(),
            dataset_version: None,
            created_at: Utc::now(),
            finished_at: None,
            steps: vec![],
        };
        self.store.insert_pipeline_run(&run, &self.lease()).await?;
        Ok(run)
    }

    /// Begins a run of the pipeline and executes it in the background of this process;
    /// returns the begun run.
    pub async fn start_pipeline_run(
        self: &Arc<Self>,
        name: &str,
        trigger: &str,
    ) -> Result<PipelineRun> {
        let run = self.begin_pipeline_run(name, trigger).await?;
        let (cde, begun) = (self.clone(), run.clone());
        tokio::spawn(async move {
            let pipeline = begun.pipeline.clone();
            if let Err(e) = cde.execute_pipeline_run(begun).await {
                tracing::error!(%pipeline, "pipeline run: {e}");
            }
        });
        Ok(run)
    }

    /// Runs a pipeline to its end in this process.
    pub async fn run_pipeline(&self, name: &str, trigger: &str) -> Result<PipelineRun> {
        let run = self.begin_pipeline_run(name, trigger).await?;
        self.execute_pipeline_run(run).await
    }

    /// Executes a begun pipeline run: sources, join, services, dataset version, exports.
    pub async fn execute_pipeline_run(&self, mut run: PipelineRun) -> Result<PipelineRun> {
        let _lease = self.keep_lease_on(Leased::PipelineRun, &run.id);
        let outcome = self.drive_pipeline(&mut run).await;
        run.status = match &outcome {
            Ok(None) => PipelineStatus::Succeeded,
            Ok(Some(_)) | Err(_) => PipelineStatus::Failed,
        };
        run.reason = match outcome {
            Ok(reason) => reason,
            Err(e) => Some(e.to_string()),
        };
        run.finished_at = Some(Utc::now());
        // The run's status moves its listeners' offsets (see `store::listeners`).
        self.store.finish_pipeline_run(&run).await?;
        if run.status == PipelineStatus::Succeeded {
            self.consume_listener_reads(&run).await?;
        }
        self.store.pipeline_run(&run.id).await
    }

    /// `Ok(Some(reason))` when a step failed.
    async fn drive_pipeline(&self, run: &mut PipelineRun) -> Result<Option<String>> {
        let pipeline = self
            .with_connections(&self.store.pipeline(&run.pipeline).await?)
            .await?;
        let work = self.config.data_dir.join("pipeline-runs").join(&run.id);
        crate::private::create_dir(&work)?;
        let mut position = 0;
        let mut next_step = |kind: StepKind, step: &Step| {
            position += 1;
            (position - 1, kind, step.clone())
        };

        // Listeners read first, so that what a run reads is fixed before its connector
        // sources start; then connector sources side by side. The main one is first in
        // the join.
        let mut outputs: Vec<Option<PathBuf>> = vec![None; pipeline.sources.len()];
        let mut connectors = Vec::new();
        for (i, source) in pipeline.sources.iter().enumerate() {
            match source {
                Source::Listener(source) => {
                    let (position, _, _) = next_step(StepKind::Listener, &Step::default());
                    let path = work.join(format!("listener-{}.jsonl", source.listener));
                    let read = self
                        .read_listener(run, &pipeline, &source.listener, &path)
                        .await?;
                    let record = StepRun {
                        position,
                        kind: StepKind::Listener,
                        connector: source.listener.clone(),
                        run_id: None,
                        status: RunStatus::Succeeded.to_string(),
                        reason: None,
                        rows_in: None,
                        rows_out: Some(read.events as i64),
                    };
                    self.store.save_pipeline_step(&run.id, &record).await?;
                    outputs[i] = Some(path);
                }
                Source::Connector(step) => connectors.push((i, next_step(StepKind::Source, step))),
            }
        }
        let results = futures_util::future::join_all(
            connectors
                .iter()
                .map(|(_, (position, kind, step))| self.step(run, *position, *kind, step, None)),
        )
        .await;
        for ((i, (_, _, step)), result) in connectors.iter().zip(results) {
            match result? {
                Ok(source) => {
                    let output = PathBuf::from(self.output_of(&source).await?.path);
                    // Mapped before the join, which needs the source's join key.
                    outputs[*i] = Some(match &step.columns {
                        Some(columns) => {
                            let mapped = work.join(format!("source-{i}.jsonl"));
                            Mapping::keeping_key(columns, PRODUCT_ID).apply(&output, &mapped)?;
                            mapped
                        }
                        None => output,
                    });
                }
                Err(reason) => return Ok(Some(reason)),
            }
        }
        let mut outputs: Vec<PathBuf> = outputs.into_iter().flatten().collect();
        if let Some(feedback) = self
            .store
            .latest_dataset(&dataset::feedback_dataset(&pipeline.name))
            .await?
        {
            outputs.push(feedback.path().to_path_buf());
        }
        let mut feed = work.join("feed-0.jsonl");
        let mut feed_rows = join_on_id(&outputs[0], &outputs[1..], &feed)?;

        let mut services: Vec<(Step, Manifest)> = Vec::new();
        for step in &pipeline.services {
            services.push((
                step.clone(),
                self.store.connector(&step.connector).await?.manifest,
            ));
        }
        services.sort_by_key(|(_, manifest)| stage_order(manifest.stage));
        for (step, _) in &services {
            let (position, kind, step) = next_step(StepKind::Service, step);
            let (input, input_rows) = mapped(
                &step,
                &feed,
                feed_rows,
                work.join(format!("service-{position}.jsonl")),
            )?;
            match self
                .step(
                    run,
                    position,
                    kind,
                    &step,
                    Some(Feed {
                        path: &input,
                        rows: input_rows,
                        previous: None,
                    }),
                )
                .await?
            {
                // An empty output empties the feed; the service's run log warns about it.
                Ok(service) => {
                    let output = self.output_of(&service).await?;
                    feed = PathBuf::from(output.path);
                    feed_rows = output.rows;
                }
                Err(reason) => return Ok(Some(reason)),
            }
        }
        let name = dataset::pipeline_dataset(&pipeline.name);
        let dataset = self
            .commit_dataset(&name, None, self.stage_file(&name, &feed)?)
            .await?;
        run.dataset_version = Some(dataset.version);
        self.store.finish_pipeline_run(run).await?;

        let exports: Vec<_> = pipeline
            .exports
            .iter()
            .map(|s| next_step(StepKind::Export, s))
            .collect();
        // What each export reads; only an export delta compares with a baseline.
        let mut feeds = Vec::new();
        for (position, _, step) in &exports {
            let manifest = self.store.connector(&step.connector).await?.manifest;
            let snapshot = if manifest.kind == ConnectorType::ExportDelta {
                let key = format!("{position}:{}", step.connector);
                self.store
                    .export_snapshot(&pipeline.name, &key)
                    .await?
                    .map(PathBuf::from)
            } else {
                None
            };
            // An export that maps columns gets a mapped copy of the dataset version, and
            // compares it with its snapshot mapped the same way: the snapshot itself stays
            // the whole version it delivered.
            let (input, rows) = mapped(
                step,
                dataset.path(),
                dataset.rows,
                work.join(format!("export-{position}.jsonl")),
            )?;
            let snapshot = match snapshot {
                Some(previous) => Some(
                    mapped(
                        step,
                        &previous,
                        0,
                        work.join(format!("export-{position}-previous.jsonl")),
                    )?
                    .0,
                ),
                None => None,
            };
            feeds.push((input, rows, snapshot));
        }
        let results = futures_util::future::join_all(exports.iter().zip(&feeds).map(
            |((position, kind, step), (input, rows, snapshot))| {
                self.step(
                    run,
                    *position,
                    *kind,
                    step,
                    Some(Feed {
                        path: input,
                        rows: *rows,
                        previous: snapshot.as_deref(),
                    }),
                )
            },
        ))
        .await;
        let mut failure = None;
        let feedback = work.join("feedback.jsonl");
        let mut feedback_out = BufWriter::new(crate::private::create_file(&feedback)?);
        for ((position, _, step), result) in exports.iter().zip(results) {
            match result? {
                Ok(export) => {
                    // Only a successful export moves its delta baseline.
                    let key = format!("{position}:{}", step.connector);
                    self.store
                        .save_export_snapshot(&pipeline.name, &key, &dataset.path, &export.id)
                        .await?;
                    // Validated when the export's run ended.
                    let name = dataset::connector_feedback_dataset(&export.connector_code);
                    if let Some(rows) = self.store.dataset_of_run(&name, &export.id).await? {
                        let mut file = std::fs::File::open(rows.path())
                            .map_err(Error::file("opening", rows.path()))?;
                        std::io::copy(&mut file, &mut feedback_out)
                            .map_err(Error::file("copying feedback to", &feedback))?;
                    }
                }
                Err(reason) => failure = failure.or(Some(reason)),
            }
        }
        feedback_out
            .flush()
            .map_err(Error::file("writing", &feedback))?;
        drop(feedback_out);
        if !exports.is_empty() {
            let name = dataset::feedback_dataset(&pipeline.name);
            self.commit_dataset(&name, None, self.stage_file(&name, &feedback)?)
                .await?;
        }
        Ok(failure)
    }

    /// The validated output of a successful step's run, as its run recorded it.
    async fn output_of(&self, run: &Run) -> Result<Dataset> {
        let name = dataset::connector_dataset(&run.connector_code);
        self.store
            .dataset_of_run(&name, &run.id)
            .await?
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "the output of run {} was not recorded as a version of {name}",
                    run.id
                ))
            })
    }

    /// Runs one step; `Ok(Err(reason))` when the connector run did not succeed.
    async fn step(
        &self,
        run: &PipelineRun,
        position: i64,
        kind: StepKind,
        step: &Step,
        feed: Option<Feed<'_>>,
    ) -> Result<Result<Run, String>> {
        let mut record = StepRun {
            position,
            kind,
            connector: step.connector.clone(),
            run_id: None,
            status: "starting".into(),
            reason: None,
            rows_in: feed.as_ref().map(|feed| feed.rows),
            rows_out: None,
        };
        let request = RunRequest {
            connector: step.connector.clone(),
            options: step.options.clone(),
            limits: step.limits,
            state_key: Some(crate::state::pipeline_step_key(&run.pipeline, position)),
            ..Default::default()
        };
        let inputs = RunInputs {
            input: feed.as_ref().map(|feed| feed.path.to_path_buf()),
            previous: feed.and_then(|feed| feed.previous).map(Path::to_path_buf),
        };
        let outcome: Result<Run> = async {
            // Steps count against the same limit as queued runs.
            let _slot = self.run_slots.acquire().await.expect("never closed");
            let started = self.start_with(request, &inputs).await?;
            record.run_id = Some(started.id.clone());
            record.status = started.status.to_string();
            self.store.save_pipeline_step(&run.id, &record).await?;
            // A run that fails as transient is tried again per its policy; the step is
            // its last attempt.
            self.execute_with_retries(started).await
        }
        .await;
        let result = match outcome {
            Ok(finished) => {
                record.run_id = Some(finished.id.clone());
                record.status = finished.status.to_string();
                record.reason = finished.reason.clone();
                record.rows_out = finished.output_rows;
                if finished.status == RunStatus::Succeeded {
                    Ok(finished)
                } else {
                    Err(format!(
                        "step {position} ({}) {}: {}",
                        record.connector,
                        finished.status,
                        finished.reason.unwrap_or_default()
                    ))
                }
            }
            Err(e) => {
                record.status = "failed".into();
                record.reason = Some(e.to_string());
                Err(format!(
                    "step {position} ({}) failed: {e}",
                    record.connector
                ))
            }
        };
        self.store.save_pipeline_step(&run.id, &record).await?;
        Ok(result)
    }
}

/// The rows a data service or an export gets from `from` (of `rows` rows): a copy mapped at
/// `to` when the step maps columns, else `from` itself.
fn mapped(step: &Step, from: &Path, rows: i64, to: PathBuf) -> Result<(PathBuf, i64)> {
    match &step.columns {
        Some(columns) => {
            let rows = Mapping::new(columns).apply(from, &to)?;
            Ok((to, rows))
        }
        None => Ok((from.to_path_buf(), rows)),
    }
}

/// Writes the main source's rows, each completed with the columns of the additional
/// sources' rows of the same `id`; a column the row already has is kept. Returns the rows.
fn join_on_id(main: &Path, additional: &[PathBuf], out: &Path) -> Result<i64> {
    let mut extra: HashMap<String, Map<String, Value>> = HashMap::new();
    for path in additional {
        for row in dataset::read_rows(path)? {
            let Some(id) = row.get(PRODUCT_ID).and_then(delta::key_text) else {
                continue;
            };
            let columns = extra.entry(id).or_default();
            for (column, value) in row {
                columns.entry(column).or_insert(value);
            }
        }
    }
    let mut writer = BufWriter::new(crate::private::create_file(out)?);
    let mut rows = 0;
    for mut row in dataset::read_rows(main)? {
        if let Some(columns) = row
            .get(PRODUCT_ID)
            .and_then(delta::key_text)
            .and_then(|id| extra.get(&id))
        {
            for (column, value) in columns {
                row.entry(column.clone()).or_insert_with(|| value.clone());
            }
        }
        serde_json::to_writer(&mut writer, &row)
            .map_err(std::io::Error::from)
            .and_then(|()| writer.write_all(b"\n"))
            .map_err(Error::file("writing", out))?;
        rows += 1;
    }
    writer.flush().map_err(Error::file("writing", out))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additional_sources_fill_in_columns_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let main = write(
            "main",
            "{\"id\":1,\"title\":\"a\"}\n{\"id\":\"2\",\"title\":\"b\"}\n{\"title\":\"no id\"}\n",
        );
        let prices = write("prices", "{\"id\":\"1\",\"price\":3,\"title\":\"ignored\"}\n{\"id\":2,\"price\":4}\n{\"id\":9,\"price\":5}\n");
        let out = dir.path().join("out");
        assert_eq!(join_on_id(&main, &[prices], &out).unwrap(), 3);
        let rows = dataset::read_rows(&out).unwrap();
        assert_eq!(
            Value::Object(rows[0].clone()),
            serde_json::json!({"id": 1, "title": "a", "price": 3})
        );
        assert_eq!(rows[1]["price"], 4);
        assert_eq!(
            Value::Object(rows[2].clone()),
            serde_json::json!({"title": "no id"})
        );
    }

    #[test]
    fn schedules_take_five_or_six_fields() {
        assert!(parse_schedule("*/5 * * * *").is_ok());
        assert!(parse_schedule("* * * * * *").is_ok());
        assert!(parse_schedule("every minute")
            .unwrap_err()
            .starts_with("schedule:"));
    }

    #[test]
    fn pipelines_are_checked_on_parse() {
        let ok = "name: shop\nsources: [{connector: a}]\nservices: [{connector: b, options: {X: '1'}}]\n";
        let pipeline = Pipeline::parse(ok, false).unwrap();
        assert_eq!(pipeline.services[0].options["X"], "1");
        let err = Pipeline::parse("name: Shop\nsources: [{connector: a}]\n", false).unwrap_err();
        assert!(err.starts_with("name:"), "{err}");
        let err = Pipeline::parse("name: shop\nsources: []\n", false).unwrap_err();
        assert!(err.starts_with("sources:"), "{err}");
        let err = Pipeline::parse("name: shop\nsources: [{connector: a, option: {}}]\n", false)
            .unwrap_err();
        assert!(
            err.starts_with("sources[0]: unknown field `option`"),
            "{err}"
        );
        let err =
            Pipeline::parse("name: shop\nsources: [{listener: orders}]\n", false).unwrap_err();
        assert!(err.contains("no listener \"orders\" is declared"), "{err}");
        let err = Pipeline::parse(
            "name: shop\nsources: [{listener: o, connector: a}]\n",
            false,
        )
        .unwrap_err();
        assert!(err.contains("either a connector or a listener"), "{err}");
        let listening = "name: shop\nlisteners: [{name: orders, auth: {type: token}}]\nsources: [{listener: orders}]\ntrigger: {on_events: true, debounce_secs: 5}\n";
        let pipeline = Pipeline::parse(listening, false).unwrap();
        assert_eq!(pipeline.listeners[0].records_locator, "$");
        assert!(matches!(&pipeline.sources[0], Source::Listener(l) if l.listener == "orders"));
        let twice = "name: shop\nlisteners: [{name: o, auth: {type: token}}, {name: o, auth: {type: token}}]\nsources: [{listener: o}]\n";
        let err = Pipeline::parse(twice, false).unwrap_err();
        assert!(
            err.starts_with("listeners[1] (o): a listener of that name"),
            "{err}"
        );
        let bad_path = "name: shop\nlisteners: [{name: o, records_locator: '$[', auth: {type: token}}]\nsources: [{listener: o}]\n";
        let err = Pipeline::parse(bad_path, false).unwrap_err();
        assert!(err.contains("records_locator"), "{err}");
        let no_listener = "name: shop\nsources: [{connector: a}]\ntrigger: {on_events: true}\n";
        let err = Pipeline::parse(no_listener, false).unwrap_err();
        assert!(err.starts_with("trigger:"), "{err}");
    }
}
