//! Registered connectors.

use chrono::{DateTime, Utc};

use super::manifest::Manifest;

/// A registered connector version.
#[derive(Debug, Clone)]
pub struct ConnectorVersion {
    pub version: i64,
    pub manifest: Manifest,
    pub created_at: DateTime<Utc>,
}

/// The outcome of registering a manifest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Registration {
    pub code: String,
    pub version: i64,
    /// False when the manifest equals the latest registered version.
    pub created: bool,
}
