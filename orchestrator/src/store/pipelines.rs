//! Pipelines, their runs with their steps, and the export snapshots export deltas compare
//! with.

use std::collections::HashMap;

use chrono::Utc;

use super::rows::{PipelineRunRow, StepRow, PIPELINE_RUN_COLUMNS, STEP_COLUMNS};
use super::{is_unique_violation, placeholders, timestamp, Store};
use crate::error::{Error, Object, Result};
use crate::model::{Lease, Pipeline, PipelineRun, StepRun};

/// Pipeline runs whose steps one query reads: their ids stay below SQLite's oldest
/// parameter limit (999).
const PIPELINE_RUNS_PER_STEP_QUERY: usize = 500;

impl Store {
    pub async fn save_pipeline(&self, pipeline: &Pipeline) -> Result<()> {
        let name = &pipeline.name;
        let now = timestamp(Utc::now());
        let definition = serde_json::to_string(pipeline)
            .map_err(Error::json(format!("encoding pipeline {name}")))?;
        let definition = self.secrets.seal(&definition);
        // One statement, so that two saves of one name cannot both try to insert it.
        sqlx::query(
            "INSERT INTO pipelines (name, definition, created_at, updated_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(&definition)
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(Error::store(format!("saving pipeline {name}")))?;
        Ok(())
    }

    pub async fn pipeline(&self, name: &str) -> Result<Pipeline> {
        let definition: String =
            sqlx::query_scalar("SELECT definition FROM pipelines WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(Error::store(format!("reading pipeline {name}")))?
                .ok_or_else(|| Error::not_found(Object::Pipeline, name))?;
        self.pipeline_definition(name, &definition)
    }

    pub async fn pipelines(&self) -> Result<Vec<Pipeline>> {
        let definitions: Vec<(String, String)> =
            sqlx::query_as("SELECT name, definition FROM pipelines ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(Error::store("listing pipelines"))?;
        definitions
            .iter()
            .map(|(name, definition)| self.pipeline_definition(name, definition))
            .collect()
    }

    /// Opens and reads the stored definition of pipeline `name`.
    fn pipeline_definition(&self, name: &str, stored: &str) -> Result<Pipeline> {
        let text = self
            .secrets
            .open(stored, &format!("a pipeline definition ({name})"))?;
        serde_json::from_str(&text).map_err(Error::json(format!("reading pipeline {name}")))
    }

    /// Records a pipeline run as running under `lease`; a conflict when one of the same
    /// pipeline is still going.
    pub async fn insert_pipeline_run(&self, run: &PipelineRun, lease: &Lease) -> Result<()> {
        sqlx::query(
            "INSERT INTO pipeline_runs (id, pipeline, status, trigger_kind, created_at, lease_owner, lease_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&run.id)
        .bind(&run.pipeline)
        .bind(run.status.as_str())
        .bind(&run.trigger)
        .bind(timestamp(run.created_at))
        .bind(&lease.owner)
        .bind(timestamp(lease.until))
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict(format!("pipeline {} is already running", run.pipeline))
            } else {
                Error::store(format!(
                    "recording run {} of pipeline {}",
                    run.id, run.pipeline
                ))(e)
            }
        })?;
        Ok(())
    }

    pub async fn finish_pipeline_run(&self, run: &PipelineRun) -> Result<()> {
        sqlx::query(
            "UPDATE pipeline_runs SET status = $2, reason = $3, dataset_version = $4, finished_at = $5 WHERE id = $1",
        )
        .bind(&run.id)
        .bind(run.status.as_str())
        .bind(&run.reason)
        .bind(run.dataset_version)
        .bind(run.finished_at.map(timestamp))
        .execute(&self.pool)
        .await
        .map_err(Error::store(format!("recording the end of pipeline run {}", run.id)))?;
        Ok(())
    }

    /// Pipeline runs whose executor died (their lease lapsed) end as failed, so the
    /// pipeline can run again.
    pub async fn fail_interrupted_pipeline_runs(&self) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE pipeline_runs SET status = 'failed', reason = 'interrupted: the process running it stopped', finished_at = $1
             WHERE status = 'running' AND (lease_until IS NULL OR lease_until < $1)",
        )
        .bind(timestamp(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(Error::store("failing interrupted pipeline runs"))?
        .rows_affected())
    }

    pub async fn save_pipeline_step(&self, pipeline_run: &str, step: &StepRun) -> Result<()> {
        let op = || {
            format!(
                "saving step {} of pipeline run {pipeline_run}",
                step.position
            )
        };
        let mut tx = self.pool.begin().await.map_err(Error::store(op()))?;
        sqlx::query("DELETE FROM pipeline_steps WHERE pipeline_run_id = $1 AND position = $2")
            .bind(pipeline_run)
            .bind(step.position)
            .execute(&mut *tx)
            .await
            .map_err(Error::store(op()))?;
        sqlx::query(
            "INSERT INTO pipeline_steps (pipeline_run_id, position, kind, connector, run_id, status, reason, rows_in, rows_out)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(pipeline_run)
        .bind(step.position)
        .bind(step.kind.as_str())
        .bind(&step.connector)
        .bind(&step.run_id)
        .bind(&step.status)
        .bind(&step.reason)
        .bind(step.rows_in)
        .bind(step.rows_out)
        .execute(&mut *tx)
        .await
        .map_err(Error::store(op()))?;
        tx.commit().await.map_err(Error::store(op()))?;
        Ok(())
    }

    pub async fn pipeline_run(&self, id: &str) -> Result<PipelineRun> {
        let row = sqlx::query_as::<_, PipelineRunRow>(&format!(
            "SELECT {PIPELINE_RUN_COLUMNS} FROM pipeline_runs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::store(format!("reading pipeline run {id}")))?
        .ok_or_else(|| Error::not_found(Object::PipelineRun, id))?;
        Ok(self.with_steps(vec![row]).await?.remove(0))
    }

    /// Most recent first.
    pub async fn pipeline_runs(&self, pipeline: &str, limit: i64) -> Result<Vec<PipelineRun>> {
        let rows = sqlx::query_as::<_, PipelineRunRow>(&format!(
            "SELECT {PIPELINE_RUN_COLUMNS} FROM pipeline_runs
             WHERE pipeline = $1 ORDER BY created_at DESC LIMIT $2"
        ))
        .bind(pipeline)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::store(format!(
            "listing the runs of pipeline {pipeline}"
        )))?;
        self.with_steps(rows).await
    }

    /// The pipeline runs of `rows`, in their order, each with its steps: one query for
    /// the steps of all of them (per [`PIPELINE_RUNS_PER_STEP_QUERY`]).
    async fn with_steps(&self, rows: Vec<PipelineRunRow>) -> Result<Vec<PipelineRun>> {
        let mut steps: HashMap<String, Vec<StepRun>> = HashMap::new();
        for chunk in rows.chunks(PIPELINE_RUNS_PER_STEP_QUERY) {
            let sql = format!(
                "SELECT {STEP_COLUMNS} FROM pipeline_steps
                 WHERE pipeline_run_id IN {} ORDER BY pipeline_run_id, position",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query_as::<_, StepRow>(&sql);
            for row in chunk {
                query = query.bind(&row.id);
            }
            let op = match chunk {
                [one] => format!("reading the steps of pipeline run {}", one.id),
                _ => format!("reading the steps of {} pipeline runs", chunk.len()),
            };
            for step in query
                .fetch_all(&self.pool)
                .await
                .map_err(Error::store(op))?
            {
                let run = step.pipeline_run_id.clone();
                steps.entry(run).or_default().push(step.into_model()?);
            }
        }
        rows.into_iter()
            .map(|row| {
                let steps = steps.remove(&row.id).unwrap_or_default();
                row.into_model(steps)
            })
            .collect()
    }

    pub async fn export_snapshot(
        &self,
        pipeline: &str,
        export_key: &str,
    ) -> Result<Option<String>> {
        sqlx::query_scalar(
            "SELECT path FROM export_snapshots WHERE pipeline = $1 AND export_key = $2",
        )
        .bind(pipeline)
        .bind(export_key)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::store(format!(
            "reading the snapshot of export {export_key} of pipeline {pipeline}"
        )))
    }

    pub async fn save_export_snapshot(
        &self,
        pipeline: &str,
        export_key: &str,
        path: &str,
        run_id: &str,
    ) -> Result<()> {
        let op = || format!("saving the snapshot of export {export_key} of pipeline {pipeline}");
        let mut tx = self.pool.begin().await.map_err(Error::store(op()))?;
        sqlx::query("DELETE FROM export_snapshots WHERE pipeline = $1 AND export_key = $2")
            .bind(pipeline)
            .bind(export_key)
            .execute(&mut *tx)
            .await
            .map_err(Error::store(op()))?;
        sqlx::query(
            "INSERT INTO export_snapshots (pipeline, export_key, path, run_id, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(pipeline)
        .bind(export_key)
        .bind(path)
        .bind(run_id)
        .bind(timestamp(Utc::now()))
        .execute(&mut *tx)
        .await
        .map_err(Error::store(op()))?;
        tx.commit().await.map_err(Error::store(op()))?;
        Ok(())
    }
}
