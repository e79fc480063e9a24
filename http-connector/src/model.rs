//! The spec model: what a declarative HTTP source asks for, independent of the dialect
//! its document was written in. Types only; the dialect modules (`aep`) build them.

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
    /// The user inputs declared by the document (`spec.properties`), in document order.
    pub properties: Vec<Property>,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
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

/// Options every HTTP connector has, beside those of its document.
pub const BASE_URL: &str = "base_url";
pub const SCHEDULE_START: &str = "schedule_start";

/// Placeholders the engine fills itself; they are never inputs.
pub const START_TIME: &str = "START_TIME";
pub const END_TIME: &str = "END_TIME";
pub const SCHEDULE_QUERY: &str = "SCHEDULE_QUERY";

pub type Object = Map<String, Value>;
