//! Console users besides the API token's holder (`cde user add`): a name and a password,
//! kept as an Argon2id hash. They sign in to the console; the management API still takes
//! the token only.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::{Error, Result};
use crate::Cde;

/// The shortest password a user may have.
pub const MIN_PASSWORD: usize = 12;

impl Cde {
    /// Adds user `name` with `password` (hashed; the password itself is not kept).
    pub async fn add_user(&self, name: &str, password: &str) -> Result<()> {
        if !crate::manifest::is_kebab_case(name) {
            return Err(Error::InvalidConfig(format!(
                "user name {name:?} must be kebab-case"
            )));
        }
        if password.chars().count() < MIN_PASSWORD {
            return Err(Error::InvalidConfig(format!(
                "user {name}: a password has at least {MIN_PASSWORD} characters"
            )));
        }
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
        })
        .await
        .map_err(|e| Error::Other(format!("hashing the password of user {name}: {e}")))?
        .map_err(|e| Error::Other(format!("hashing the password of user {name}: {e}")))?;
        self.store.insert_user(name, &hash).await
    }

    /// Whether `password` is user `name`'s. An unknown user is no match; the time it takes
    /// does not tell the two apart (a hash is checked either way).
    pub async fn verify_user(&self, name: &str, password: &str) -> Result<bool> {
        let stored = self.store.user_password_hash(name).await?;
        let known = stored.is_some();
        // A hash of a password nobody has, so that an unknown name costs what a known one does.
        let hash = stored.unwrap_or_else(|| UNKNOWN.to_owned());
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            })
        })
        .await
        .map_err(|e| Error::Other(format!("checking the password of user {name}: {e}")))?;
        Ok(known && matches)
    }

    pub async fn users(&self) -> Result<Vec<String>> {
        self.store.users().await
    }

    pub async fn remove_user(&self, name: &str) -> Result<()> {
        self.store.delete_user(name).await
    }
}

/// The Argon2id hash (default parameters) of a random password thrown away.
const UNKNOWN: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$RxDdqlNMyQvU7DA0MKrsrTPVoTfdeZbY3hh2evL8M1Y";
