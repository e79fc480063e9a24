//! A small typed, blocking client for the **Container API**: the per-run HTTP API a data
//! connector talks to in order to read its input, write its output and feedback, and log.
//!
//! The API is plain HTTP (no TLS, no authentication: only the run's own container can
//! reach it). Its address is `CONTAINER_API_URL`, falling back to
//! `http://cde-container-api`; every request has a 5 second timeout.
//!
//! ```no_run
//! use container_api_client::{Client, InputKind, Level, OutputKind};
//!
//! fn main() -> Result<(), container_api_client::Error> {
//!     let api = Client::from_env();
//!     loop {
//!         let mut rows = api.next_batch(InputKind::Input, 1000, true)?;
//!         if rows.is_empty() {
//!             break; // exhausted: do not ask again
//!         }
//!         for row in &mut rows {
//!             row.insert("___sample_seen".into(), "1".into());
//!         }
//!         api.append(OutputKind::Output, &rows)?;
//!     }
//!     api.close(OutputKind::Output)?;
//!     api.log(Level::Success, "done", None)
//! }
//! ```
//!
//! Every failed call is an [`Error`] that names the call (`POST /output/output`) and,
//! for a `400`, carries the API's `errors` map, ready to be logged before the connector
//! exits.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{Map, Value};

/// A record (product row): a JSON object whose keys are column names. Records read back
/// have string values unless the run serves typed values.
pub type Record = Map<String, Value>;

/// The environment variable holding the API's base URL.
pub const URL_ENV: &str = "CONTAINER_API_URL";
/// The base URL used when [`URL_ENV`] is not set.
pub const DEFAULT_URL: &str = "http://cde-container-api";
/// The timeout of every request, unless [`Client::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest batch [`Client::next_batch`] may ask for.
pub const MAX_BATCH_SIZE: u32 = 1000;

/// The largest successful answer read (a batch of 1000 large records fits easily).
const MAX_ANSWER: u64 = 256 << 20;
/// The largest error answer read.
const MAX_ERROR_ANSWER: u64 = 1 << 20;

/// The JSON field names of the bodies the client sends and reads. The spec test checks
/// each of them against the OpenAPI document.
#[doc(hidden)]
pub mod fields {
    /// The payload of a request (`WriteRequest`) or an answer (`RecordResponse`, ...).
    pub const DATA: &str = "data";
    /// The text of every answer, and of a log line (`LogRequest`).
    pub const MESSAGE: &str = "message";
    /// A 400's map from field to problem (`ValidationError`).
    pub const ERRORS: &str = "errors";
    /// The number in `GET /items/{type}/count`'s `data`.
    pub const COUNT: &str = "count";
    /// The options of a write (`WriteRequest.meta`).
    pub const META: &str = "meta";
    /// `meta.separator`: joins the keys of nested values into column names.
    pub const SEPARATOR: &str = "separator";
    /// The structured part of a log line (`LogRequest.context`).
    pub const CONTEXT: &str = "context";
    /// Query parameters of the reading calls.
    pub const SIZE: &str = "size";
    pub const SHOW_HIDDEN: &str = "show-hidden";
    pub const CLASSIFICATION_ID: &str = "classification-id";
}

use fields::*;

// --- the values of the path parameters ----------------------------------------------

macro_rules! path_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $value:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in the API's order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The value as it appears in the path.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($value => Ok($name::$variant),)+
                    _ => Err(format!(
                        concat!("unknown ", stringify!($name), " {:?}; expected one of: {}"),
                        s,
                        [$($value),+].join(", ")
                    )),
                }
            }
        }
    };
}

path_enum! {
    /// A file the connector writes: `{type}` of `POST /output/{type}`.
    OutputKind {
        /// The products (data sources and data services).
        Output = "output",
        /// Feedback rows of an export, keyed by the product id.
        Feedback = "feedback",
    }
}

path_enum! {
    /// An input stream: `{type}` of `GET /input/{type}/...` and `GET /items/{type}/count`.
    /// (The API also accepts `full`, a deprecated alias of `input`.)
    InputKind {
        /// The full feed.
        Input = "input",
        /// Export delta: products new since the last successful export.
        New = "new",
        /// Export delta: products changed since the last successful export.
        Modified = "modified",
        /// Export delta: products unchanged since the last successful export.
        Unchanged = "unchanged",
        /// Export delta: products gone since the last successful export.
        Deleted = "deleted",
    }
}

path_enum! {
    /// A log level: `{level}` of `POST /logs/{level}`.
    Level {
        Success = "success",
        Debug = "debug",
        Info = "info",
        Notice = "notice",
        Warning = "warning",
        Error = "error",
        Critical = "critical",
        Alert = "alert",
        Emergency = "emergency",
        Report = "report",
    }
}

// --- the calls ----------------------------------------------------------------------

/// A call of the API the client makes, with what it relies on in the API's description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /output/{type}` ([`Client::append`]).
    Append,
    /// `POST /output/{type}/close` ([`Client::close`]).
    Close,
    /// `GET /input/{type}/next` ([`Client::next`]).
    Next,
    /// `GET /input/{type}/next_batch` ([`Client::next_batch`]).
    NextBatch,
    /// `GET /input/{type}/restart` ([`Client::restart`]).
    Restart,
    /// `GET /items/{type}/count` ([`Client::count`]).
    Count,
    /// `POST /logs/{level}` ([`Client::log`]).
    Log,
    /// `GET /ping` ([`Client::ping`]).
    Ping,
}

impl Endpoint {
    /// Every call the client makes.
    pub const ALL: &'static [Endpoint] = &[
        Endpoint::Append,
        Endpoint::Close,
        Endpoint::Next,
        Endpoint::NextBatch,
        Endpoint::Restart,
        Endpoint::Count,
        Endpoint::Log,
        Endpoint::Ping,
    ];

    /// The HTTP method.
    pub fn method(self) -> &'static str {
        match self {
            Endpoint::Append | Endpoint::Close | Endpoint::Log => "POST",
            _ => "GET",
        }
    }

    /// The path as the API's description writes it, with its `{parameter}`.
    pub fn path_template(self) -> &'static str {
        match self {
            Endpoint::Append => "/output/{type}",
            Endpoint::Close => "/output/{type}/close",
            Endpoint::Next => "/input/{type}/next",
            Endpoint::NextBatch => "/input/{type}/next_batch",
            Endpoint::Restart => "/input/{type}/restart",
            Endpoint::Count => "/items/{type}/count",
            Endpoint::Log => "/logs/{level}",
            Endpoint::Ping => "/ping",
        }
    }

    /// The path with its parameter (if it has one) set to `value`.
    fn path(self, value: &str) -> String {
        let template = self.path_template();
        match (template.find('{'), template.find('}')) {
            (Some(start), Some(end)) => {
                format!("{}{}{}", &template[..start], value, &template[end + 1..])
            }
            _ => template.to_owned(),
        }
    }

    /// The query parameters the client may send.
    #[doc(hidden)]
    pub fn query_parameters(self) -> &'static [&'static str] {
        match self {
            Endpoint::Next => &[SHOW_HIDDEN, CLASSIFICATION_ID],
            Endpoint::NextBatch => &[SIZE, SHOW_HIDDEN, CLASSIFICATION_ID],
            _ => &[],
        }
    }

    /// The status codes the client takes for success.
    #[doc(hidden)]
    pub fn success_statuses(self) -> &'static [u16] {
        match self {
            Endpoint::Append | Endpoint::Log => &[201],
            Endpoint::Close => &[204],
            Endpoint::Next => &[200, 204],
            _ => &[200],
        }
    }

    /// The fields of the request body the client sends, as paths from its root.
    #[doc(hidden)]
    pub fn request_fields(self) -> &'static [&'static [&'static str]] {
        match self {
            Endpoint::Append => &[&[DATA], &[META, SEPARATOR]],
            Endpoint::Log => &[&[MESSAGE], &[CONTEXT]],
            _ => &[],
        }
    }

    /// The fields of the `200` answer the client reads, as paths from its root.
    #[doc(hidden)]
    pub fn response_fields(self) -> &'static [&'static [&'static str]] {
        match self {
            Endpoint::Next | Endpoint::NextBatch => &[&[DATA]],
            Endpoint::Count => &[&[DATA, COUNT]],
            _ => &[],
        }
    }
}

// --- errors -------------------------------------------------------------------------

/// A failed call: which one, and why. Its `Display` is one line fit for a log, e.g.
/// `POST /output/output: 400 Validation failed (data: This value should be an array of items.)`.
#[derive(Debug)]
pub struct Error {
    endpoint: Endpoint,
    call: String,
    base_url: String,
    kind: ErrorKind,
}

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No answer: the API could not be reached, the connection broke or the request timed out.
    Transport(Box<dyn std::error::Error + Send + Sync>),
    /// The API answered with an error status. `message` is its `message` (or the start of
    /// the body when that is not the API's JSON); `errors` is a 400's field → problem map.
    Status {
        status: u16,
        message: String,
        errors: BTreeMap<String, String>,
    },
    /// A successful status whose body is not what the API documents.
    InvalidAnswer { status: u16, detail: String },
    /// The records could not be serialised to JSON.
    Serialize(serde_json::Error),
}

impl Error {
    /// The call that failed.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// The request that failed, as `METHOD /path` (e.g. `POST /output/output`).
    pub fn call(&self) -> &str {
        &self.call
    }

    /// Why it failed.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ErrorKind::Status { status, .. } | ErrorKind::InvalidAnswer { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The API's `message` for an error status.
    pub fn api_message(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Status { message, .. } => Some(message),
            _ => None,
        }
    }

    /// The API's `errors` map (field → problem) of a 400; empty for other failures.
    pub fn errors(&self) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        match &self.kind {
            ErrorKind::Status { errors, .. } => errors,
            _ => &NONE,
        }
    }

    /// A JSON object describing the failure, for the `context` of a log line:
    /// `{"call": "...", "status": 400, "errors": {...}}`.
    pub fn to_context(&self) -> Value {
        let mut context = Map::new();
        context.insert("call".into(), self.call.clone().into());
        if let Some(status) = self.status() {
            context.insert("status".into(), status.into());
        }
        if !self.errors().is_empty() {
            let errors = self.errors().iter();
            let errors = errors.map(|(k, v)| (k.clone(), Value::from(v.clone())));
            context.insert(ERRORS.into(), Value::Object(errors.collect()));
        }
        Value::Object(context)
    }

    fn new(endpoint: Endpoint, call: &str, base_url: &str, kind: ErrorKind) -> Self {
        Error {
            endpoint,
            call: call.to_owned(),
            base_url: base_url.to_owned(),
            kind,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.call)?;
        match &self.kind {
            ErrorKind::Transport(e) => {
                write!(
                    f,
                    "no answer from the Container API at {}: {e}",
                    self.base_url
                )
            }
            ErrorKind::Status {
                status,
                message,
                errors,
            } => {
                write!(f, "{status}")?;
                if !message.is_empty() {
                    write!(f, " {message}")?;
                }
                if !errors.is_empty() {
                    let list: Vec<String> =
                        errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    write!(f, " ({})", list.join("; "))?;
                }
                Ok(())
            }
            ErrorKind::InvalidAnswer { status, detail } => {
                write!(f, "unexpected answer ({status}): {detail}")
            }
            ErrorKind::Serialize(e) => write!(f, "cannot serialise the records: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Transport(e) => Some(e.as_ref()),
            ErrorKind::Serialize(e) => Some(e),
            _ => None,
        }
    }
}

// --- the client ---------------------------------------------------------------------

/// Options of the reading calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Include the columns whose name starts with `___` (`show-hidden=true`).
    pub show_hidden: bool,
    /// Leave out the category-specific columns of other classifications.
    pub classification_id: Option<String>,
}

/// A client of one run's Container API. Cheap to clone; connections are kept alive and reused.
#[derive(Clone)]
pub struct Client {
    base_url: String,
    agent: ureq::Agent,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The API at `$CONTAINER_API_URL`, or at `http://cde-container-api` when that is
    /// unset or empty.
    pub fn from_env() -> Self {
        match std::env::var(URL_ENV) {
            Ok(url) if !url.trim().is_empty() => Client::new(url.trim()),
            _ => Client::new(DEFAULT_URL),
        }
    }

    /// The API at `base_url` (e.g. `http://127.0.0.1:8080`), with a 5 second timeout per request.
    pub fn new(base_url: impl Into<String>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Client {
            agent: agent(DEFAULT_TIMEOUT),
            base_url,
        }
    }

    /// The same client with another timeout per request (connecting, sending and reading
    /// the whole answer).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.agent = agent(timeout);
        self
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /output/{type}`: appends `records` (each serialising to a JSON object) to the
    /// file. Nested objects and arrays are flattened into columns joined by `-`. All or
    /// nothing: a 400 writes none of them. An empty slice sends nothing (the API would
    /// refuse it).
    pub fn append<T: Serialize>(&self, kind: OutputKind, records: &[T]) -> Result<(), Error> {
        self.append_with_separator(kind, records, None)
    }

    /// [`Client::append`], with nested keys joined by `separator` (`meta.separator`)
    /// instead of `-` when it is given.
    pub fn append_with_separator<T: Serialize>(
        &self,
        kind: OutputKind,
        records: &[T],
        separator: Option<&str>,
    ) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let endpoint = Endpoint::Append;
        let body = WriteBody { records, separator };
        let body = serde_json::to_vec(&body).map_err(|e| {
            let call = self.call(endpoint, kind.as_str());
            Error::new(endpoint, &call, &self.base_url, ErrorKind::Serialize(e))
        })?;
        self.request(endpoint, kind.as_str(), &[], Some(body))
            .map(drop)
    }

    /// `POST /output/{type}/close`: no more writes to the file (later ones are a 400).
    pub fn close(&self, kind: OutputKind) -> Result<(), Error> {
        self.request(Endpoint::Close, kind.as_str(), &[], None)
            .map(drop)
    }

    /// `GET /input/{type}/next`: the next record, `None` once the stream is exhausted.
    pub fn next(&self, input: InputKind, options: &ReadOptions) -> Result<Option<Record>, Error> {
        let endpoint = Endpoint::Next;
        let query = read_query(None, options);
        match self.request(endpoint, input.as_str(), &query, None)? {
            Answer { status: 204, .. } => Ok(None),
            answer => {
                let record = self.data(endpoint, input.as_str(), answer, &[DATA])?;
                Ok(Some(record))
            }
        }
    }

    /// `GET /input/{type}/next_batch`: up to `size` (1 to 1000) next records; an empty
    /// vector once the stream is exhausted. Hidden (`___`) columns only with `show_hidden`.
    pub fn next_batch(
        &self,
        input: InputKind,
        size: u32,
        show_hidden: bool,
    ) -> Result<Vec<Record>, Error> {
        let options = ReadOptions {
            show_hidden,
            classification_id: None,
        };
        self.next_batch_with(input, size, &options)
    }

    /// [`Client::next_batch`] with all the [`ReadOptions`].
    pub fn next_batch_with(
        &self,
        input: InputKind,
        size: u32,
        options: &ReadOptions,
    ) -> Result<Vec<Record>, Error> {
        let endpoint = Endpoint::NextBatch;
        let query = read_query(Some(size), options);
        let answer = self.request(endpoint, input.as_str(), &query, None)?;
        self.data(endpoint, input.as_str(), answer, &[DATA])
    }

    /// `GET /input/{type}/restart`: the stream's cursor starts over.
    pub fn restart(&self, input: InputKind) -> Result<(), Error> {
        self.request(Endpoint::Restart, input.as_str(), &[], None)
            .map(drop)
    }

    /// `GET /items/{type}/count`: the number of records in the stream, wherever its cursor is.
    pub fn count(&self, input: InputKind) -> Result<u64, Error> {
        let answer = self.request(Endpoint::Count, input.as_str(), &[], None)?;
        self.data(Endpoint::Count, input.as_str(), answer, &[DATA, COUNT])
    }

    /// `POST /logs/{level}`: one line of the run's log, with an optional `context` (an
    /// object or an array). A blank message is a 400.
    pub fn log(&self, level: Level, message: &str, context: Option<Value>) -> Result<(), Error> {
        let mut body = Map::new();
        body.insert(MESSAGE.into(), message.into());
        if let Some(context) = context {
            body.insert(CONTEXT.into(), context);
        }
        let body = serde_json::to_vec(&body).expect("a JSON map serialises");
        self.request(Endpoint::Log, level.as_str(), &[], Some(body))
            .map(drop)
    }

    /// `GET /ping`: `Ok` when the API answers.
    pub fn ping(&self) -> Result<(), Error> {
        self.request(Endpoint::Ping, "", &[], None).map(drop)
    }

    fn call(&self, endpoint: Endpoint, parameter: &str) -> String {
        format!("{} {}", endpoint.method(), endpoint.path(parameter))
    }

    /// Sends one request; an answer with a status other than the endpoint's successes
    /// becomes an error.
    fn request(
        &self,
        endpoint: Endpoint,
        parameter: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Error> {
        let call = self.call(endpoint, parameter);
        let fail = |kind| Error::new(endpoint, &call, &self.base_url, kind);
        let url = format!("{}{}", self.base_url, endpoint.path(parameter));
        let sent = if endpoint.method() == "POST" {
            let request = self
                .agent
                .post(&url)
                .query_pairs(query.iter().map(|(k, v)| (*k, v)));
            match body {
                Some(body) => request.content_type("application/json").send(body),
                None => request.send_empty(),
            }
        } else {
            let request = self
                .agent
                .get(&url)
                .query_pairs(query.iter().map(|(k, v)| (*k, v)));
            request.call()
        };
        let response = sent.map_err(|e| fail(ErrorKind::Transport(Box::new(e))))?;
        let status = response.status().as_u16();
        let success = endpoint.success_statuses().contains(&status);
        let limit = if success {
            MAX_ANSWER
        } else {
            MAX_ERROR_ANSWER
        };
        let bytes = response
            .into_body()
            .into_with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| fail(ErrorKind::Transport(Box::new(e))))?;
        if success {
            Ok(Answer { status, bytes })
        } else {
            Err(fail(error_status(status, &bytes)))
        }
    }

    /// The value at `path` in a successful JSON answer.
    fn data<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        parameter: &str,
        answer: Answer,
        path: &[&str],
    ) -> Result<T, Error> {
        let invalid = |detail: String| {
            let call = self.call(endpoint, parameter);
            let kind = ErrorKind::InvalidAnswer {
                status: answer.status,
                detail,
            };
            Error::new(endpoint, &call, &self.base_url, kind)
        };
        let mut value: Value = serde_json::from_slice(&answer.bytes)
            .map_err(|e| invalid(format!("not JSON ({e})")))?;
        for key in path {
            value = match value {
                Value::Object(mut map) => map.remove(*key),
                _ => None,
            }
            .ok_or_else(|| invalid(format!("no `{}` in the answer", path.join("."))))?;
        }
        serde_json::from_value(value).map_err(|e| invalid(format!("`{}`: {e}", path.join("."))))
    }
}

struct Answer {
    status: u16,
    bytes: Vec<u8>,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        // Statuses are the client's to interpret: a 400's body says what is wrong.
        .http_status_as_error(false)
        // The API is on the run's own network: never through a proxy from the environment.
        .proxy(None)
        .max_redirects(0)
        .user_agent(concat!(
            "cde-container-api-client/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .into()
}

fn read_query(size: Option<u32>, options: &ReadOptions) -> Vec<(&'static str, String)> {
    let mut query = Vec::with_capacity(3);
    if let Some(size) = size {
        query.push((SIZE, size.to_string()));
    }
    if options.show_hidden {
        query.push((SHOW_HIDDEN, "true".to_owned()));
    }
    if let Some(id) = &options.classification_id {
        query.push((CLASSIFICATION_ID, id.clone()));
    }
    query
}

/// An error status's `message` and `errors`, leniently: a body that is not the API's
/// JSON becomes the message (its start).
fn error_status(status: u16, bytes: &[u8]) -> ErrorKind {
    let mut message = String::new();
    let mut errors = BTreeMap::new();
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(mut body)) => {
            if let Some(m) = body.remove(MESSAGE) {
                message = text(m);
            }
            if let Some(Value::Object(map)) = body.remove(ERRORS) {
                errors = map.into_iter().map(|(k, v)| (k, text(v))).collect();
            }
        }
        _ => {
            let body = String::from_utf8_lossy(bytes);
            let body = body.trim();
            message = match body.char_indices().nth(200) {
                Some((cut, _)) => format!("{}...", &body[..cut]),
                None => body.to_owned(),
            };
        }
    }
    ErrorKind::Status {
        status,
        message,
        errors,
    }
}

fn text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// `{"data": [records], "meta": {"separator": "..."}}`, keyed by [`fields`].
struct WriteBody<'a, T> {
    records: &'a [T],
    separator: Option<&'a str>,
}

impl<T: Serialize> Serialize for WriteBody<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(DATA, self.records)?;
        if let Some(separator) = self.separator {
            let mut meta = BTreeMap::new();
            meta.insert(SEPARATOR, separator);
            map.serialize_entry(META, &meta)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests;
