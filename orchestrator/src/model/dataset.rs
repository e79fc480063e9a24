//! Datasets: immutable, versioned JSONL files of flat rows.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dataset {
    /// `connector/<code>` for standalone runs, `pipeline/<name>` for a pipeline's feed.
    pub name: String,
    pub version: i64,
    /// The run whose output this is, if one run made it.
    pub run_id: Option<String>,
    pub path: String,
    pub rows: i64,
    /// The union of the rows' keys, sorted; hidden columns start with `___`.
    pub columns: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl Dataset {
    pub fn path(&self) -> &Path {
        Path::new(&self.path)
    }
}

/// Where a standalone run's inputs come from.
#[derive(Debug, Clone, Default)]
pub struct RunInputs {
    /// The feed (`input`) of a data service or export.
    pub input: Option<PathBuf>,
    /// For an export delta: the snapshot to compare with; none means every row is new.
    pub previous: Option<PathBuf>,
}
