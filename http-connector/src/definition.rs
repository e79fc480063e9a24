//! The definition of one HTTP connector, as cde's orchestrator builds it at registration
//! and hands it to the run in `CDE_HTTP_CONNECTOR`.
//!
//! An AEP source:
//! ```json
//! {"dialect": "aep", "spec": "\"sourceSpec\": {...}", "auth": {"type": "basic"}, "kind": "data-source"}
//! ```
//! A CDP event (pull), the operation named by its `name` (or its `resourcePath`, or its
//! OpenAPI `operationId`; with one event it may be left out):
//! ```json
//! {"dialect": "cdp", "spec": {"openapi": "3.0.1", ...}, "kind": "data-source", "operation": "Get subscribers"}
//! ```
//! A CDP action as an export; everything but `dialect`, `spec` and `kind` may be left out:
//! ```json
//! {"dialect": "cdp", "spec": {...}, "kind": "export", "operation": "/import/post",
//!  "batch_size": 10, "id_column": "id",
//!  "body": {"records": "subscribers", "config_values": "body"},
//!  "rejections": {"path": "$.Errors[*]", "id": "Id", "error": "Message"}}
//! ```
//! An export delta: `new` and `modified` go to `operation`, `deleted` to `delete_operation`:
//! ```json
//! {"dialect": "cdp", "spec": {...}, "kind": "export-delta",
//!  "operation": "Create and update subscribers in batch", "delete_operation": "Update unsubscribes"}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// See the module documentation for examples. Fields other than `dialect`, `spec` and
/// `kind` are optional; those about pushing (`delete_operation`, `batch_size`,
/// `id_column`, `body`, `rejections`) are refused for a data source, and the AEP dialect
/// (sources only) takes none of the CDP ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub dialect: Dialect,
    /// The spec document: its JSON value, or a string holding its text as published
    /// (a `"sourceSpec": {...}` fragment is not a JSON value on its own).
    pub spec: Value,
    /// How requests authenticate. Absent: as the CDP document's `security` says (HTTP
    /// basic or bearer, or an API key in a header), else no authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    pub kind: ConnectorKind,
    /// CDP: the operation this connector uses: a `preDefinedEvents` entry for a data
    /// source, a `preDefinedActions` entry for an export (the upserts of an export
    /// delta), named by its `name`, its `resourcePath` (`/import/post`) or its OpenAPI
    /// `operationId`. May be left out when the document has only one of that kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// CDP export delta only, and required there: the action `deleted` records are sent to,
    /// named as `operation` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_operation: Option<String>,
    /// Push: records per request (at least 1). Default: the `maxItems` of the records
    /// array in the action's request body schema, else 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Push: the input column holding a record's id, as feedback rows name it. Default `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_column: Option<String>,
    /// Push: how the request body of `operation` is built from a batch; what is left out
    /// is read from the action's request body schema. (The delete action of an export
    /// delta is always read from its own schema.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodySettings>,
    /// Push: where a 2xx answer lists the records it refused (each gets a feedback row),
    /// for every action of the connector. Without it, a 2xx answer accepts its whole batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejections: Option<RejectionSettings>,
    /// Rate limits, concurrency and retry policies by request pattern (Krenalis' endpoint
    /// groups), for any dialect; the first whose pattern matches a request applies, before
    /// what the document itself states (a CDP `rateLimitConfig`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint_groups: Vec<crate::transport::EndpointGroup>,
}

/// How records become a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodySettings {
    /// `"$"`: the body is the JSON array of records; a name: the body is an object with
    /// the records under that member. Default: from the request body schema (an array,
    /// or the one array member of an object), else `"$"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    /// Where the action's `configValues` go: `body` (beside the records member; not with
    /// `records: "$"`) or `records` (into each record, replacing a column of the same
    /// name). Default: `records` for an array body, else `body` unless the body schema
    /// declares none of the keys and the record schema all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_values: Option<ConfigPlacement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigPlacement {
    Body,
    Records,
}

/// Per-record errors in a 2xx answer. Each path is a JSONPath (RFC 9535); a bare name
/// means `$.name`. `id`, `index` and `error` are read from each entry `path` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectionSettings {
    /// The error entries in the answer (`$.errors[*]`; an array found is its elements).
    pub path: String,
    /// The record's id in an entry, compared with the record's `id_column` (a number and
    /// the string of its digits are the same id). Default `id`, unless `index` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Instead of `id`: the record's 0-based position in the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// The error text in an entry. Default: the entry itself (a string as it is, anything
    /// else as JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// An Adobe Experience Platform self-serve `sourceSpec` (sources only).
    Aep,
    /// A CDP connectors hub document: OpenAPI 3 (JSON) with `preDefinedEvents` (pulls)
    /// and `preDefinedActions` (pushes).
    Cdp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectorKind {
    /// Pulls records and writes them to `output`.
    DataSource,
    /// Reads `input` and sends every record; refused records become `feedback` rows.
    Export,
    /// Reads `new` and `modified` (sent as upserts) and `deleted` (sent to the delete
    /// action); `unchanged` is not read. Refused records become `feedback` rows.
    ExportDelta,
}

impl ConnectorKind {
    pub fn is_push(self) -> bool {
        !matches!(self, ConnectorKind::DataSource)
    }
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
            Some(Auth::ApiKey {
                header: "X-Api-Key".into()
            })
        );
        let no_auth: Definition =
            serde_json::from_value(json!({"dialect": "aep", "spec": "", "kind": "data-source"}))
                .unwrap();
        assert_eq!(no_auth.auth, None);
        assert!(!serde_json::to_value(&no_auth)
            .unwrap()
            .as_object()
            .unwrap()
            .contains_key("operation"));
        let round_trip: Definition =
            serde_json::from_value(serde_json::to_value(&definition).unwrap()).unwrap();
        assert_eq!(round_trip, definition);
        for bad in [
            json!({"dialect": "aep", "spec": {}, "kind": "data-source", "extra": 1}),
            json!({"dialect": "openapi", "spec": {}, "kind": "data-source"}),
            json!({"dialect": "aep", "spec": {}, "kind": "data-source", "auth": {"type": "basic", "user": "x"}}),
            json!({"dialect": "aep", "spec": {}, "kind": "data-source", "auth": {"type": "api_key"}}),
            json!({"dialect": "cdp", "spec": {}, "kind": "export", "body": {"records": "$", "extra": 1}}),
            json!({"dialect": "cdp", "spec": {}, "kind": "export", "rejections": {"id": "id"}}),
            json!({"dialect": "cdp", "spec": {}, "kind": "export", "body": {"config_values": "everywhere"}}),
            json!({"dialect": "cdp", "spec": {}, "kind": "import"}),
        ] {
            assert!(
                serde_json::from_value::<Definition>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_push_definition_reads_with_every_field() {
        let definition: Definition = serde_json::from_value(json!({
            "dialect": "cdp", "spec": {"openapi": "3.0.1"}, "kind": "export-delta",
            "operation": "/import/post", "delete_operation": "Update unsubscribes",
            "batch_size": 10, "id_column": "sku",
            "body": {"records": "subscribers", "config_values": "records"},
            "rejections": {"path": "$.errors[*]", "index": "i", "error": "message"}
        }))
        .unwrap();
        assert_eq!(definition.kind, ConnectorKind::ExportDelta);
        assert!(definition.kind.is_push());
        assert_eq!(definition.auth, None);
        assert_eq!(
            definition.body.as_ref().unwrap().config_values,
            Some(ConfigPlacement::Records)
        );
        assert_eq!(
            definition.rejections.as_ref().unwrap().index.as_deref(),
            Some("i")
        );
        let round_trip: Definition =
            serde_json::from_value(serde_json::to_value(&definition).unwrap()).unwrap();
        assert_eq!(round_trip, definition);
    }
}
