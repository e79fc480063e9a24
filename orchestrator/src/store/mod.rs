//! Persistent state: connector versions, runs and their logs, datasets, pipelines and
//! their runs. One code path for SQLite (the default, a file under the data directory)
//! and PostgreSQL (`CDE_DATABASE_URL`), through sqlx's `any` driver.
//!
//! A file per concept, each with its own `impl Store`; the rows they read are decoded in
//! [`rows`]. Every error names the operation and the object it was on.

mod connections;
mod connectors;
mod datasets;
mod listeners;
mod logs;
mod pipelines;
mod retention;
mod rows;
mod runs;
mod states;
mod users;

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection, Executor};
use strum::VariantArray;

use crate::error::{Error, Result};
use crate::model::RunStatus;
use crate::secret::Secrets;

pub use retention::{ExpiredRun, Keep};

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
            .await
            .map_err(Error::store("connecting to the database"))?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        sqlx::query(
            "INSERT INTO instance (id) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM instance)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .execute(&pool)
        .await
        .map_err(Error::store("recording this installation's id"))?;
        let instance = sqlx::query_scalar("SELECT id FROM instance")
            .fetch_one(&pool)
            .await
            .map_err(Error::store("reading this installation's id"))?;
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
        .await
        .map_err(Error::store(format!("finding plain-text {table}.{column}")))?;
        for (id, plain) in rows {
            sqlx::query(&format!(
                "UPDATE {table} SET {column} = $2 WHERE {key} = $1 AND {column} = $3"
            ))
            .bind(&id)
            .bind(self.secrets.seal(&plain))
            .bind(&plain)
            .execute(&self.pool)
            .await
            .map_err(Error::store(format!("sealing {table}.{column} of {id}")))?;
        }
        Ok(())
    }

    /// This installation's id; its containers carry it as the `cde.instance` label.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub async fn ping(&self) -> Result<()> {
        let ping = async { self.pool.acquire().await?.ping().await };
        ping.await.map_err(Error::store("pinging the database"))
    }
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

/// `($1, $2), ($3, $4)`: `rows` groups of `columns` numbered placeholders, from `$1`.
/// (sqlx's `QueryBuilder` writes `?` for the `any` driver, which PostgreSQL refuses.)
fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let row = (1..=columns)
                .map(|column| format!("${}", row * columns + column))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({row})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a statement failed on a primary key or unique index.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}
