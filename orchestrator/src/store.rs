//! Persistent state: connector versions, runs and their logs. One code path for SQLite
//! (the default, a file under the data directory) and PostgreSQL (`CDE_DATABASE_URL`).

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use container_api::LogLine;
use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection, Executor, Row};

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::run::{Run, RunStatus};

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    instance: String,
}

/// A registered connector version.
#[derive(Debug, Clone)]
pub struct ConnectorVersion {
    pub version: i64,
    pub manifest: Manifest,
    pub created_at: DateTime<Utc>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub connector: Option<String>,
    pub limit: Option<i64>,
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
    /// Opens `url` (any sqlx URL), or the SQLite file `sqlite_path` when `url` is `None`.
    pub async fn open(url: Option<&str>, sqlite_path: &Path) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let url = match url {
            Some(url) => url.to_owned(),
            None => {
                if let Some(dir) = sqlite_path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                format!("sqlite://{}?mode=rwc", sqlite_path.display())
            }
        };
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON")
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
        Ok(Self { pool, instance })
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

    pub async fn insert_run(&self, run: &Run) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (id, connector_code, connector_version, status, config, options, limits,
             run_dir, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&run.id)
        .bind(&run.connector_code)
        .bind(run.connector_version)
        .bind(run.status.as_str())
        .bind(serde_json::to_string(&run.config)?)
        .bind(serde_json::to_string(&run.options)?)
        .bind(serde_json::to_string(&run.limits)?)
        .bind(&run.run_dir)
        .bind(timestamp(run.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes the run's progress, unless it already ended (a cancelled queued run, say).
    /// Returns false when the stored run had ended.
    pub async fn update_run(&self, run: &Run) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE runs SET status = $2, reason = $3, exit_code = $4, output_rows = $5,
             started_at = $6, running_at = $7, finished_at = $8
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
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Moves a queued run to `starting`; false if someone else did (or it was cancelled).
    pub async fn claim(&self, run: &Run) -> Result<bool> {
        let claimed = sqlx::query(
            "UPDATE runs SET status = 'starting', started_at = $2 WHERE id = $1 AND status = 'queued'",
        )
        .bind(&run.id)
        .bind(run.started_at.map(timestamp))
        .execute(&self.pool)
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Cancels a queued run at once; returns false when it is not queued.
    pub async fn cancel_queued(&self, id: &str) -> Result<bool> {
        let cancelled = sqlx::query(
            "UPDATE runs SET status = 'cancelled', reason = 'cancelled', finished_at = $2
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
            .and_then(|row| run_from_row(&row))
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
        .map(run_from_row)
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
        .map(run_from_row)
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

const RUN_COLUMNS: &str = "SELECT id, connector_code, connector_version, status, reason, exit_code,
    config, options, limits, run_dir, output_rows, created_at, started_at, running_at, finished_at FROM runs";

fn optional_timestamp(row: &AnyRow, column: &str) -> Result<Option<DateTime<Utc>>> {
    row.try_get::<Option<String>, _>(column)?
        .as_deref()
        .map(parse_timestamp)
        .transpose()
}

fn run_from_row(row: &AnyRow) -> Result<Run> {
    Ok(Run {
        id: row.try_get("id")?,
        connector_code: row.try_get("connector_code")?,
        connector_version: row.try_get("connector_version")?,
        status: row
            .try_get::<String, _>("status")?
            .parse()
            .map_err(decode_error)?,
        reason: row.try_get("reason")?,
        exit_code: row.try_get("exit_code")?,
        config: serde_json::from_str(&row.try_get::<String, _>("config")?)?,
        options: serde_json::from_str(&row.try_get::<String, _>("options")?)?,
        limits: serde_json::from_str(&row.try_get::<String, _>("limits")?)?,
        run_dir: row.try_get("run_dir")?,
        output_rows: row.try_get("output_rows")?,
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
