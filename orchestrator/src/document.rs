//! Files operators write, manifests and pipelines: JSON or YAML, with errors that name the
//! field, e.g. `options[1].field_type: unknown variant …`.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Parses JSON (`json`) or YAML into `T`. YAML errors name the field by themselves;
/// serde_path_to_error does it for JSON.
pub fn parse<T: DeserializeOwned>(text: &str, json: bool) -> Result<T, String> {
    if !json {
        return serde_yaml_ng::from_str(text).map_err(|e| e.to_string());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| match e.path().to_string().as_str() {
        "." => e.into_inner().to_string(),
        path => format!("{path}: {}", e.into_inner()),
    })
}

/// Reads a file (JSON when it ends in `.json`, YAML otherwise) and checks it with `parse`.
pub fn load<T>(path: &Path, parse: impl FnOnce(&str, bool) -> Result<T, String>) -> Result<T> {
    let invalid = |message: String| Error::Manifest {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    parse(&text, path.extension().is_some_and(|ext| ext == "json")).map_err(invalid)
}
