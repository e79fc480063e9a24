//! A run: one execution of a connector version, from `queued` to a recorded outcome.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::limits::{Limits, LimitsOverride};
use super::network::Network;
use super::retry::RetryPolicy;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    clap::ValueEnum,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
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
    pub const ACTIVE: [RunStatus; 2] = [RunStatus::Starting, RunStatus::Running];

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn is_finished(self) -> bool {
        !matches!(
            self,
            RunStatus::Queued | RunStatus::Starting | RunStatus::Running
        )
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
    pub unmasked_options: BTreeMap<String, String>,
    /// Option values with passwords masked.
    pub options: BTreeMap<String, String>,
    pub limits: Limits,
    pub run_dir: String,
    pub output_rows: Option<i64>,
    /// An export delta's input: how many rows are new, modified, unchanged and deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaCounts>,
    /// The network the run request asked for, instead of its manifest's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Where the run's incremental state comes from and, if it succeeds, goes to:
    /// `connector/<code>/<hash of its non-secret options>` or `pipeline/<name>/<step>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_key: Option<String>,
    /// Which attempt of its connector run this is: 1, then 2 for its first retry.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The retry policy it was submitted with (the request's, else its manifest's).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// The first attempt's id, on every later attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
    /// The attempt queued after this one failed as transient (or lost its container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<String>,
    /// A queued retry starts no earlier than this, when its backoff is over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
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
    pub network: Option<Network>,
    /// The key of the run's incremental state when it is not the connector's own (a
    /// pipeline step's); set by cde, never by a request.
    #[serde(skip)]
    pub state_key: Option<String>,
    /// How a run that fails as transient (or loses its container) is retried, instead of
    /// its manifest's `retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
}

fn first_attempt() -> u32 {
    1
}

/// How a run ended.
#[derive(Debug)]
pub struct Ending {
    pub status: RunStatus,
    pub reason: String,
    pub exit_code: Option<i64>,
}

impl Ending {
    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            status: RunStatus::Failed,
            reason: reason.into(),
            exit_code: None,
        }
    }

    pub fn cancelled(exit_code: Option<i64>) -> Self {
        Self {
            status: RunStatus::Cancelled,
            reason: "cancelled".into(),
            exit_code,
        }
    }
}

impl Run {
    pub fn output_path(&self) -> PathBuf {
        Path::new(&self.run_dir).join("output/output.jsonl")
    }

    /// The values of its password options, which must never reach a file unmasked.
    pub fn secrets(&self) -> Vec<String> {
        self.unmasked_options
            .iter()
            .filter(|(name, value)| self.options.get(*name) != Some(value) && !value.is_empty())
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// The first attempt's id: its own, or the one it retries.
    pub fn first_attempt(&self) -> &str {
        self.retry_of.as_deref().unwrap_or(&self.id)
    }

    /// Whether a queued run may start at `now`: its backoff, if it has one, is over.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.not_before.is_none_or(|at| at <= now)
    }

    pub fn end(&mut self, ending: Ending) {
        self.status = ending.status;
        self.reason = Some(ending.reason);
        self.exit_code = ending.exit_code;
        self.finished_at = Some(Utc::now());
    }
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub connector: Option<String>,
    pub limit: Option<i64>,
}

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in RunStatus::VARIANTS.iter().copied() {
            assert_eq!(status.as_str().parse::<RunStatus>().unwrap(), status);
        }
        assert_eq!(
            serde_json::to_string(&RunStatus::TimedOut).unwrap(),
            "\"timed_out\""
        );
    }
}

/// A page of output records.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct OutputPage {
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<serde_json::Value>,
    pub offset: usize,
    /// The `offset` of the next page; null when there are no more records (yet: a running
    /// run may still add some).
    pub next_offset: Option<usize>,
}

/// How many rows of an export delta's input fell in each category.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
pub struct DeltaCounts {
    pub new: u64,
    pub modified: u64,
    pub unchanged: u64,
    pub deleted: u64,
}
