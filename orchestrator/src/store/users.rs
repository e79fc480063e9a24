//! Console users: names and password hashes.

use chrono::Utc;

use super::{is_unique_violation, timestamp, Store};
use crate::error::{Error, Object, Result};

impl Store {
    /// Records a user; a conflict when the name is taken.
    pub async fn insert_user(&self, name: &str, password_hash: &str) -> Result<()> {
        let inserted =
            sqlx::query("INSERT INTO users (name, password_hash, created_at) VALUES ($1, $2, $3)")
                .bind(name)
                .bind(password_hash)
                .bind(timestamp(Utc::now()))
                .execute(&self.pool)
                .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                Err(Error::Conflict(format!("user {name} exists already")))
            }
            Err(e) => Err(Error::store(format!("adding user {name}"))(e)),
        }
    }

    /// The password hash of user `name`, if there is such a user.
    pub async fn user_password_hash(&self, name: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT password_hash FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::store(format!("reading user {name}")))
    }

    /// Every user's name, sorted.
    pub async fn users(&self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(Error::store("listing users"))
    }

    pub async fn delete_user(&self, name: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(Error::store(format!("removing user {name}")))?;
        match deleted.rows_affected() {
            0 => Err(Error::not_found(Object::User, name)),
            _ => Ok(()),
        }
    }
}
