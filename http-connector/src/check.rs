//! `cde connector check`: the first request of a connector, made with the options given,
//! and what its answer holds, without writing anything.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The line on standard output that carries the report: this prefix, then its JSON.
pub const CHECK_PREFIX: &str = "CDE-CHECK ";

/// What the first request found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckReport {
    /// Whether the first request succeeded and its answer could be read.
    pub ok: bool,
    /// The request, without its query or credentials: `GET https://host/path`.
    pub request: String,
    /// The answer's HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// The records of the first page.
    pub records: usize,
    /// Their columns, flattened as the Container API flattens records (`member-id`).
    pub columns: Vec<String>,
    /// Why the request failed: `configuration`, `transient` or `api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_kind: Option<String>,
    /// What went wrong, secrets masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The columns `records` make once flattened with `-`, sorted.
pub fn columns(records: &[Value]) -> Vec<String> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
        let join = |key: &str| match prefix {
            "" => key.to_owned(),
            _ => format!("{prefix}-{key}"),
        };
        match value {
            Value::Object(members) if !members.is_empty() => {
                for (key, member) in members {
                    walk(&join(key), member, out);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for (index, item) in items.iter().enumerate() {
                    walk(&join(&index.to_string()), item, out);
                }
            }
            _ if !prefix.is_empty() => {
                out.insert(prefix.to_owned());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for record in records {
        walk("", record, &mut out);
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_are_flattened_and_unique() {
        let records = [
            json!({"member": {"id": 1, "tags": ["a", "b"]}, "n": 2}),
            json!({"member": {"id": 2, "email": "x"}}),
        ];
        assert_eq!(
            columns(&records),
            [
                "member-email",
                "member-id",
                "member-tags-0",
                "member-tags-1",
                "n"
            ]
        );
    }
}
