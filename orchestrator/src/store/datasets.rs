//! Dataset versions: immutable files of rows, recorded with their row count and columns.

use super::rows::{DatasetRow, DATASET_COLUMNS};
use super::{is_unique_violation, timestamp, Store};
use crate::error::{Error, Object, Result};
use crate::model::Dataset;

impl Store {
    /// Records a dataset version; false when that version of the dataset exists already.
    pub async fn insert_dataset(&self, dataset: &Dataset) -> Result<bool> {
        let what = format!("dataset {} version {}", dataset.name, dataset.version);
        let columns = serde_json::to_string(&dataset.columns)
            .map_err(Error::json(format!("encoding the columns of {what}")))?;
        let inserted = sqlx::query(
            "INSERT INTO datasets (name, version, run_id, path, rows_count, columns, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&dataset.name)
        .bind(dataset.version)
        .bind(&dataset.run_id)
        .bind(&dataset.path)
        .bind(dataset.rows)
        .bind(columns)
        .bind(timestamp(dataset.created_at))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(Error::store(format!("recording {what}"))(e)),
        }
    }

    pub async fn latest_dataset(&self, name: &str) -> Result<Option<Dataset>> {
        sqlx::query_as::<_, DatasetRow>(&format!(
            "SELECT {DATASET_COLUMNS} FROM datasets WHERE name = $1 ORDER BY version DESC LIMIT 1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::store(format!(
            "reading the latest version of dataset {name}"
        )))?
        .map(Dataset::try_from)
        .transpose()
    }

    /// Version `version` of dataset `name`.
    pub async fn dataset_version(&self, name: &str, version: i64) -> Result<Dataset> {
        sqlx::query_as::<_, DatasetRow>(&format!(
            "SELECT {DATASET_COLUMNS} FROM datasets WHERE name = $1 AND version = $2"
        ))
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::store(format!(
            "reading version {version} of dataset {name}"
        )))?
        .map(Dataset::try_from)
        .transpose()?
        .ok_or_else(|| Error::not_found(Object::Dataset, format!("{name} v{version}")))
    }

    /// Every version of a dataset, newest first.
    pub async fn datasets(&self, name: &str) -> Result<Vec<Dataset>> {
        sqlx::query_as::<_, DatasetRow>(&format!(
            "SELECT {DATASET_COLUMNS} FROM datasets WHERE name = $1 ORDER BY version DESC"
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::store(format!(
            "listing the versions of dataset {name}"
        )))?
        .into_iter()
        .map(Dataset::try_from)
        .collect()
    }

    /// The version of dataset `name` that run `run_id` made, if it made one.
    pub async fn dataset_of_run(&self, name: &str, run_id: &str) -> Result<Option<Dataset>> {
        sqlx::query_as::<_, DatasetRow>(&format!(
            "SELECT {DATASET_COLUMNS} FROM datasets WHERE name = $1 AND run_id = $2"
        ))
        .bind(name)
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::store(format!(
            "reading the version of dataset {name} run {run_id} made"
        )))?
        .map(Dataset::try_from)
        .transpose()
    }
}
