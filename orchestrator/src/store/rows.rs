//! The rows the store reads, as sqlx decodes them (`any` has no timestamp, enum or JSON
//! type: those are text), and their conversion into the domain's types. A value that does
//! not decode is an [`Error::Store`] naming the row and the column.

use std::fmt::Display;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use container_api::LogLine;
use serde::de::DeserializeOwned;
use sqlx::error::BoxDynError;

use super::retention::ExpiredRun;
use crate::error::{Error, Result};
use crate::model::{ConnectorVersion, Dataset, PipelineRun, Run, StepRun};
use crate::secret::Secrets;

/// The columns of [`RunRow`].
pub(super) const RUN_COLUMNS: &str = "id, connector_code, connector_version, status, reason,
    exit_code, config, options, limits, run_dir, output_rows, created_at, started_at,
    running_at, finished_at, network, state_key, attempt, retry, retry_of, next_attempt,
    not_before, delta";

#[derive(sqlx::FromRow)]
pub(super) struct RunRow {
    id: String,
    connector_code: String,
    connector_version: i64,
    status: String,
    reason: Option<String>,
    exit_code: Option<i64>,
    /// Sealed: it holds password values.
    config: String,
    options: String,
    limits: String,
    run_dir: String,
    output_rows: Option<i64>,
    created_at: String,
    started_at: Option<String>,
    running_at: Option<String>,
    finished_at: Option<String>,
    network: Option<String>,
    state_key: Option<String>,
    attempt: i64,
    retry: String,
    retry_of: Option<String>,
    next_attempt: Option<String>,
    not_before: Option<String>,
    delta: Option<String>,
}

impl RunRow {
    pub(super) fn into_model(self, secrets: &Secrets) -> Result<Run> {
        let row = Decoding(format!("run {}", self.id));
        let config = secrets.open(
            &self.config,
            &format!("the option values of run {}", self.id),
        )?;
        Ok(Run {
            connector_code: self.connector_code,
            connector_version: self.connector_version,
            status: row.parse("status", &self.status)?,
            reason: self.reason,
            exit_code: self.exit_code,
            unmasked_options: row.json("config", &config)?,
            options: row.json("options", &self.options)?,
            limits: row.json("limits", &self.limits)?,
            run_dir: self.run_dir,
            output_rows: self.output_rows,
            delta: self
                .delta
                .map(|delta| row.json("delta", &delta))
                .transpose()?,
            network: self
                .network
                .map(|network| row.parse("network", &network))
                .transpose()?,
            state_key: self.state_key,
            attempt: u32::try_from(self.attempt)
                .map_err(|e| row.error(format_args!("attempt {}: {e}", self.attempt)))?,
            retry: row.json("retry", &self.retry)?,
            retry_of: self.retry_of,
            next_attempt: self.next_attempt,
            not_before: row.optional_timestamp("not_before", self.not_before)?,
            created_at: row.timestamp("created_at", &self.created_at)?,
            started_at: row.optional_timestamp("started_at", self.started_at)?,
            running_at: row.optional_timestamp("running_at", self.running_at)?,
            finished_at: row.optional_timestamp("finished_at", self.finished_at)?,
            id: self.id,
        })
    }
}

/// The columns of [`PipelineRunRow`].
pub(super) const PIPELINE_RUN_COLUMNS: &str =
    "id, pipeline, status, reason, trigger_kind, dataset_version, created_at, finished_at";

#[derive(sqlx::FromRow)]
pub(super) struct PipelineRunRow {
    pub(super) id: String,
    pipeline: String,
    status: String,
    reason: Option<String>,
    trigger_kind: String,
    dataset_version: Option<i64>,
    created_at: String,
    finished_at: Option<String>,
}

impl PipelineRunRow {
    /// The pipeline run with `steps`, its steps in order.
    pub(super) fn into_model(self, steps: Vec<StepRun>) -> Result<PipelineRun> {
        let row = Decoding(format!("pipeline run {}", self.id));
        Ok(PipelineRun {
            pipeline: self.pipeline,
            status: row.parse("status", &self.status)?,
            reason: self.reason,
            trigger: self.trigger_kind,
            dataset_version: self.dataset_version,
            created_at: row.timestamp("created_at", &self.created_at)?,
            finished_at: row.optional_timestamp("finished_at", self.finished_at)?,
            steps,
            id: self.id,
        })
    }
}

/// The columns of [`StepRow`].
pub(super) const STEP_COLUMNS: &str =
    "pipeline_run_id, position, kind, connector, run_id, status, reason, rows_in, rows_out";

#[derive(sqlx::FromRow)]
pub(super) struct StepRow {
    pub(super) pipeline_run_id: String,
    position: i64,
    kind: String,
    connector: String,
    run_id: Option<String>,
    status: String,
    reason: Option<String>,
    rows_in: Option<i64>,
    rows_out: Option<i64>,
}

impl StepRow {
    pub(super) fn into_model(self) -> Result<StepRun> {
        let row = Decoding(format!(
            "step {} of pipeline run {}",
            self.position, self.pipeline_run_id
        ));
        Ok(StepRun {
            position: self.position,
            kind: row.parse("kind", &self.kind)?,
            connector: self.connector,
            run_id: self.run_id,
            status: self.status,
            reason: self.reason,
            rows_in: self.rows_in,
            rows_out: self.rows_out,
        })
    }
}

/// The columns of [`DatasetRow`].
pub(super) const DATASET_COLUMNS: &str =
    "name, version, run_id, path, rows_count, columns, created_at";

#[derive(sqlx::FromRow)]
pub(super) struct DatasetRow {
    name: String,
    version: i64,
    run_id: Option<String>,
    path: String,
    rows_count: i64,
    columns: String,
    created_at: String,
}

impl TryFrom<DatasetRow> for Dataset {
    type Error = Error;

    fn try_from(row: DatasetRow) -> Result<Self> {
        let decoding = Decoding(format!("dataset {} version {}", row.name, row.version));
        Ok(Dataset {
            columns: decoding.json("columns", &row.columns)?,
            created_at: decoding.timestamp("created_at", &row.created_at)?,
            name: row.name,
            version: row.version,
            run_id: row.run_id,
            path: row.path,
            rows: row.rows_count,
        })
    }
}

/// The columns of [`ConnectorRow`].
pub(super) const CONNECTOR_COLUMNS: &str = "code, version, manifest, created_at";

#[derive(sqlx::FromRow)]
pub(super) struct ConnectorRow {
    code: String,
    version: i64,
    manifest: String,
    created_at: String,
}

impl TryFrom<ConnectorRow> for ConnectorVersion {
    type Error = Error;

    fn try_from(row: ConnectorRow) -> Result<Self> {
        let decoding = Decoding(format!("connector {} version {}", row.code, row.version));
        Ok(ConnectorVersion {
            version: row.version,
            manifest: decoding.json("manifest", &row.manifest)?,
            created_at: decoding.timestamp("created_at", &row.created_at)?,
        })
    }
}

/// The columns of [`LogRow`].
pub(super) const LOG_COLUMNS: &str = "seq, at, source, level, message, context";

#[derive(sqlx::FromRow)]
pub(super) struct LogRow {
    seq: i64,
    at: String,
    source: String,
    level: String,
    message: String,
    context: Option<String>,
}

impl LogRow {
    /// The line with its sequence number; `run_id` names it in errors.
    pub(super) fn into_model(self, run_id: &str) -> Result<(i64, LogLine)> {
        let row = Decoding(format!("log line {} of run {run_id}", self.seq));
        let line = LogLine {
            at: row.timestamp("at", &self.at)?,
            source: row.parse("source", &self.source)?,
            level: self.level,
            message: self.message,
            context: self
                .context
                .map(|context| row.json("context", &context))
                .transpose()?,
        };
        Ok((self.seq, line))
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ExpiredRunRow {
    id: String,
    connector_code: String,
    run_dir: String,
    /// When it ended, or was created if it never did.
    ended: String,
}

impl TryFrom<ExpiredRunRow> for ExpiredRun {
    type Error = Error;

    fn try_from(row: ExpiredRunRow) -> Result<Self> {
        let decoding = Decoding(format!("run {}", row.id));
        Ok(ExpiredRun {
            ended_at: decoding.timestamp("ended", &row.ended)?,
            id: row.id,
            connector_code: row.connector_code,
            run_dir: row.run_dir,
        })
    }
}

/// Decodes a value read as text, or names the row and the column it failed on.
pub(super) fn decode_timestamp(row: &str, column: &str, text: &str) -> Result<DateTime<Utc>> {
    Decoding(row.to_owned()).timestamp(column, text)
}

/// The row being decoded, as errors name it: `run 0190…`.
struct Decoding(String);

impl Decoding {
    /// `what` failed to decode: `status "weird": Matching variant not found`.
    fn error(&self, what: impl Display) -> Error {
        let message: BoxDynError = what.to_string().into();
        Error::Store {
            op: format!("reading {}", self.0),
            source: sqlx::Error::Decode(message),
        }
    }

    fn timestamp(&self, column: &str, text: &str) -> Result<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|e| self.error(format_args!("{column} {text:?}: {e}")))
    }

    fn optional_timestamp(
        &self,
        column: &str,
        text: Option<String>,
    ) -> Result<Option<DateTime<Utc>>> {
        text.map(|text| self.timestamp(column, &text)).transpose()
    }

    /// An enum stored by name (`timed_out`), or anything else `FromStr` reads.
    fn parse<T>(&self, column: &str, text: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        text.parse()
            .map_err(|e| self.error(format_args!("{column} {text:?}: {e}")))
    }

    fn json<T: DeserializeOwned>(&self, column: &str, text: &str) -> Result<T> {
        // Not the text in the message: it may be a configuration holding secrets.
        serde_json::from_str(text).map_err(|e| self.error(format_args!("{column}: {e}")))
    }
}
