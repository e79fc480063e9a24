//! The queries of retention (`cde gc`): what the limits let go, and recording that it went.

use chrono::{DateTime, Utc};

use super::rows::{DatasetRow, ExpiredRunRow};
use super::{status_list, timestamp, Store};
use crate::error::{Error, Result};
use crate::model::{Dataset, RunStatus};

/// A finished run whose directory and logs the retention limits let go.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExpiredRun {
    pub id: String,
    pub connector_code: String,
    pub run_dir: String,
    pub ended_at: DateTime<Utc>,
}

/// What retention keeps: the newest `keep` (0: no count limit) and whatever ended at or
/// after `since` (`None`: no age limit).
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    pub newest: u64,
    pub since: Option<DateTime<Utc>>,
}

impl Store {
    /// Finished runs beyond the newest `keep.newest` of their connector or ended before
    /// `keep.since`, not yet pruned, and not a step of a pipeline run still going.
    pub async fn expired_runs(&self, keep: Keep) -> Result<Vec<ExpiredRun>> {
        sqlx::query_as::<_, ExpiredRunRow>(&format!(
            "SELECT id, connector_code, run_dir, ended FROM (
                SELECT id, connector_code, run_dir, pruned_at, COALESCE(finished_at, created_at) AS ended,
                ROW_NUMBER() OVER (PARTITION BY connector_code
                    ORDER BY COALESCE(finished_at, created_at) DESC, id DESC) AS position
                FROM runs WHERE status IN ({})
             ) ranked
             WHERE pruned_at IS NULL AND (($1 > 0 AND position > $1) OR ($2 <> '' AND ended < $2))
             AND id NOT IN (SELECT s.run_id FROM pipeline_steps s
                 JOIN pipeline_runs p ON p.id = s.pipeline_run_id
                 WHERE p.status = 'running' AND s.run_id IS NOT NULL)
             ORDER BY ended, id",
            status_list(RunStatus::is_finished)
        ))
        .bind(keep.newest as i64)
        .bind(keep.since.map(timestamp).unwrap_or_default())
        .fetch_all(&self.pool)
        .await
        .map_err(Error::store("finding the runs retention lets go"))?
        .into_iter()
        .map(ExpiredRun::try_from)
        .collect()
    }

    /// Deletes a run's log lines and records that its directory is gone.
    pub async fn prune_run(&self, run_id: &str) -> Result<()> {
        let op = || format!("pruning run {run_id}");
        let mut tx = self.pool.begin().await.map_err(Error::store(op()))?;
        sqlx::query("DELETE FROM run_logs WHERE run_id = $1")
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(Error::store(op()))?;
        sqlx::query("UPDATE runs SET pruned_at = $2 WHERE id = $1")
            .bind(run_id)
            .bind(timestamp(Utc::now()))
            .execute(&mut *tx)
            .await
            .map_err(Error::store(op()))?;
        tx.commit().await.map_err(Error::store(op()))?;
        Ok(())
    }

    /// Dataset versions beyond the newest `keep.newest` of their dataset or made before
    /// `keep.since`; never a dataset's latest version, nor an export-delta baseline.
    pub async fn expired_datasets(&self, keep: Keep) -> Result<Vec<Dataset>> {
        sqlx::query_as::<_, DatasetRow>(
            "SELECT name, version, run_id, path, rows_count, columns, created_at FROM (
                SELECT name, version, run_id, path, rows_count, columns, created_at,
                ROW_NUMBER() OVER (PARTITION BY name ORDER BY version DESC) AS position
                FROM datasets
             ) ranked
             WHERE position > 1 AND (($1 > 0 AND position > $1) OR ($2 <> '' AND created_at < $2))
             AND path NOT IN (SELECT path FROM export_snapshots)
             ORDER BY name, version",
        )
        .bind(keep.newest as i64)
        .bind(keep.since.map(timestamp).unwrap_or_default())
        .fetch_all(&self.pool)
        .await
        .map_err(Error::store(
            "finding the dataset versions retention lets go",
        ))?
        .into_iter()
        .map(Dataset::try_from)
        .collect()
    }

    /// Deletes a dataset version's row, unless it became an export-delta baseline meanwhile.
    pub async fn delete_dataset_version(&self, name: &str, version: i64) -> Result<bool> {
        let deleted = sqlx::query(
            "DELETE FROM datasets WHERE name = $1 AND version = $2
             AND path NOT IN (SELECT path FROM export_snapshots)",
        )
        .bind(name)
        .bind(version)
        .execute(&self.pool)
        .await
        .map_err(Error::store(format!(
            "deleting dataset {name} version {version}"
        )))?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Ended pipeline runs beyond the newest `keep.newest` of their pipeline or ended
    /// before `keep.since`, whose work directories are not pruned yet.
    pub async fn expired_pipeline_runs(&self, keep: Keep) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT id FROM (
                SELECT id, pruned_at, COALESCE(finished_at, created_at) AS ended,
                ROW_NUMBER() OVER (PARTITION BY pipeline ORDER BY created_at DESC, id DESC) AS position
                FROM pipeline_runs WHERE status <> 'running'
             ) ranked
             WHERE pruned_at IS NULL AND (($1 > 0 AND position > $1) OR ($2 <> '' AND ended < $2))
             ORDER BY ended, id",
        )
        .bind(keep.newest as i64)
        .bind(keep.since.map(timestamp).unwrap_or_default())
        .fetch_all(&self.pool)
        .await
        .map_err(Error::store("finding the pipeline runs retention lets go"))
    }

    pub async fn prune_pipeline_run(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE pipeline_runs SET pruned_at = $2 WHERE id = $1")
            .bind(id)
            .bind(timestamp(Utc::now()))
            .execute(&self.pool)
            .await
            .map_err(Error::store(format!("pruning pipeline run {id}")))?;
        Ok(())
    }
}
