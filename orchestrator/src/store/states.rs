//! Connectors' incremental state, by key (see `crate::state`).

use chrono::Utc;

use super::{timestamp, Store};
use crate::error::{Error, Result};

impl Store {
    /// The state last committed under `key`, as JSON text.
    pub async fn state(&self, key: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT state FROM connector_states WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::store(format!("reading the state {key}")))
    }

    /// Replaces the state under `key` with what run `run_id` put.
    pub async fn commit_state(&self, key: &str, run_id: &str, state: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO connector_states (key, state, run_id, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key) DO UPDATE SET state = excluded.state, run_id = excluded.run_id,
             updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(state)
        .bind(run_id)
        .bind(timestamp(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(Error::store(format!(
            "committing the state {key} of run {run_id}"
        )))?;
        Ok(())
    }
}
