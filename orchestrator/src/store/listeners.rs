//! Listeners' secrets and what pipeline runs read of their event logs.

use chrono::Utc;

use super::{timestamp, Store};
use crate::error::{Error, Result};
use crate::model::ListenerRead;

impl Store {
    /// The secret of listener `listener` of pipeline `pipeline`, opened.
    pub async fn listener_secret(&self, pipeline: &str, listener: &str) -> Result<Option<String>> {
        let stored: Option<String> = sqlx::query_scalar(
            "SELECT secret FROM listener_secrets WHERE pipeline = $1 AND listener = $2",
        )
        .bind(pipeline)
        .bind(listener)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::store(format!(
            "reading the secret of listener {listener} of pipeline {pipeline}"
        )))?;
        stored
            .map(|stored| {
                self.secrets.open(
                    &stored,
                    &format!("the secret of listener {listener} of pipeline {pipeline}"),
                )
            })
            .transpose()
    }

    /// Stores `secret` (sealed) for the listener; with `replace` false, only when it has
    /// none. Whether it was stored.
    pub async fn save_listener_secret(
        &self,
        pipeline: &str,
        listener: &str,
        secret: &str,
        replace: bool,
    ) -> Result<bool> {
        let on_conflict = match replace {
            true => "DO UPDATE SET secret = excluded.secret, updated_at = excluded.updated_at",
            false => "DO NOTHING",
        };
        let done = sqlx::query(&format!(
            "INSERT INTO listener_secrets (pipeline, listener, secret, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (pipeline, listener) {on_conflict}"
        ))
        .bind(pipeline)
        .bind(listener)
        .bind(self.secrets.seal(secret))
        .bind(timestamp(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(Error::store(format!(
            "saving the secret of listener {listener} of pipeline {pipeline}"
        )))?;
        Ok(done.rows_affected() > 0)
    }

    /// Records what pipeline run `run_id` read of a listener of `pipeline`.
    pub async fn save_listener_read(
        &self,
        run_id: &str,
        pipeline: &str,
        read: &ListenerRead,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO listener_reads (pipeline_run_id, pipeline, listener, start_offset, end_offset, events)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(run_id)
        .bind(pipeline)
        .bind(&read.listener)
        .bind(read.start as i64)
        .bind(read.end as i64)
        .bind(read.events as i64)
        .execute(&self.pool)
        .await
        .map_err(Error::store(format!(
            "recording the read of listener {} by pipeline run {run_id}",
            read.listener
        )))?;
        Ok(())
    }

    /// What pipeline run `run_id` read of its listeners.
    pub async fn listener_reads(&self, run_id: &str) -> Result<Vec<ListenerRead>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT listener, start_offset, end_offset, events FROM listener_reads
             WHERE pipeline_run_id = $1 ORDER BY listener",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::store(format!(
            "reading what pipeline run {run_id} read of its listeners"
        )))?;
        Ok(rows
            .into_iter()
            .map(|(listener, start, end, events)| ListenerRead {
                listener,
                start: start as u64,
                end: end as u64,
                events: events as u64,
            })
            .collect())
    }

    /// The listener's offset (where its pipeline's last successful run stopped reading)
    /// and the events successful runs consumed in all.
    pub async fn listener_offset(&self, pipeline: &str, listener: &str) -> Result<(u64, u64)> {
        let (end, consumed): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT MAX(r.end_offset), CAST(SUM(r.events) AS BIGINT) FROM listener_reads r
             JOIN pipeline_runs p ON p.id = r.pipeline_run_id
             WHERE r.pipeline = $1 AND r.listener = $2 AND p.status = 'succeeded'",
        )
        .bind(pipeline)
        .bind(listener)
        .fetch_one(&self.pool)
        .await
        .map_err(Error::store(format!(
            "reading the offset of listener {listener} of pipeline {pipeline}"
        )))?;
        Ok((end.unwrap_or(0) as u64, consumed.unwrap_or(0) as u64))
    }

    /// Where the last read of the listener by any run of its pipeline ended.
    pub async fn listener_last_read(&self, pipeline: &str, listener: &str) -> Result<u64> {
        let end: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(end_offset) FROM listener_reads WHERE pipeline = $1 AND listener = $2",
        )
        .bind(pipeline)
        .bind(listener)
        .fetch_one(&self.pool)
        .await
        .map_err(Error::store(format!(
            "reading the last read of listener {listener} of pipeline {pipeline}"
        )))?;
        Ok(end.unwrap_or(0) as u64)
    }
}
