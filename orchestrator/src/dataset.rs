//! Datasets: immutable, versioned JSONL files of flat rows. The output of a successful run
//! (or pipeline step) becomes the next version of a named dataset; nothing else does.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::Cde;

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

/// Rows and the column set of a JSONL file; a line that is not a JSON object is an error
/// naming the file and line.
pub fn scan(path: &Path) -> Result<(i64, Vec<String>)> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, vec![])),
        Err(e) => return Err(e.into()),
    };
    let mut rows = 0;
    let mut columns = BTreeSet::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let row: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&line).map_err(|e| {
                Error::InvalidConfig(format!(
                    "{} line {}: not a JSON object: {e}",
                    path.display(),
                    number + 1
                ))
            })?;
        columns.extend(row.into_iter().map(|(column, _)| column));
        rows += 1;
    }
    Ok((rows, columns.into_iter().collect()))
}

/// Places `source` at `target` without copying when both are on one file system.
pub fn link_or_copy(source: &Path, target: &Path) -> Result<()> {
    if let Some(dir) = target.parent() {
        crate::private::create_dir(dir)?;
    }
    if !source.exists() {
        std::fs::File::create(target)?;
        return Ok(());
    }
    if std::fs::hard_link(source, target).is_err() {
        std::fs::copy(source, target)?;
    }
    Ok(())
}

impl Cde {
    /// Records the rows in `file` as the next version of dataset `name`. The file is linked
    /// (or copied) into the data directory and made read-only; a missing file is an empty
    /// dataset. `known` is its row count and sorted columns when already counted (a run's
    /// summary has them); otherwise the file is scanned.
    pub async fn commit_dataset(
        &self,
        name: &str,
        run_id: Option<&str>,
        file: &Path,
        known: Option<(i64, Vec<String>)>,
    ) -> Result<Dataset> {
        let (rows, columns) = match known {
            Some(known) => known,
            None => scan(file)?,
        };
        let version = self
            .store
            .latest_dataset(name)
            .await?
            .map_or(1, |d| d.version + 1);
        let path = self
            .config
            .data_dir
            .join("datasets")
            .join(name)
            .join(format!("{version}.jsonl"));
        if path.exists() {
            // Left by an attempt that did not get recorded; it is not a dataset.
            std::fs::remove_file(&path)?;
        }
        link_or_copy(file, &path)?;
        crate::private::seal_file(&path)?;
        let dataset = Dataset {
            name: name.to_owned(),
            version,
            run_id: run_id.map(str::to_owned),
            path: path.display().to_string(),
            rows,
            columns,
            created_at: Utc::now(),
        };
        self.store.insert_dataset(&dataset).await?;
        Ok(dataset)
    }
}

/// The dataset of a connector's standalone runs.
pub fn connector_dataset(code: &str) -> String {
    format!("connector/{code}")
}

/// A pipeline's feed.
pub fn pipeline_dataset(pipeline: &str) -> String {
    format!("pipeline/{pipeline}")
}

/// The feedback a pipeline's exports gave, joined into its next run.
pub fn feedback_dataset(pipeline: &str) -> String {
    format!("pipeline/{pipeline}/feedback")
}

/// Where a standalone run's inputs come from.
#[derive(Debug, Clone, Default)]
pub struct RunInputs {
    /// The feed (`input`) of a data service or export.
    pub input: Option<PathBuf>,
    /// For an export delta: the snapshot to compare with; none means every row is new.
    pub previous: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_counts_rows_and_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        std::fs::write(&path, "{\"id\":1,\"b\":2}\n\n{\"id\":2,\"___x\":3}\n").unwrap();
        assert_eq!(
            scan(&path).unwrap(),
            (2, vec!["___x".into(), "b".into(), "id".into()])
        );
        std::fs::write(&path, "{\"id\":1}\n[1]\n").unwrap();
        let err = scan(&path).unwrap_err().to_string();
        assert!(
            err.contains("rows.jsonl line 2: not a JSON object"),
            "{err}"
        );
        assert_eq!(scan(&dir.path().join("missing")).unwrap(), (0, vec![]));
    }
}
