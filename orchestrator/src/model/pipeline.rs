//! Pipelines and their runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::limits::LimitsOverride;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// kebab-case, unique.
    pub name: String,
    /// A cron expression (`min hour day month weekday`, or with seconds first); `cde server`
    /// starts a run at each occurrence unless one is still going.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Data sources: the first is the main one; the others are joined to it on `id`.
    pub sources: Vec<Step>,
    /// Data services, run one after another in stage order (import, intermediate, export).
    #[serde(default)]
    pub services: Vec<Step>,
    /// Exports and export deltas, run side by side on the final feed.
    #[serde(default)]
    pub exports: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub connector: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: LimitsOverride,
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
