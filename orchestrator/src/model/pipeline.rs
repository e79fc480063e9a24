//! Pipelines and their runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use super::limits::LimitsOverride;
use super::listener::Listener;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// kebab-case, unique.
    pub name: String,
    /// A cron expression (`min hour day month weekday`, or with seconds first); `cde server`
    /// starts a run at each occurrence unless one is still going.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Webhook listeners, served at `/hooks/{pipeline}/{listener}`; a source
    /// `{listener: NAME}` reads what one received since the last successful run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Listener>,
    /// Starts a run when a listener of this pipeline receives events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// Data sources: the first is the main one; the others are joined to it on `id`.
    pub sources: Vec<Source>,
    /// Data services, run one after another in stage order (import, intermediate, export).
    #[serde(default)]
    pub services: Vec<Step>,
    /// Exports and export deltas, run side by side on the final feed.
    #[serde(default)]
    pub exports: Vec<Step>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The connector's code; with `connection`, it may be left out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub connector: String,
    /// A saved connection: its connector, and its values under `options` (which take
    /// precedence), as they are when the pipeline runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: LimitsOverride,
    /// The columns this step gets, in this order and under these names; the others are
    /// dropped. Left out, it gets every column. On a source it applies to the source's
    /// output before the join, and the join key `id` is kept unless a mapping gives `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnMapping>>,
}

/// One column a step gets: `column` of the rows it is given, named `as` (or `column`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapping {
    pub column: String,
    /// The column's name in what the step gets; left out, its own name.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub rename: Option<String>,
}

impl ColumnMapping {
    /// The name the column gets.
    pub fn output(&self) -> &str {
        self.rename.as_deref().unwrap_or(&self.column)
    }
}

/// A data source: a connector run, or the events a listener of the pipeline received
/// since the pipeline's last successful run.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Source {
    Listener(ListenerSource),
    Connector(Step),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerSource {
    /// The name of one of the pipeline's `listeners`.
    pub listener: String,
}

/// Either a connector step or a listener source, read as one shape so that a mistake is
/// reported where it is (an untagged enum would only say that nothing matched).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFields {
    connector: Option<String>,
    connection: Option<String>,
    listener: Option<String>,
    #[serde(default)]
    options: BTreeMap<String, String>,
    #[serde(default)]
    limits: LimitsOverride,
    #[serde(default)]
    columns: Option<Vec<ColumnMapping>>,
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = SourceFields::deserialize(deserializer)?;
        let listener_only = fields.options.is_empty()
            && fields.limits == Default::default()
            && fields.columns.is_none()
            && fields.connection.is_none();
        let step = fields.connector.is_some() || fields.connection.is_some();
        match (step, fields.listener) {
            (true, None) => Ok(Source::Connector(Step {
                connector: fields.connector.unwrap_or_default(),
                connection: fields.connection,
                options: fields.options,
                limits: fields.limits,
                columns: fields.columns,
            })),
            (false, Some(listener)) if listener_only => {
                Ok(Source::Listener(ListenerSource { listener }))
            }
            (false, Some(_)) => Err(serde::de::Error::custom(
                "a listener source takes no options, limits, columns or connection",
            )),
            _ => Err(serde::de::Error::custom(
                "a source names either a connector or a listener (or a connection)",
            )),
        }
    }
}

impl From<Step> for Source {
    fn from(step: Step) -> Self {
        Source::Connector(step)
    }
}

/// When listeners start runs of their pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Start a run when events arrive, unless one is going.
    #[serde(default)]
    pub on_events: bool,
    /// At most one run started by events per this many seconds.
    #[serde(default)]
    pub debounce_secs: u64,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum StepKind {
    Source,
    /// A listener source: no connector run; `connector` names the listener and
    /// `rows_out` counts the events it gave.
    Listener,
    Service,
    Export,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PipelineStatus {
    Running,
    Succeeded,
    Failed,
}

/// One step of a pipeline run: its connector run and the rows it got and gave.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepRun {
    pub position: i64,
    pub kind: StepKind,
    pub connector: String,
    pub run_id: Option<String>,
    /// The connector run's status; `skipped` when an earlier step failed.
    pub status: String,
    pub reason: Option<String>,
    pub rows_in: Option<i64>,
    pub rows_out: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PipelineRun {
    pub id: String,
    pub pipeline: String,
    pub status: PipelineStatus,
    pub reason: Option<String>,
    /// `manual` or `schedule`.
    pub trigger: String,
    /// The version of `pipeline/<name>` this run produced.
    pub dataset_version: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub steps: Vec<StepRun>,
}

impl PipelineStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}
