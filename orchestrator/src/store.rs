//! Persistent state: connector versions, runs and their logs. One code path for SQLite
//! (the default, a file under the data directory) and PostgreSQL (`CDE_DATABASE_URL`).

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use container_api::LogLine;
use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection, Executor, Row};

use crate::error::{Error, Result};

use crate::secret::Secrets;
use strum::VariantArray;

use crate::model::{
    ConnectorVersion, Dataset, Lease, Leased, Manifest, Pipeline, PipelineRun, Run, RunFilter,
    RunStatus, StepRun,
};

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    instance: String,
    /// Seals run configurations and pipeline definitions, which hold password values.
    secrets: Secrets,
}

/// Timestamps are stored as fixed-width RFC 3339 text, so they sort as text in both databases.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_timestamp(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| decode_error(format!("timestamp {text:?}: {e}")))
}

fn decode_error(message: String) -> Error {
    Error::Database(sqlx::Error::Decode(message.into()))
}

impl Store {
    /// Opens `url` (any sqlx URL), or the SQLite file `sqlite_path` when `url` is `None`,
    /// with the secret key in `secret.key` next to `sqlite_path` (created on first use).
    pub async fn open(url: Option<&str>, sqlite_path: &Path) -> Result<Self> {
        let key_file = sqlite_path.with_file_name("secret.key");
        Self::open_with_secrets(url, sqlite_path, Secrets::load(None, &key_file)?).await
    }

    /// [`open`](Self::open) with the key secrets are sealed with.
    pub async fn open_with_secrets(
        url: Option<&str>,
        sqlite_path: &Path,
        secrets: Secrets,
    ) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let url = match url {
            Some(url) => url.to_owned(),
            None => {
                crate::private::prepare_database_file(sqlite_path)?;
                format!("sqlite://{}?mode=rwc", sqlite_path.display())
            }
        };
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        sqlx::query(
            "INSERT INTO instance (id) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM instance)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .execute(&pool)
        .await?;
        let instance = sqlx::query_scalar("SELECT id FROM instance")
            .fetch_one(&pool)
            .await?;
        let store = Self {
            pool,
            instance,
            secrets,
        };
        store.seal_plain_secrets().await?;
        Ok(store)
    }

    /// Seals what an older version stored in plain text: the configurations of runs not
    /// ended yet and pipeline definitions. (Migration 0004 removed ended runs' secrets.)
    async fn seal_plain_secrets(&self) -> Result<()> {
        let unfinished = format!("status IN ({})", status_list(|s| !s.is_finished()));
        self.seal_column("runs", "id", "config", &unfinished)
            .await?;
        self.seal_column("pipelines", "name", "definition", "1 = 1")
            .await
    }

    /// Seals the plain-text values of `table.column` in the rows matching `filter`.
    async fn seal_column(&self, table: &str, key: &str, column: &str, filter: &str) -> Result<()> {
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT {key}, {column} FROM {table} WHERE {filter} AND {column} NOT LIKE '{}%'",
            crate::secret::SEALED_PREFIX
        ))
        .fetch_all(&self.pool)
        .await?;
        for (id, plain) in rows {
            sqlx::query(&format!(
                "UPDATE {table} SET {column} = $2 WHERE {key} = $1 AND {column} = $3"
            ))
            .bind(&id)
            .bind(self.secrets.seal(&plain))
            .bind(&plain)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// This installation's id; its containers carry it as the `cde.instance` label.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub async fn ping(&self) -> Result<()> {
        self.pool.acquire().await?.ping().await?;
        Ok(())
    }

    /// Stores the manifest as a new version unless it equals the latest one.
    /// Returns the version and whether it was newly created.
    pub async fn register(&self, manifest: &Manifest) -> Result<(i64, bool)> {
        let text = serde_json::to_string(manifest)?;
        let digest = format!("{:x}", Sha256::digest(text.as_bytes()));
        let latest: Option<(i64, String)> = sqlx::query_as(
            "SELECT version, digest FROM connector_versions WHERE code = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(&manifest.code)
        .fetch_optional(&self.pool)
        .await?;
        if let Some((version, latest_digest)) = &latest {
            if *latest_digest == digest {
                return Ok((*version, false));
            }
        }
        let version = latest.map_or(1, |(v, _)| v + 1);
        // The primary key turns a concurrent registration of the same code into an error.
        sqlx::query(
            "INSERT INTO connector_versions (code, version, manifest, digest, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&manifest.code)
        .bind(version)
        .bind(&text)
        .bind(&digest)
        .bind(timestamp(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::InvalidConfig(format!(
                "{} was registered concurrently; register again",
                manifest.code
            )),
            e => e.into(),
        })?;
        Ok((version, true))
    }

    /// The latest version of a connector.
    pub async fn connector(&self, code: &str) -> Result<ConnectorVersion> {
        sqlx::query(
            "SELECT version, manifest, created_at FROM connector_versions WHERE code = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(code)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::ConnectorNotFound(code.to_owned()))
        .and_then(|row| connector_version(&row))
    }

    pub async fn connector_version(&self, code: &str, version: i64) -> Result<ConnectorVersion> {
        sqlx::query(
            "SELECT version, manifest, created_at FROM connector_versions WHERE code = $1 AND version = $2",
        )
        .bind(code)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::ConnectorNotFound(format!("{code} version {version}")))
        .and_then(|row| connector_version(&row))
    }

    /// The latest version of every connector, by code.
    pub async fn connectors(&self) -> Result<Vec<ConnectorVersion>> {
        sqlx::query(
            "SELECT version, manifest, created_at FROM connector_versions c
             WHERE version = (SELECT MAX(version) FROM connector_versions WHERE code = c.code)
             ORDER BY code",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(connector_version)
        .collect()
    }

    /// Records a new run: queued, or (with a lease) already started by its holder.
    pub async fn insert_run(&self, run: &Run, lease: Option<&Lease>) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (id, connector_code, connector_version, status, config, options, limits,
             run_dir, created_at, started_at, lease_owner, lease_until, network)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&run.id)
        .bind(&run.connector_code)
        .bind(run.connector_version)
        .bind(run.status.as_str())
        .bind(self.secrets.seal(&serde_json::to_string(&run.config)?))
        .bind(serde_json::to_string(&run.options)?)
        .bind(serde_json::to_string(&run.limits)?)
        .bind(&run.run_dir)
        .bind(timestamp(run.created_at))
        .bind(run.started_at.map(timestamp))
        .bind(lease.map(|lease| lease.owner.as_str()))
        .bind(lease.map(|lease| timestamp(lease.until)))
        .bind(run.network.as_ref().map(|network| network.to_string()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes the run's progress, unless it already ended (a cancelled queued run, say).
    /// Returns false when the stored run had ended. An ended run keeps no secret: its
    /// configuration becomes its masked option values.
    pub async fn update_run(&self, run: &Run) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE runs SET status = $2, reason = $3, exit_code = $4, output_rows = $5,
             started_at = $6, running_at = $7, finished_at = $8,
             config = CASE WHEN $9 = 1 THEN options ELSE config END
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
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
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
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Extends the lease on a started run or a running pipeline run; false when its
    /// holder is someone else now, or it ended.
    pub async fn renew_lease(&self, on: Leased, id: &str, lease: &Lease) -> Result<bool> {
        let query = match on {
            Leased::Run => {
                "UPDATE runs SET lease_until = $3
                 WHERE id = $1 AND lease_owner = $2 AND status IN ('starting', 'running')"
            }
            Leased::PipelineRun => {
                "UPDATE pipeline_runs SET lease_until = $3
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'"
            }
        };
        let renewed = sqlx::query(query)
            .bind(id)
            .bind(&lease.owner)
            .bind(timestamp(lease.until))
            .execute(&self.pool)
            .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// The lease held on a run or a pipeline run, if any (`RunNotFound` when there is no such run).
    pub async fn lease(&self, on: Leased, id: &str) -> Result<Option<Lease>> {
        let (query, name) = match on {
            Leased::Run => (
                "SELECT lease_owner, lease_until FROM runs WHERE id = $1",
                id.to_owned(),
            ),
            Leased::PipelineRun => (
                "SELECT lease_owner, lease_until FROM pipeline_runs WHERE id = $1",
                format!("pipeline run {id}"),
            ),
        };
        let row = sqlx::query(query)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(Error::RunNotFound(name))?;
        let owner: Option<String> = row.try_get("lease_owner")?;
        let until: Option<String> = row.try_get("lease_until")?;
        Ok(match (owner, until) {
            (Some(owner), Some(until)) => Some(Lease {
                owner,
                until: parse_timestamp(&until)?,
            }),
            _ => None,
        })
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
        .await?;
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
        .await?;
        Ok(cancelled.rows_affected() == 1)
    }

    /// Flags a started run for cancellation; its executor records the outcome.
    pub async fn request_cancel(&self, id: &str) -> Result<bool> {
        let flagged = sqlx::query(
            "UPDATE runs SET cancel_requested = 1 WHERE id = $1 AND status IN ('starting', 'running')",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(flagged.rows_affected() == 1)
    }

    pub async fn cancel_requested(&self, id: &str) -> Result<bool> {
        let flag: i64 = sqlx::query_scalar("SELECT cancel_requested FROM runs WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(flag != 0)
    }

    pub async fn run(&self, id: &str) -> Result<Run> {
        sqlx::query(&format!("{RUN_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::RunNotFound(id.to_owned()))
            .and_then(|row| run_from_row(&row, &self.secrets))
    }

    /// Most recent first.
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        sqlx::query(&format!(
            "{RUN_COLUMNS} WHERE ($1 = '' OR status = $1) AND ($2 = '' OR connector_code = $2)
             ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(filter.status.map_or("", RunStatus::as_str))
        .bind(filter.connector.as_deref().unwrap_or(""))
        .bind(filter.limit.unwrap_or(100))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| run_from_row(row, &self.secrets))
        .collect()
    }

    /// Runs in the given states, oldest first (the queue order).
    pub async fn runs_in(&self, statuses: &[RunStatus]) -> Result<Vec<Run>> {
        let list = statuses
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(&format!(
            "{RUN_COLUMNS} WHERE status IN ({list}) ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| run_from_row(row, &self.secrets))
        .collect()
    }

    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn log_offset(&self, run_id: &str) -> Result<u64> {
        let offset: i64 = sqlx::query_scalar("SELECT log_offset FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(offset as u64)
    }

    /// The sequence number the run's next log line gets.
    pub async fn next_log_seq(&self, run_id: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(seq) + 1, 0) FROM run_logs WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Appends log lines numbered from `first_seq` and moves the run's log file offset,
    /// atomically. The transaction only writes: in SQLite's WAL mode a transaction that
    /// reads before it writes fails at once when another writer got in between.
    pub async fn append_logs(
        &self,
        run_id: &str,
        first_seq: i64,
        lines: &[LogLine],
        new_offset: u64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE runs SET log_offset = $2 WHERE id = $1")
            .bind(run_id)
            .bind(new_offset as i64)
            .execute(&mut *tx)
            .await?;
        for (seq, line) in (first_seq..).zip(lines) {
            sqlx::query(
                "INSERT INTO run_logs (run_id, seq, at, source, level, message, context)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(run_id)
            .bind(seq)
            .bind(timestamp(line.at))
            .bind(line.source.as_str())
            .bind(&line.level)
            .bind(&line.message)
            .bind(line.context.as_ref().map(|c| c.to_string()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
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
        .await?;
        at.as_deref().map(parse_timestamp).transpose()
    }

    /// Log lines with sequence number at least `from`, in order, with their numbers.
    pub async fn logs(&self, run_id: &str, from: i64) -> Result<Vec<(i64, LogLine)>> {
        self.run(run_id).await?;
        sqlx::query(
            "SELECT seq, at, source, level, message, context FROM run_logs
             WHERE run_id = $1 AND seq >= $2 ORDER BY seq",
        )
        .bind(run_id)
        .bind(from)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let context: Option<String> = row.try_get("context")?;
            let line = LogLine {
                at: parse_timestamp(&row.try_get::<String, _>("at")?)?,
                source: row
                    .try_get::<String, _>("source")?
                    .parse()
                    .map_err(decode_error)?,
                level: row.try_get("level")?,
                message: row.try_get("message")?,
                context: context.map(|c| serde_json::from_str(&c)).transpose()?,
            };
            Ok((row.try_get("seq")?, line))
        })
        .collect()
    }
}

impl Store {
    /// Records a dataset version; false when that version of the dataset exists already.
    pub async fn insert_dataset(&self, dataset: &Dataset) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO datasets (name, version, run_id, path, rows_count, columns, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&dataset.name)
        .bind(dataset.version)
        .bind(&dataset.run_id)
        .bind(&dataset.path)
        .bind(dataset.rows)
        .bind(serde_json::to_string(&dataset.columns)?)
        .bind(timestamp(dataset.created_at))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn latest_dataset(&self, name: &str) -> Result<Option<Dataset>> {
        sqlx::query(&format!(
            "{DATASET_COLUMNS} WHERE name = $1 ORDER BY version DESC LIMIT 1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| dataset_from_row(&row))
        .transpose()
    }

    /// Every version of a dataset, newest first.
    pub async fn datasets(&self, name: &str) -> Result<Vec<Dataset>> {
        sqlx::query(&format!(
            "{DATASET_COLUMNS} WHERE name = $1 ORDER BY version DESC"
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(dataset_from_row)
        .collect()
    }

    /// The version of dataset `name` that run `run_id` made, if it made one.
    pub async fn dataset_of_run(&self, name: &str, run_id: &str) -> Result<Option<Dataset>> {
        sqlx::query(&format!(
            "{DATASET_COLUMNS} WHERE name = $1 AND run_id = $2"
        ))
        .bind(name)
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| dataset_from_row(&row))
        .transpose()
    }
}

impl Store {
    pub async fn save_pipeline(&self, pipeline: &Pipeline) -> Result<()> {
        let now = timestamp(Utc::now());
        let definition = self.secrets.seal(&serde_json::to_string(pipeline)?);
        let updated =
            sqlx::query("UPDATE pipelines SET definition = $2, updated_at = $3 WHERE name = $1")
                .bind(&pipeline.name)
                .bind(&definition)
                .bind(&now)
                .execute(&self.pool)
                .await?;
        if updated.rows_affected() == 0 {
            sqlx::query("INSERT INTO pipelines (name, definition, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                .bind(&pipeline.name)
                .bind(&definition)
                .bind(&now)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub async fn pipeline(&self, name: &str) -> Result<Pipeline> {
        let definition: String =
            sqlx::query_scalar("SELECT definition FROM pipelines WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| Error::PipelineNotFound(name.to_owned()))?;
        self.pipeline_definition(&definition)
    }

    pub async fn pipelines(&self) -> Result<Vec<Pipeline>> {
        let definitions: Vec<String> =
            sqlx::query_scalar("SELECT definition FROM pipelines ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        definitions
            .iter()
            .map(|d| self.pipeline_definition(d))
            .collect()
    }

    fn pipeline_definition(&self, stored: &str) -> Result<Pipeline> {
        Ok(serde_json::from_str(
            &self.secrets.open(stored, "a pipeline definition")?,
        )?)
    }

    /// Fails with a clear error when a run of the same pipeline is still going.
    /// Records a pipeline run as running under `lease`; `PipelineBusy` when one is already.
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
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Error::PipelineBusy(run.pipeline.clone())
            }
            e => e.into(),
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
        .await?;
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
        .await?
        .rows_affected())
    }

    pub async fn save_pipeline_step(&self, pipeline_run: &str, step: &StepRun) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM pipeline_steps WHERE pipeline_run_id = $1 AND position = $2")
            .bind(pipeline_run)
            .bind(step.position)
            .execute(&mut *tx)
            .await?;
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
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn pipeline_run(&self, id: &str) -> Result<PipelineRun> {
        let row = sqlx::query(&format!("{PIPELINE_RUN_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::RunNotFound(format!("pipeline run {id}")))?;
        self.pipeline_run_from_row(&row).await
    }

    /// Most recent first.
    pub async fn pipeline_runs(&self, pipeline: &str, limit: i64) -> Result<Vec<PipelineRun>> {
        let rows = sqlx::query(&format!(
            "{PIPELINE_RUN_COLUMNS} WHERE pipeline = $1 ORDER BY created_at DESC LIMIT $2"
        ))
        .bind(pipeline)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut runs = Vec::new();
        for row in &rows {
            runs.push(self.pipeline_run_from_row(row).await?);
        }
        Ok(runs)
    }

    async fn pipeline_run_from_row(&self, row: &AnyRow) -> Result<PipelineRun> {
        let id: String = row.try_get("id")?;
        let steps = sqlx::query(
            "SELECT position, kind, connector, run_id, status, reason, rows_in, rows_out FROM pipeline_steps
             WHERE pipeline_run_id = $1 ORDER BY position",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|step| {
            Ok(StepRun {
                position: step.try_get("position")?,
                kind: step.try_get::<String, _>("kind")?.parse().map_err(|e: strum::ParseError| decode_error(e.to_string()))?,
                connector: step.try_get("connector")?,
                run_id: step.try_get("run_id")?,
                status: step.try_get("status")?,
                reason: step.try_get("reason")?,
                rows_in: step.try_get("rows_in")?,
                rows_out: step.try_get("rows_out")?,
            })
        })
        .collect::<Result<_>>()?;
        Ok(PipelineRun {
            id,
            pipeline: row.try_get("pipeline")?,
            status: row
                .try_get::<String, _>("status")?
                .parse()
                .map_err(|e: strum::ParseError| decode_error(e.to_string()))?,
            reason: row.try_get("reason")?,
            trigger: row.try_get("trigger_kind")?,
            dataset_version: row.try_get("dataset_version")?,
            created_at: parse_timestamp(&row.try_get::<String, _>("created_at")?)?,
            finished_at: optional_timestamp(row, "finished_at")?,
            steps,
        })
    }

    pub async fn export_snapshot(
        &self,
        pipeline: &str,
        export_key: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT path FROM export_snapshots WHERE pipeline = $1 AND export_key = $2",
        )
        .bind(pipeline)
        .bind(export_key)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn save_export_snapshot(
        &self,
        pipeline: &str,
        export_key: &str,
        path: &str,
        run_id: &str,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM export_snapshots WHERE pipeline = $1 AND export_key = $2")
            .bind(pipeline)
            .bind(export_key)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO export_snapshots (pipeline, export_key, path, run_id, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(pipeline)
        .bind(export_key)
        .bind(path)
        .bind(run_id)
        .bind(timestamp(Utc::now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

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

/// Queries of retention (`cde gc`).
impl Store {
    /// Finished runs beyond the newest `keep.newest` of their connector or ended before
    /// `keep.since`, not yet pruned, and not a step of a pipeline run still going.
    pub async fn expired_runs(&self, keep: Keep) -> Result<Vec<ExpiredRun>> {
        sqlx::query(&format!(
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
        .await?
        .iter()
        .map(|row| {
            Ok(ExpiredRun {
                id: row.try_get("id")?,
                connector_code: row.try_get("connector_code")?,
                run_dir: row.try_get("run_dir")?,
                ended_at: parse_timestamp(&row.try_get::<String, _>("ended")?)?,
            })
        })
        .collect()
    }

    /// Deletes a run's log lines and records that its directory is gone.
    pub async fn prune_run(&self, run_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM run_logs WHERE run_id = $1")
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE runs SET pruned_at = $2 WHERE id = $1")
            .bind(run_id)
            .bind(timestamp(Utc::now()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Dataset versions beyond the newest `keep.newest` of their dataset or made before
    /// `keep.since`; never a dataset's latest version, nor an export-delta baseline.
    pub async fn expired_datasets(&self, keep: Keep) -> Result<Vec<Dataset>> {
        sqlx::query(
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
        .await?
        .iter()
        .map(dataset_from_row)
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
        .await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Ended pipeline runs beyond the newest `keep.newest` of their pipeline or ended
    /// before `keep.since`, whose work directories are not pruned yet.
    pub async fn expired_pipeline_runs(&self, keep: Keep) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
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
        .await?)
    }

    pub async fn prune_pipeline_run(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE pipeline_runs SET pruned_at = $2 WHERE id = $1")
            .bind(id)
            .bind(timestamp(Utc::now()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

const PIPELINE_RUN_COLUMNS: &str =
    "SELECT id, pipeline, status, reason, trigger_kind, dataset_version, created_at, finished_at FROM pipeline_runs";

const DATASET_COLUMNS: &str =
    "SELECT name, version, run_id, path, rows_count, columns, created_at FROM datasets";

fn dataset_from_row(row: &AnyRow) -> Result<Dataset> {
    Ok(Dataset {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        run_id: row.try_get("run_id")?,
        path: row.try_get("path")?,
        rows: row.try_get("rows_count")?,
        columns: serde_json::from_str(&row.try_get::<String, _>("columns")?)?,
        created_at: parse_timestamp(&row.try_get::<String, _>("created_at")?)?,
    })
}

const RUN_COLUMNS: &str = "SELECT id, connector_code, connector_version, status, reason, exit_code,
    config, options, limits, run_dir, output_rows, created_at, started_at, running_at, finished_at,
    network FROM runs";

fn optional_timestamp(row: &AnyRow, column: &str) -> Result<Option<DateTime<Utc>>> {
    row.try_get::<Option<String>, _>(column)?
        .as_deref()
        .map(parse_timestamp)
        .transpose()
}

/// `'a', 'b'`: the statuses `select` keeps, for an SQL `IN` list.
fn status_list(select: impl Fn(RunStatus) -> bool) -> String {
    RunStatus::VARIANTS
        .iter()
        .filter(|status| select(**status))
        .map(|status| format!("'{}'", status.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn run_from_row(row: &AnyRow, secrets: &Secrets) -> Result<Run> {
    let id: String = row.try_get("id")?;
    let config = secrets.open(
        &row.try_get::<String, _>("config")?,
        &format!("the option values of run {id}"),
    )?;
    Ok(Run {
        id,
        connector_code: row.try_get("connector_code")?,
        connector_version: row.try_get("connector_version")?,
        status: row
            .try_get::<String, _>("status")?
            .parse()
            .map_err(|e: strum::ParseError| decode_error(e.to_string()))?,
        reason: row.try_get("reason")?,
        exit_code: row.try_get("exit_code")?,
        config: serde_json::from_str(&config)?,
        options: serde_json::from_str(&row.try_get::<String, _>("options")?)?,
        limits: serde_json::from_str(&row.try_get::<String, _>("limits")?)?,
        run_dir: row.try_get("run_dir")?,
        output_rows: row.try_get("output_rows")?,
        network: row
            .try_get::<Option<String>, _>("network")?
            .map(|network| network.parse().map_err(decode_error))
            .transpose()?,
        created_at: parse_timestamp(&row.try_get::<String, _>("created_at")?)?,
        started_at: optional_timestamp(row, "started_at")?,
        running_at: optional_timestamp(row, "running_at")?,
        finished_at: optional_timestamp(row, "finished_at")?,
    })
}

fn connector_version(row: &AnyRow) -> Result<ConnectorVersion> {
    Ok(ConnectorVersion {
        version: row.try_get("version")?,
        manifest: serde_json::from_str(&row.try_get::<String, _>("manifest")?)?,
        created_at: parse_timestamp(&row.try_get::<String, _>("created_at")?)?,
    })
}
