//! Connector versions: registered manifests.

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::rows::{ConnectorRow, CONNECTOR_COLUMNS};
use super::{is_unique_violation, timestamp, Store};
use crate::error::{Error, Object, Result};
use crate::model::{ConnectorVersion, Manifest};

impl Store {
    /// Stores the manifest as a new version unless it equals the latest one.
    /// Returns the version and whether it was newly created.
    pub async fn register(&self, manifest: &Manifest) -> Result<(i64, bool)> {
        let code = &manifest.code;
        let text = serde_json::to_string(manifest)
            .map_err(Error::json(format!("encoding the manifest of {code}")))?;
        let digest = format!("{:x}", Sha256::digest(text.as_bytes()));
        let latest: Option<(i64, String)> = sqlx::query_as(
            "SELECT version, digest FROM connector_versions WHERE code = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(code)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::store(format!("reading the latest version of connector {code}")))?;
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
        .bind(code)
        .bind(version)
        .bind(&text)
        .bind(&digest)
        .bind(timestamp(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict(format!("{code} was registered concurrently; register again"))
            } else {
                Error::store(format!("recording connector {code} version {version}"))(e)
            }
        })?;
        Ok((version, true))
    }

    /// The latest version of a connector.
    pub async fn connector(&self, code: &str) -> Result<ConnectorVersion> {
        sqlx::query_as::<_, ConnectorRow>(&format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connector_versions WHERE code = $1 ORDER BY version DESC LIMIT 1"
        ))
        .bind(code)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::store(format!("reading connector {code}")))?
        .ok_or_else(|| Error::not_found(Object::Connector, code))?
        .try_into()
    }

    pub async fn connector_version(&self, code: &str, version: i64) -> Result<ConnectorVersion> {
        sqlx::query_as::<_, ConnectorRow>(&format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connector_versions WHERE code = $1 AND version = $2"
        ))
        .bind(code)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::store(format!(
            "reading connector {code} version {version}"
        )))?
        .ok_or_else(|| Error::not_found(Object::Connector, format!("{code} version {version}")))?
        .try_into()
    }

    /// The latest version of every connector, by code.
    pub async fn connectors(&self) -> Result<Vec<ConnectorVersion>> {
        sqlx::query_as::<_, ConnectorRow>(&format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connector_versions c
             WHERE version = (SELECT MAX(version) FROM connector_versions WHERE code = c.code)
             ORDER BY code"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(Error::store("listing connectors"))?
        .into_iter()
        .map(ConnectorVersion::try_from)
        .collect()
    }
}
