//! Connections: their option values sealed, their last check and discovery as JSON.

use chrono::{DateTime, Utc};

use super::{timestamp, Store};
use crate::error::{Error, Object, Result};
use crate::model::{Connection, ConnectionCheck, Discovery};

type ConnectionRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);

const COLUMNS: &str =
    "name, connector, option_values, last_check, discovery, created_at, updated_at";

impl Store {
    /// Saves `connection` (its values, check and discovery) under its name.
    pub async fn save_connection(&self, connection: &Connection) -> Result<()> {
        let name = &connection.name;
        let values = self
            .secrets
            .seal(&encode(name, "values", &connection.values)?);
        let check = connection
            .check
            .as_ref()
            .map(|c| encode(name, "check", c))
            .transpose()?;
        let discovery = connection
            .discovery
            .as_ref()
            .map(|d| encode(name, "discovery", d))
            .transpose()?;
        sqlx::query(
            "INSERT INTO connections (name, connector, option_values, last_check, discovery, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (name) DO UPDATE SET connector = excluded.connector,
                 option_values = excluded.option_values, last_check = excluded.last_check,
                 discovery = excluded.discovery, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(&connection.connector)
        .bind(&values)
        .bind(check)
        .bind(discovery)
        .bind(timestamp(connection.created_at))
        .bind(timestamp(connection.updated_at))
        .execute(&self.pool)
        .await
        .map_err(Error::store(format!("saving connection {name}")))?;
        Ok(())
    }

    pub async fn connection(&self, name: &str) -> Result<Connection> {
        let row: ConnectionRow = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM connections WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::store(format!("reading connection {name}")))?
        .ok_or_else(|| Error::not_found(Object::Connection, name))?;
        self.connection_from(row)
    }

    /// Every connection, by name.
    pub async fn connections(&self) -> Result<Vec<Connection>> {
        let rows: Vec<ConnectionRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM connections ORDER BY name"))
                .fetch_all(&self.pool)
                .await
                .map_err(Error::store("listing connections"))?;
        rows.into_iter()
            .map(|row| self.connection_from(row))
            .collect()
    }

    pub async fn delete_connection(&self, name: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM connections WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(Error::store(format!("deleting connection {name}")))?;
        match deleted.rows_affected() {
            0 => Err(Error::not_found(Object::Connection, name)),
            _ => Ok(()),
        }
    }

    fn connection_from(&self, row: ConnectionRow) -> Result<Connection> {
        let (name, connector, values, check, discovery, created_at, updated_at) = row;
        let what = format!("connection {name}");
        let values = self.secrets.open(&values, &what)?;
        let decode_err = |part: &str| Error::json(format!("reading the {part} of {what}"));
        let time = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| Error::Other(format!("reading the time of {what}: {e}")))
        };
        Ok(Connection {
            values: serde_json::from_str(&values).map_err(decode_err("values"))?,
            check: check
                .map(|c| serde_json::from_str::<ConnectionCheck>(&c))
                .transpose()
                .map_err(decode_err("check"))?,
            discovery: discovery
                .map(|d| serde_json::from_str::<Discovery>(&d))
                .transpose()
                .map_err(decode_err("discovery"))?,
            created_at: time(&created_at)?,
            updated_at: time(&updated_at)?,
            name,
            connector,
        })
    }
}

fn encode(name: &str, what: &str, value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(Error::json(format!(
        "encoding the {what} of connection {name}"
    )))
}
