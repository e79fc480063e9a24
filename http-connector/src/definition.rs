//! The definition of one HTTP connector, as cde's orchestrator builds it at registration
//! and hands it to the run in `CDE_HTTP_CONNECTOR`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `{"dialect": "aep", "spec": <document>, "auth": {...}, "kind": "data-source"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub dialect: Dialect,
    /// The spec document: its JSON value, or a string holding its text as published
    /// (a `"sourceSpec": {...}` fragment is not a JSON value on its own).
    pub spec: Value,
    #[serde(default)]
    pub auth: Auth,
    pub kind: ConnectorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// An Adobe Experience Platform self-serve `sourceSpec`.
    Aep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectorKind {
    DataSource,
}

/// How requests authenticate, from the connector's manifest; the credentials themselves
/// are options of the run (see [`crate::Connector::inputs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "AuthFields")]
pub enum Auth {
    #[default]
    None,
    /// `Authorization: Basic` from the options `username` and `password`.
    Basic,
    /// `Authorization: Bearer` from the option `token`.
    Bearer,
    /// The option `api_key` sent in the header `header`.
    ApiKey { header: String },
}

/// What `auth` may hold; serde ignores unknown fields of an internally tagged unit
/// variant (`{"type": "basic", "user": "x"}`), this refuses them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFields {
    #[serde(rename = "type")]
    kind: AuthKind,
    header: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum AuthKind {
    None,
    Basic,
    Bearer,
    ApiKey,
}

impl TryFrom<AuthFields> for Auth {
    type Error = String;

    fn try_from(fields: AuthFields) -> Result<Self, String> {
        match (fields.kind, fields.header) {
            (AuthKind::ApiKey, Some(header)) => Ok(Auth::ApiKey { header }),
            (AuthKind::ApiKey, None) => Err("auth of type api_key needs a header".into()),
            (_, Some(_)) => Err("only auth of type api_key has a header".into()),
            (AuthKind::None, None) => Ok(Auth::None),
            (AuthKind::Basic, None) => Ok(Auth::Basic),
            (AuthKind::Bearer, None) => Ok(Auth::Bearer),
        }
    }
}

/// The option names of each authentication's credentials.
pub const USERNAME: &str = "username";
pub const PASSWORD: &str = "password";
pub const TOKEN: &str = "token";
pub const API_KEY: &str = "api_key";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_definition_reads_and_unknown_fields_are_refused() {
        let definition: Definition = serde_json::from_value(json!({
            "dialect": "aep", "spec": {"sourceSpec": {}},
            "auth": {"type": "api_key", "header": "X-Api-Key"}, "kind": "data-source"
        }))
        .unwrap();
        assert_eq!(
            definition.auth,
            Auth::ApiKey {
                header: "X-Api-Key".into()
            }
        );
        let no_auth: Definition =
            serde_json::from_value(json!({"dialect": "aep", "spec": "", "kind": "data-source"}))
                .unwrap();
        assert_eq!(no_auth.auth, Auth::None);
        let round_trip: Definition =
            serde_json::from_value(serde_json::to_value(&definition).unwrap()).unwrap();
        assert_eq!(round_trip, definition);
        for bad in [
            json!({"dialect": "aep", "spec": {}, "kind": "data-source", "extra": 1}),
            json!({"dialect": "openapi", "spec": {}, "kind": "data-source"}),
            json!({"dialect": "aep", "spec": {}, "kind": "data-source", "auth": {"type": "basic", "user": "x"}}),
            json!({"dialect": "aep", "spec": {}, "kind": "data-source", "auth": {"type": "api_key"}}),
        ] {
            assert!(
                serde_json::from_value::<Definition>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
