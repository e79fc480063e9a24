//! Incremental state: what a connector keeps from one successful run to the next (a
//! cursor, a schedule window), through the Container API's `GET /state` and `PUT /state`.
//!
//! Before a run cde writes the state last committed under the run's key to
//! `input/state.json`; after a success it reads `output/state.json`, which the connector
//! may have written anything into, validates it and commits it under the same key. A
//! failed run commits nothing, so its next run starts where the last success ended.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::{FieldType, Manifest};
use crate::rundir;
use container_api::state::{MAX_STATE_BYTES, NEW_STATE, PREVIOUS_STATE};

/// The key of a connector run outside a pipeline: its code and a hash of its non-secret
/// option values, so a changed token keeps the state and a changed list ID does not.
pub fn connector_key(manifest: &Manifest, values: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (name, value) in values {
        let secret = manifest
            .option(name)
            .is_some_and(|o| o.field_type == FieldType::Password);
        if !secret {
            // Length-prefixed, so that no two option sets hash alike.
            for part in [name, value] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part.as_bytes());
            }
        }
    }
    let digest = hasher.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("connector/{}/{hex}", manifest.code)
}

/// The key of a pipeline's step: the same step of the same pipeline gets it on every run.
pub fn pipeline_step_key(pipeline: &str, position: i64) -> String {
    format!("pipeline/{pipeline}/{position}")
}

/// Puts the previous state where the Container API reads it.
pub fn prepare(run_dir: &Path, state: &str) -> Result<()> {
    let path = run_dir.join(PREVIOUS_STATE);
    std::fs::write(&path, state).map_err(Error::file("writing", &path))?;
    crate::private::chmod(&path, 0o644)
}

/// The state a successful run put, as compact JSON text; `Ok(None)` when it put none, and
/// `Err` with the reason the run fails when the file is not a JSON object within the
/// limit, or holds one of the run's secret values.
pub fn read_new(run_dir: &Path, secrets: &[&str]) -> std::result::Result<Option<String>, String> {
    let rejected = |why: String| format!("output rejected: {NEW_STATE} {why}");
    let Some(file) = rundir::open(run_dir, NEW_STATE, MAX_STATE_BYTES as u64)
        .map_err(|e| format!("output rejected: {e}"))?
    else {
        return Ok(None);
    };
    let mut text = String::new();
    file.take(MAX_STATE_BYTES as u64)
        .read_to_string(&mut text)
        .map_err(|e| rejected(format!("could not be read as text: {e}")))?;
    let state: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| rejected(format!("is not valid JSON: {e}")))?;
    if !state.is_object() {
        return Err(rejected("is not a JSON object".into()));
    }
    let text = state.to_string();
    if secrets
        .iter()
        .any(|secret| !secret.is_empty() && text.contains(secret))
    {
        return Err(rejected(
            "holds a secret option's value, and state is not stored encrypted".into(),
        ));
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            "code: s\nlabel: S\ntype: data-source\nimage: i\ncommand: c\noptions:\n  - {name: list, field_type: input}\n  - {name: token, field_type: password}\n",
            false,
        )
        .unwrap()
    }

    fn values(list: &str, token: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("list".to_owned(), list.to_owned()),
            ("token".to_owned(), token.to_owned()),
        ])
    }

    #[test]
    fn the_key_follows_the_non_secret_options_only() {
        let m = manifest();
        let key = connector_key(&m, &values("a", "t1"));
        assert!(key.starts_with("connector/s/"), "{key}");
        assert_eq!(key, connector_key(&m, &values("a", "t2")));
        assert_ne!(key, connector_key(&m, &values("b", "t1")));
    }

    #[test]
    fn a_new_state_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("output")).unwrap();
        assert_eq!(read_new(dir.path(), &[]), Ok(None));
        let put = |text: &str| std::fs::write(dir.path().join(NEW_STATE), text).unwrap();
        put(r#"{"cursor": 3}"#);
        assert_eq!(
            read_new(dir.path(), &[]),
            Ok(Some(r#"{"cursor":3}"#.into()))
        );
        put("[1]");
        assert!(read_new(dir.path(), &[])
            .unwrap_err()
            .contains("not a JSON object"));
        put("{");
        assert!(read_new(dir.path(), &[])
            .unwrap_err()
            .contains("not valid JSON"));
        put(r#"{"token": "s3cret"}"#);
        assert!(read_new(dir.path(), &["s3cret"])
            .unwrap_err()
            .contains("secret"));
        std::fs::remove_file(dir.path().join(NEW_STATE)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join(NEW_STATE)).unwrap();
        assert!(read_new(dir.path(), &[])
            .unwrap_err()
            .contains("not a regular file"));
    }
}
