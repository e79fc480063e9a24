//! Category-specific attributes (CSA): `<run-dir>/classifications.json`, the
//! `classification-id` filter of the reading side and `GET /csa-classifications`.
//!
//! File format (ours): `[{"classification-id": 12, "classification-path": "Apparel > Shoes",
//! "columns": ["shoe_size"]}, ...]`. The id is a number or a string; `columns` lists the
//! attributes specific to that classification and defaults to none.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::extract::ApiQuery;
use crate::openapi::ValidationError;
use crate::{ApiError, AppState};

pub const CLASSIFICATIONS_FILE: &str = "classifications.json";

#[derive(Deserialize, Debug)]
struct Entry {
    #[serde(rename = "classification-id")]
    id: Value,
    #[serde(rename = "classification-path")]
    path: String,
    #[serde(default)]
    columns: HashSet<String>,
}

/// `{"classification-id": ..., "classification-path": ...}`, as listed by the look-up.
#[derive(Serialize, ToSchema, Clone, Debug, PartialEq)]
pub struct Classification {
    /// A number or a string, as configured.
    #[serde(rename = "classification-id")]
    #[schema(value_type = ClassificationIdSchema)]
    pub id: Value,
    #[serde(rename = "classification-path")]
    #[schema(example = "Apparel & Accessories > Shoes")]
    pub path: String,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // documents that an id is a number or a string
#[serde(untagged)]
#[schema(as = ClassificationId)]
pub(crate) enum ClassificationIdSchema {
    Number(i64),
    Text(String),
}

/// The classifications of a run; empty when none are configured.
#[derive(Debug, Default)]
pub(crate) struct Classifications {
    entries: Vec<Entry>,
    /// Every column that is specific to some classification.
    specific: HashSet<String>,
}

impl Classifications {
    pub(crate) fn load(run_dir: &Path) -> anyhow::Result<Self> {
        let path = run_dir.join(CLASSIFICATIONS_FILE);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let entries: Vec<Entry> =
            serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
        for entry in &entries {
            anyhow::ensure!(
                entry.id.is_string() || entry.id.is_number(),
                "{}: classification-id {} is neither a number nor a string",
                path.display(),
                entry.id
            );
        }
        let specific = entries
            .iter()
            .flat_map(|e| e.columns.iter().cloned())
            .collect();
        Ok(Self { entries, specific })
    }

    /// The columns to leave out of records read with `classification-id` = `id`: those
    /// specific to other classifications. `None` when nothing is to be left out.
    pub(crate) fn excluded_columns(
        &self,
        id: Option<&str>,
    ) -> Result<Option<HashSet<String>>, ApiError> {
        let Some(id) = id else { return Ok(None) };
        if self.entries.is_empty() {
            return Ok(None);
        }
        let entry = self
            .entries
            .iter()
            .find(|e| id_text(&e.id) == id)
            .ok_or_else(|| {
                ApiError::validation("classification-id", "This classification does not exist.")
            })?;
        let excluded: HashSet<String> = self.specific.difference(&entry.columns).cloned().collect();
        Ok((!excluded.is_empty()).then_some(excluded))
    }

    /// Classifications whose path equals `path` (trimmed, ignoring case); all of them
    /// when `path` is absent or blank.
    pub(crate) fn lookup(&self, path: Option<&str>) -> Vec<Classification> {
        let wanted = path.map(str::trim).filter(|p| !p.is_empty());
        self.entries
            .iter()
            .filter(|e| wanted.is_none_or(|p| e.path.trim().to_lowercase() == p.to_lowercase()))
            .map(|e| Classification {
                id: e.id.clone(),
                path: e.path.clone(),
            })
            .collect()
    }
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LookupQuery {
    /// The path to look up; all classifications when absent.
    #[serde(rename = "classification-path")]
    #[param(rename = "classification-path")]
    path: Option<String>,
}

/// Looks up classifications by path
#[utoipa::path(
    get,
    path = "/csa-classifications",
    operation_id = "csa_classifications",
    tag = "classifications",
    params(LookupQuery),
    responses(
        (status = 200, description = "The matching classifications; `[]` when none are configured.",
         body = Vec<Classification>,
         example = json!([{"classification-id": 12, "classification-path": "Apparel & Accessories > Shoes"}])),
        (status = 400, description = "Malformed query.", body = ValidationError),
    )
)]
pub(crate) async fn csa_classifications(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<LookupQuery>,
) -> Json<Vec<Classification>> {
    Json(state.classifications().lookup(query.path.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<Classifications> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CLASSIFICATIONS_FILE), text).unwrap();
        Classifications::load(dir.path())
    }

    #[test]
    fn missing_file_means_none() {
        let dir = tempfile::tempdir().unwrap();
        let none = Classifications::load(dir.path()).unwrap();
        assert_eq!(none.lookup(None), vec![]);
        assert_eq!(none.excluded_columns(Some("7")).unwrap(), None);
    }

    #[test]
    fn excluded_columns_are_those_of_other_classifications() {
        let c = load(
            r#"[{"classification-id": 1, "classification-path": "A > Shoes", "columns": ["size", "heel"]},
                {"classification-id": "tv", "classification-path": "B > TV", "columns": ["diagonal", "size"]}]"#,
        )
        .unwrap();
        assert_eq!(
            c.excluded_columns(Some("1")).unwrap(),
            Some(HashSet::from(["diagonal".to_string()]))
        );
        assert_eq!(
            c.excluded_columns(Some("tv")).unwrap(),
            Some(HashSet::from(["heel".to_string()]))
        );
        assert_eq!(c.excluded_columns(None).unwrap(), None);
        assert!(c.excluded_columns(Some("2")).is_err());
        assert_eq!(
            c.lookup(Some(" a > shoes ")),
            vec![Classification {
                id: 1.into(),
                path: "A > Shoes".into()
            }]
        );
        assert_eq!(c.lookup(Some("")).len(), 2);
        assert_eq!(c.lookup(Some("Shoes")), vec![]);
    }

    #[test]
    fn malformed_files_are_refused() {
        assert!(load("{").is_err());
        assert!(load(r#"[{"classification-id": null, "classification-path": "x"}]"#).is_err());
        assert!(load(r#"[{"classification-path": "x"}]"#).is_err());
    }
}
