//! Runs' log lines, copied from their `logs.jsonl`, and how far that copy got.

use chrono::{DateTime, Utc};
use container_api::LogLine;

use super::rows::{decode_timestamp, LogRow, LOG_COLUMNS};
use super::{placeholders, timestamp, Store};
use crate::error::{Error, Result};

/// The columns of a `run_logs` row as [`Store::append_logs`] writes them.
const LOG_INSERT_COLUMNS: usize = 7;

/// Log lines per `INSERT`: their parameters stay below SQLite's oldest limit (999).
const LOG_LINES_PER_INSERT: usize = 999 / LOG_INSERT_COLUMNS;

impl Store {
    pub async fn log_offset(&self, run_id: &str) -> Result<u64> {
        let offset: i64 = sqlx::query_scalar("SELECT log_offset FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&self.pool)
            .await
            .map_err(Error::store(format!(
                "reading the log offset of run {run_id}"
            )))?;
        Ok(offset as u64)
    }

    /// The sequence number the run's next log line gets.
    pub async fn next_log_seq(&self, run_id: &str) -> Result<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(seq) + 1, 0) FROM run_logs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&self.pool)
            .await
            .map_err(Error::store(format!(
                "reading the next log line number of run {run_id}"
            )))
    }

    /// Appends log lines numbered from `first_seq` and moves the run's log file offset,
    /// atomically, a multi-row `INSERT` per [`LOG_LINES_PER_INSERT`] lines. The
    /// transaction only writes: in SQLite's WAL mode a transaction that reads before it
    /// writes fails at once when another writer got in between.
    pub async fn append_logs(
        &self,
        run_id: &str,
        first_seq: i64,
        lines: &[LogLine],
        new_offset: u64,
    ) -> Result<()> {
        let op = || format!("appending {} log lines to run {run_id}", lines.len());
        let mut tx = self.pool.begin().await.map_err(Error::store(op()))?;
        sqlx::query("UPDATE runs SET log_offset = $2 WHERE id = $1")
            .bind(run_id)
            .bind(new_offset as i64)
            .execute(&mut *tx)
            .await
            .map_err(Error::store(op()))?;
        for (chunk, first) in lines
            .chunks(LOG_LINES_PER_INSERT)
            .zip((first_seq..).step_by(LOG_LINES_PER_INSERT))
        {
            let sql = format!(
                "INSERT INTO run_logs (run_id, seq, at, source, level, message, context) VALUES {}",
                placeholders(chunk.len(), LOG_INSERT_COLUMNS)
            );
            let mut insert = sqlx::query(&sql);
            for (seq, line) in (first..).zip(chunk) {
                insert = insert
                    .bind(run_id)
                    .bind(seq)
                    .bind(timestamp(line.at))
                    .bind(line.source.as_str())
                    .bind(&line.level)
                    .bind(&line.message)
                    .bind(line.context.as_ref().map(|c| c.to_string()));
            }
            insert.execute(&mut *tx).await.map_err(Error::store(op()))?;
        }
        tx.commit().await.map_err(Error::store(op()))?;
        Ok(())
    }

    /// The engine's time of the last STDOUT or STDERR line stored for a run: where a
    /// process that takes the run over continues reading the engine's output.
    pub async fn last_output_at(&self, run_id: &str) -> Result<Option<DateTime<Utc>>> {
        let at: Option<String> = sqlx::query_scalar(
            "SELECT MAX(at) FROM run_logs WHERE run_id = $1 AND source IN ('stdout', 'stderr')",
        )
        .bind(run_id)
        .fetch_one(&self.pool)
        .await
        .map_err(Error::store(format!(
            "reading the last output time of run {run_id}"
        )))?;
        at.map(|at| decode_timestamp(&format!("the log lines of run {run_id}"), "at", &at))
            .transpose()
    }

    /// The message of the last line the run logged at `error` or a graver level (masked,
    /// as every stored line is). An error the connector reported through the Container API
    /// wins over stderr, which arrives on its own stream and may interleave in any order.
    pub async fn last_error(&self, run_id: &str) -> Result<Option<String>> {
        sqlx::query_scalar(
            "SELECT message FROM run_logs WHERE run_id = $1
             AND level IN ('error', 'critical', 'alert', 'emergency')
             ORDER BY CASE WHEN source = 'api' THEN 0 ELSE 1 END, seq DESC LIMIT 1",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::store(format!(
            "reading the last error of run {run_id}"
        )))
    }

    /// Log lines with sequence number at least `from`, in order, with their numbers.
    pub async fn logs(&self, run_id: &str, from: i64) -> Result<Vec<(i64, LogLine)>> {
        self.run(run_id).await?;
        sqlx::query_as::<_, LogRow>(&format!(
            "SELECT {LOG_COLUMNS} FROM run_logs WHERE run_id = $1 AND seq >= $2 ORDER BY seq"
        ))
        .bind(run_id)
        .bind(from)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::store(format!(
            "reading the log lines of run {run_id}"
        )))?
        .into_iter()
        .map(|row| row.into_model(run_id))
        .collect()
    }
}
