//! The spec model: what a declarative HTTP source asks for, or a destination sends,
//! independent of the dialect its document was written in. Types only; the dialect
//! modules (`aep`, `cdp`) build them.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

/// A parsed source: how to build its requests, find its records and page through them.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub request: RequestTemplate,
    pub content: Extraction,
    pub explode: Option<Extraction>,
    pub pagination: Pagination,
    pub schedule: Option<Schedule>,
    /// The user inputs declared by the document (`spec.properties`, an operation's
    /// `parameters`), in document order.
    pub properties: Vec<Property>,
    /// The operation's rate limit as the document states it (CDP's
    /// `x-cdp-operation-settings.rateLimitConfig`), for the transport.
    pub rate_limit: Option<Value>,
}

/// The request of every page, with its `{placeholders}` still in it.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub host: String,
    pub path: String,
    pub method: Method,
    /// `queryParams`, in document order; values are templates.
    pub query: Vec<(String, String)>,
    /// `headerParams`, in document order; values are templates.
    pub headers: Vec<(String, String)>,
    /// `bodyParams`: a JSON value whose strings are templates (a string is sent as is).
    pub body: Option<Value>,
    /// Names (keys) of the `query` and `headers` entries that are left out when one of
    /// their placeholders has no value, instead of failing the run (CDP's optional
    /// parameters). Their placeholders are not required inputs.
    pub optional: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

/// `contentPath` or `explodeEntityPath`: where the records are and what to keep of them.
#[derive(Debug, Clone)]
pub struct Extraction {
    /// The path as written in the document (for messages).
    pub source: String,
    pub path: JsonPath,
    pub wrapper: Option<String>,
    pub keep: Option<Vec<String>>,
    pub skip: Vec<String>,
    /// Each element is a record as it is: no wrapper, no siblings (CDP's
    /// `recordsLocatorPath`). A non-object element becomes `{"value": element}`.
    pub bare: bool,
}

#[derive(Debug, Clone)]
pub struct Pagination {
    pub kind: PaginationKind,
    /// `limitName` and `limitValue`, sent as a query parameter on every request.
    pub limit: Option<Limit>,
    /// Requests one run may make at most; one more is an error.
    pub maximum_requests: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub name: String,
    pub value: u64,
}

#[derive(Debug, Clone)]
pub enum PaginationKind {
    Offset {
        offset_name: String,
        end_condition: Option<EndCondition>,
    },
    Pointer {
        path: JsonPath,
        /// The query parameter a pointer that is not a URL is sent as.
        param_name: String,
    },
    ContinuationToken {
        path: JsonPath,
        location: TokenLocation,
        param_name: String,
        delay_millis: u64,
    },
    Page {
        param_name: String,
        initial_index: u64,
        end_index: Option<EndPageIndex>,
    },
    None,
}

/// The end condition of OFFSET pagination: stop once the response's value at `path`
/// equals `value`.
#[derive(Debug, Clone)]
pub struct EndCondition {
    pub path: JsonPath,
    pub value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLocation {
    Query,
    Header,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndPageIndex {
    /// The last page index to request.
    Last(u64),
    /// A response header holding the number of pages (`headers.x-pagecount`).
    PageCountHeader(String),
}

#[derive(Debug, Clone)]
pub enum Schedule {
    /// The window's start and end sent as two query parameters.
    Params {
        start_name: String,
        end_name: String,
        start_format: String,
        end_format: String,
    },
    /// `ADVANCE`: a query expression filled into `{SCHEDULE_QUERY}`.
    Advance {
        format: String,
        incremental: String,
        backfill: String,
    },
}

/// One property of the document's `spec.properties`.
#[derive(Debug, Clone)]
pub struct Property {
    pub name: String,
    pub kind: InputKind,
    pub description: Option<String>,
    pub required: bool,
    pub secret: bool,
}

/// One option of a connector, as the orchestrator shows and checks it at registration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Input {
    pub name: String,
    pub kind: InputKind,
    pub description: Option<String>,
    pub required: bool,
    /// Never logged, never in a message, masked wherever cde shows it.
    pub secret: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    String,
    Integer,
    Number,
    Boolean,
}

/// A parsed destination: what an export (or an export delta) sends.
#[derive(Debug, Clone)]
pub struct PushSpec {
    /// The action records are sent to: every record of an export; `new` and `modified`
    /// of an export delta.
    pub upsert: Action,
    /// The action `deleted` records of an export delta are sent to.
    pub delete: Option<Action>,
    /// Records per request.
    pub batch_size: usize,
    /// The column holding a record's id, as feedback rows name it.
    pub id_column: String,
    /// Where a 2xx answer lists the records it refused.
    pub rejections: Option<Rejections>,
}

/// One push operation (CDP's `preDefinedActions` entry with its OpenAPI operation).
#[derive(Debug, Clone)]
pub struct Action {
    /// The action's name, for messages.
    pub name: String,
    /// Host, path, method, parameters; the body is built from the records.
    pub request: RequestTemplate,
    /// The action's `configValues`, merged into every body or each record.
    pub config_values: Object,
    pub layout: BodyLayout,
    /// The user inputs the operation declares (its `parameters`).
    pub properties: Vec<Property>,
    /// As [`SourceSpec::rate_limit`].
    pub rate_limit: Option<Value>,
}

/// How a batch of records becomes a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyLayout {
    /// `[record, ...]`; the config values go into each record.
    Array,
    /// `{"<member>": [record, ...]}`, with the config values beside the records
    /// (`config_in_records: false`) or in each record.
    Object {
        member: String,
        config_in_records: bool,
    },
}

/// Per-record errors in a 2xx answer: `path` finds the entries, each naming its record
/// by `id` (compared with the record's id column) or by `index` (its 0-based position
/// in the batch), with its text at `error` (else the entry itself).
#[derive(Debug, Clone)]
pub struct Rejections {
    pub path: JsonPath,
    pub record: RecordRef,
    pub error: Option<JsonPath>,
}

#[derive(Debug, Clone)]
pub enum RecordRef {
    Id(JsonPath),
    Index(JsonPath),
}

/// Options every HTTP connector has, beside those of its document.
pub const BASE_URL: &str = "base_url";
pub const SCHEDULE_START: &str = "schedule_start";

/// Placeholders the engine fills itself; they are never inputs.
pub const START_TIME: &str = "START_TIME";
pub const END_TIME: &str = "END_TIME";
pub const SCHEDULE_QUERY: &str = "SCHEDULE_QUERY";

pub type Object = Map<String, Value>;
