//! Runs: their records, the leases of the processes executing them, and cancellation.

use chrono::Utc;

use super::rows::{decode_timestamp, RunRow, RUN_COLUMNS};
use super::{timestamp, Store};
use crate::error::{Error, Object, Result};
use crate::model::{Lease, Leased, Run, RunFilter, RunStatus};

impl Store {
    /// Records a new run: queued, or (with a lease) already started by its holder.
    pub async fn insert_run(&self, run: &Run, lease: Option<&Lease>) -> Result<()> {
        let id = &run.id;
        let encoding = |what: &str| Error::json(format!("encoding the {what} of run {id}"));
        let config =
            serde_json::to_string(&run.unmasked_options).map_err(encoding("option values"))?;
        let options = serde_json::to_string(&run.options).map_err(encoding("masked options"))?;
        let limits = serde_json::to_string(&run.limits).map_err(encoding("limits"))?;
        let retry = serde_json::to_string(&run.retry).map_err(encoding("retry policy"))?;
        let delta = run
            .delta
            .map(|delta| serde_json::to_string(&delta))
            .transpose()
            .map_err(encoding("delta counts"))?;
        sqlx::query(
            "INSERT INTO runs (id, connector_code, connector_version, status, config, options, limits,
             run_dir, created_at, started_at, lease_owner, lease_until, network, state_key,
             attempt, retry, retry_of, not_before, delta)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        )
        .bind(id)
        .bind(&run.connector_code)
        .bind(run.connector_version)
        .bind(run.status.as_str())
        .bind(self.secrets.seal(&config))
        .bind(options)
        .bind(limits)
        .bind(&run.run_dir)
        .bind(timestamp(run.created_at))
        .bind(run.started_at.map(timestamp))
        .bind(lease.map(|lease| lease.owner.as_str()))
        .bind(lease.map(|lease| timestamp(lease.until)))
        .bind(run.network.as_ref().map(|network| network.to_string()))
        .bind(&run.state_key)
        .bind(i64::from(run.attempt))
        .bind(retry)
        .bind(&run.retry_of)
        .bind(run.not_before.map(timestamp))
        .bind(delta)
        .execute(&self.pool)
        .await
        .map_err(Error::store(format!("recording run {id}")))?;
        Ok(())
    }

    /// Writes the run's progress, unless it already ended (a cancelled queued run, say).
    /// Returns false when the stored run had ended. An ended run keeps no secret: its
    /// configuration becomes its masked option values.
    pub async fn update_run(&self, run: &Run) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE runs SET status = $2, reason = $3, exit_code = $4, output_rows = $5,
             started_at = $6, running_at = $7, finished_at = $8,
             config = CASE WHEN $9 = 1 THEN options ELSE config END, next_attempt = $10
             WHERE id = $1 AND status IN ('queued', 'starting', 'running')",
        )
        .bind(&run.id)
        .bind(run.status.as_str())
        .bind(&run.reason)
        .bind(run.exit_code)
        .bind(run.output_rows)
        .bind(run.started_at.map(timestamp))
        .bind(run.running_at.map(timestamp))
        .bind(run.finished_at.map(timestamp))
        .bind(i64::from(run.status.is_finished()))
        .bind(&run.next_attempt)
        .execute(&self.pool)
        .await
        .map_err(Error::store(format!("updating run {}", run.id)))?;
        Ok(updated.rows_affected() == 1)
    }

    /// Forgets the next attempt of an ended run, when it could not be queued after all.
    pub async fn clear_next_attempt(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE runs SET next_attempt = NULL WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(Error::store(format!(
                "clearing the next attempt of run {id}"
            )))?;
        Ok(())
    }

    /// Moves a queued run to `starting` under `lease`; false if someone else did (or it
    /// was cancelled).
    pub async fn claim(&self, run: &Run, lease: &Lease) -> Result<bool> {
        let claimed = sqlx::query(
            "UPDATE runs SET status = 'starting', started_at = $2, lease_owner = $3, lease_until = $4
             WHERE id = $1 AND status = 'queued'",
        )
        .bind(&run.id)
        .bind(run.started_at.map(timestamp))
        .bind(&lease.owner)
        .bind(timestamp(lease.until))
        .execute(&self.pool)
        .await
        .map_err(Error::store(format!("claiming run {}", run.id)))?;
        Ok(claimed.rows_affected() == 1)
    }

    /// The lease held on a run or a pipeline run, if any.
    pub async fn lease(&self, on: Leased, id: &str) -> Result<Option<Lease>> {
        let (query, object) = match on {
            Leased::Run => (
                "SELECT lease_owner, lease_until FROM runs WHERE id = $1",
                Object::Run,
            ),
            Leased::PipelineRun => (
                "SELECT lease_owner, lease_until FROM pipeline_runs WHERE id = $1",
                Object::PipelineRun,
            ),
        };
        let held: Option<(Option<String>, Option<String>)> = sqlx::query_as(query)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::store(format!("reading the lease of {object} {id}")))?;
        let (owner, until) = held.ok_or_else(|| Error::not_found(object, id))?;
        Ok(match (owner, until) {
            (Some(owner), Some(until)) => Some(Lease {
                owner,
                until: decode_timestamp(&format!("{object} {id}"), "lease_until", &until)?,
            }),
            _ => None,
        })
    }

    /// Extends the lease on a started run or a running pipeline run; false when its
    /// holder is someone else now, or it ended.
    pub async fn renew_lease(&self, on: Leased, id: &str, lease: &Lease) -> Result<bool> {
        let (query, object) = match on {
            Leased::Run => (
                "UPDATE runs SET lease_until = $3
                 WHERE id = $1 AND lease_owner = $2 AND status IN ('starting', 'running')",
                Object::Run,
            ),
            Leased::PipelineRun => (
                "UPDATE pipeline_runs SET lease_until = $3
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                Object::PipelineRun,
            ),
        };
        let renewed = sqlx::query(query)
            .bind(id)
            .bind(&lease.owner)
            .bind(timestamp(lease.until))
            .execute(&self.pool)
            .await
            .map_err(Error::store(format!("renewing the lease on {object} {id}")))?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Takes over a started run whose lease has lapsed (its holder is gone); false when
    /// the run has ended or its holder is still renewing.
    pub async fn take_over(&self, run_id: &str, lease: &Lease) -> Result<bool> {
        let taken = sqlx::query(
            "UPDATE runs SET lease_owner = $2, lease_until = $3
             WHERE id = $1 AND status IN ('starting', 'running')
             AND (lease_until IS NULL OR lease_until < $4)",
        )
        .bind(run_id)
        .bind(&lease.owner)
        .bind(timestamp(lease.until))
        .bind(timestamp(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(Error::store(format!("taking over run {run_id}")))?;
        Ok(taken.rows_affected() == 1)
    }

    /// Cancels a queued run at once; returns false when it is not queued.
    pub async fn cancel_queued(&self, id: &str) -> Result<bool> {
        let cancelled = sqlx::query(
            "UPDATE runs SET status = 'cancelled', reason = 'cancelled', finished_at = $2,
             config = options
             WHERE id = $1 AND status = 'queued'",
        )
        .bind(id)
        .bind(timestamp(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(Error::store(format!("cancelling queued run {id}")))?;
        Ok(cancelled.rows_affected() == 1)
    }

    /// Flags a started run for cancellation; its executor records the outcome.
    pub async fn request_cancel(&self, id: &str) -> Result<bool> {
        let flagged = sqlx::query(
            "UPDATE runs SET cancel_requested = 1 WHERE id = $1 AND status IN ('starting', 'running')",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(Error::store(format!("requesting the cancellation of run {id}")))?;
        Ok(flagged.rows_affected() == 1)
    }

    pub async fn cancel_requested(&self, id: &str) -> Result<bool> {
        let flag: i64 = sqlx::query_scalar("SELECT cancel_requested FROM runs WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(Error::store(format!("reading the cancel flag of run {id}")))?;
        Ok(flag != 0)
    }

    pub async fn run(&self, id: &str) -> Result<Run> {
        sqlx::query_as::<_, RunRow>(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::store(format!("reading run {id}")))?
            .ok_or_else(|| Error::not_found(Object::Run, id))?
            .into_model(&self.secrets)
    }

    /// Most recent first.
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        let rows = sqlx::query_as::<_, RunRow>(&format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE ($1 = '' OR status = $1) AND ($2 = '' OR connector_code = $2)
             ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(filter.status.map_or("", RunStatus::as_str))
        .bind(filter.connector.as_deref().unwrap_or(""))
        .bind(filter.limit.unwrap_or(100))
        .fetch_all(&self.pool)
        .await
        .map_err(Error::store("listing runs"))?;
        self.runs_from_rows(rows)
    }

    /// Runs in the given states, oldest first (the queue order).
    pub async fn runs_in(&self, statuses: &[RunStatus]) -> Result<Vec<Run>> {
        let list = statuses
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query_as::<_, RunRow>(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status IN ({list}) ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(Error::store(format!("listing runs {list}")))?;
        self.runs_from_rows(rows)
    }

    fn runs_from_rows(&self, rows: Vec<RunRow>) -> Result<Vec<Run>> {
        rows.into_iter()
            .map(|row| row.into_model(&self.secrets))
            .collect()
    }

    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>> {
        sqlx::query_as("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(Error::store("counting runs by status"))
    }
}
