//! Persistent state: connector versions, runs and their logs (SQLite through sqlx).

use std::path::Path;

use chrono::{DateTime, Utc};
use container_api::LogLine;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::run::Run;

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// A registered connector version.
#[derive(Debug, Clone)]
pub struct ConnectorVersion {
    pub version: i64,
    pub manifest: Manifest,
    pub created_at: DateTime<Utc>,
}

impl Store {
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePool::connect_with(options).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Stores the manifest as a new version unless it equals the latest one.
    /// Returns the version and whether it was newly created.
    pub async fn register(&self, manifest: &Manifest) -> Result<(i64, bool)> {
        let text = serde_json::to_string(manifest)?;
        let digest = format!("{:x}", Sha256::digest(text.as_bytes()));
        let mut tx = self.pool.begin().await?;
        let latest: Option<(i64, String)> = sqlx::query_as(
            "SELECT version, digest FROM connector_versions WHERE code = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(&manifest.code)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((version, latest_digest)) = &latest {
            if *latest_digest == digest {
                return Ok((*version, false));
            }
        }
        let version = latest.map_or(1, |(v, _)| v + 1);
        sqlx::query(
            "INSERT INTO connector_versions (code, version, manifest, digest, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&manifest.code)
        .bind(version)
        .bind(&text)
        .bind(&digest)
        .bind(Utc::now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((version, true))
    }

    pub async fn connector(&self, code: &str) -> Result<ConnectorVersion> {
        let row = sqlx::query(
            "SELECT version, manifest, created_at FROM connector_versions WHERE code = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(code)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::ConnectorNotFound(code.to_owned()))?;
        connector_version(&row)
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
            "INSERT INTO runs (id, connector_code, connector_version, status, config, run_dir, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&run.id)
        .bind(&run.connector_code)
        .bind(run.connector_version)
        .bind(run.status.as_str())
        .bind(&run.config)
        .bind(&run.run_dir)
        .bind(run.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes the run's mutable fields: status, reason, exit code, counts and timestamps.
    pub async fn update_run(&self, run: &Run) -> Result<()> {
        sqlx::query(
            "UPDATE runs SET status = $2, reason = $3, exit_code = $4, output_rows = $5,
             started_at = $6, finished_at = $7 WHERE id = $1",
        )
        .bind(&run.id)
        .bind(run.status.as_str())
        .bind(&run.reason)
        .bind(run.exit_code)
        .bind(run.output_rows)
        .bind(run.started_at)
        .bind(run.finished_at)
        .execute(&self.pool)
        .await?;
        Ok(())
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
    pub async fn runs(&self, limit: i64) -> Result<Vec<Run>> {
        sqlx::query(&format!(
            "{RUN_COLUMNS} ORDER BY created_at DESC, id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(run_from_row)
        .collect()
    }

    pub async fn append_logs(&self, run_id: &str, first_seq: i64, lines: &[LogLine]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (seq, line) in (first_seq..).zip(lines) {
            sqlx::query(
                "INSERT INTO run_logs (run_id, seq, at, source, level, message, context)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(run_id)
            .bind(seq)
            .bind(line.at)
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

    pub async fn logs(&self, run_id: &str) -> Result<Vec<LogLine>> {
        self.run(run_id).await?;
        sqlx::query(
            "SELECT at, source, level, message, context FROM run_logs WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let context: Option<String> = row.try_get("context")?;
            Ok(LogLine {
                at: row.try_get("at")?,
                source: row
                    .try_get::<String, _>("source")?
                    .parse()
                    .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
                level: row.try_get("level")?,
                message: row.try_get("message")?,
                context: context.map(|c| serde_json::from_str(&c)).transpose()?,
            })
        })
        .collect()
    }
}

const RUN_COLUMNS: &str = "SELECT id, connector_code, connector_version, status, reason, exit_code,
    config, run_dir, output_rows, created_at, started_at, finished_at FROM runs";

fn run_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Run> {
    let status: String = row.try_get("status")?;
    Ok(Run {
        id: row.try_get("id")?,
        connector_code: row.try_get("connector_code")?,
        connector_version: row.try_get("connector_version")?,
        status: status
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        reason: row.try_get("reason")?,
        exit_code: row.try_get("exit_code")?,
        config: row.try_get("config")?,
        run_dir: row.try_get("run_dir")?,
        output_rows: row.try_get("output_rows")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

fn connector_version(row: &sqlx::sqlite::SqliteRow) -> Result<ConnectorVersion> {
    let manifest: String = row.try_get("manifest")?;
    Ok(ConnectorVersion {
        version: row.try_get("version")?,
        manifest: serde_json::from_str(&manifest)?,
        created_at: row.try_get("created_at")?,
    })
}
