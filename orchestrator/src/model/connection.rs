//! Connections: a connector with the option values an operator saved (secrets included),
//! checked before saving, with what a preview run discovered of the rows it produces.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A saved connection. In answers, password values are masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Connection {
    /// kebab-case, unique.
    pub name: String,
    /// The connector's code.
    pub connector: String,
    pub values: BTreeMap<String, String>,
    /// The last check's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<ConnectionCheck>,
    /// What the last discovery found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Discovery>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What saving a connection takes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveConnection {
    /// The connector's code.
    pub connector: String,
    /// Option values; a password left out (or given as `****`) keeps the saved one.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Save even though the check fails.
    #[serde(default)]
    pub save_anyway: bool,
}

/// The outcome of a connection's check: its options against the manifest, then the
/// connector's own check (an HTTP connector's first request, or the health check run with
/// the values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConnectionCheck {
    pub ok: bool,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The option the failure is about, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    pub at: DateTime<Utc>,
}

/// What a preview run of a source connection produced: its columns and first rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Discovery {
    /// The preview run.
    pub run_id: String,
    /// Every column of the rows kept, in order of first appearance.
    pub columns: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Value>,
    pub at: DateTime<Utc>,
}
