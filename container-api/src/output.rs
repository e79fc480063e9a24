//! `POST /output/{type}` and `POST /output/{type}/close`: validated, flattened records
//! appended to `<run-dir>/output/<type>.jsonl`, all or nothing per request.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::StatusCode;
use utoipa::ToSchema;

use crate::extract::ApiPath;
use crate::flatten::{FlattenError, Flattener};
use crate::json::{self, JsonBody, Members};
use crate::openapi::{Message, ValidationError};
use crate::scan::{ScanError, Scanner, Token};
use crate::summary::FileSummary;
use crate::{written, ApiError, AppState, Written};

pub const OUTPUT_DIR: &str = "output";
pub const DEFAULT_SEPARATOR: &str = "-";

/// An output file of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum OutputType {
    Output,
    Feedback,
}

impl OutputType {
    pub const ALL: [OutputType; 2] = [OutputType::Output, OutputType::Feedback];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Output => "output",
            Self::Feedback => "feedback",
        }
    }

    /// `output/<type>.jsonl`, relative to the run dir.
    pub fn relative_path(self) -> PathBuf {
        Path::new(OUTPUT_DIR).join(format!("{}.jsonl", self.as_str()))
    }
}

impl FromStr for OutputType {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Self, ApiError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                ApiError::validation("type", "This value should be one of: output, feedback.")
            })
    }
}

/// One output file; created on the first write, so a run that writes nothing leaves
/// no file.
struct OutputFile {
    path: PathBuf,
    file: Option<File>,
    len: u64,
    rows: u64,
    columns: BTreeSet<String>,
    closed: bool,
}

impl OutputFile {
    fn append(&mut self, batch: &Batch) -> Result<(), ApiError> {
        if self.closed {
            return Err(closed());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                self.len = file.metadata()?.len();
                self.file.insert(file)
            }
        };
        if let Err(e) = file.write_all(&batch.buf) {
            // Drop a partially written batch so the request stays all or nothing.
            let _ = file.set_len(self.len);
            return Err(e.into());
        }
        self.len += batch.buf.len() as u64;
        self.rows += batch.rows;
        for column in &batch.columns {
            if !self.columns.contains(column.as_ref()) {
                self.columns.insert(column.to_string());
            }
        }
        Ok(())
    }

    /// Refuses further writes and makes what was written durable.
    fn close(&mut self) -> io::Result<()> {
        self.closed = true;
        match &self.file {
            Some(file) => file.sync_all(),
            None => Ok(()),
        }
    }

    fn summary(&self) -> FileSummary {
        FileSummary {
            rows: self.rows,
            columns: self.columns.iter().cloned().collect(),
        }
    }
}

fn closed() -> ApiError {
    ApiError::validation("type", "This output file has been closed.")
}

/// The output files of a run, each behind its own lock so that writes to one file
/// are serialised and never interleave. The lock is only taken by blocking tasks.
pub(crate) struct OutputFiles {
    files: [Arc<Mutex<OutputFile>>; OutputType::ALL.len()],
}

impl OutputFiles {
    pub(crate) fn new(run_dir: &Path) -> Self {
        Self {
            files: OutputType::ALL.map(|t| {
                Arc::new(Mutex::new(OutputFile {
                    path: run_dir.join(t.relative_path()),
                    file: None,
                    len: 0,
                    rows: 0,
                    columns: BTreeSet::new(),
                    closed: false,
                }))
            }),
        }
    }

    fn lock(&self, kind: OutputType) -> MutexGuard<'_, OutputFile> {
        // A panic while holding the lock cannot leave a half-written batch behind
        // (append truncates on error), so a poisoned lock is still usable.
        self.files[kind as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Parses, flattens and appends one request body (blocking).
    fn ingest(&self, kind: OutputType, body: &str, max_depth: usize) -> Result<(), ApiError> {
        let batch = Batch::parse(body, max_depth)?;
        self.lock(kind).append(&batch)
    }

    /// Closes every file (blocking); used at shutdown, after which writes are refused.
    pub(crate) fn close_all(&self) -> io::Result<()> {
        for kind in OutputType::ALL {
            self.lock(kind).close()?;
        }
        Ok(())
    }

    pub(crate) fn summaries(&self) -> Vec<(OutputType, FileSummary)> {
        OutputType::ALL
            .into_iter()
            .map(|kind| (kind, self.lock(kind).summary()))
            .collect()
    }
}

/// `POST /output/{type}` body.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body; parsing is done on raw text
pub(crate) struct WriteRequest {
    meta: Option<Meta>,
    /// Non-empty; every item is an object. Nested objects and arrays are flattened.
    #[schema(min_items = 1)]
    data: Vec<crate::openapi::Record>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Meta {
    /// Joins the keys of nested values into column names; default `-`.
    #[schema(example = "-")]
    separator: Option<String>,
}

/// The serialised lines of one request, ready to be appended with a single write.
struct Batch<'a> {
    buf: Vec<u8>,
    rows: u64,
    columns: HashSet<Cow<'a, str>>,
}

/// A record as the scanner found it.
struct RawRecord<'a> {
    /// Its JSON text, `{` to `}`.
    text: &'a str,
    /// Its member names, a range of [`Layout::keys`].
    keys: Range<usize>,
    /// No member value is an object or array.
    flat: bool,
    /// Whitespace inside it breaks lines, so it cannot be copied as one line.
    multiline: bool,
}

/// What one pass of the scanner over a write body finds.
#[derive(Default)]
struct Layout<'a> {
    separator: Option<Cow<'a, str>>,
    records: Vec<RawRecord<'a>>,
    keys: Vec<Cow<'a, str>>,
    /// The first validation problem; reported once the whole body is known to be JSON.
    problem: Option<ApiError>,
}

impl<'a> Layout<'a> {
    fn scan(body: &'a str, max_depth: usize) -> Result<Self, ApiError> {
        let mut scanner = Scanner::new(body, max_depth);
        let mut layout = Layout::default();
        layout
            .read(&mut scanner)
            .map_err(|e| ApiError::body(e.describe(body)))?;
        match layout.problem.take() {
            Some(problem) => Err(problem),
            None => Ok(layout),
        }
    }

    fn flag(&mut self, problem: ApiError) {
        self.problem.get_or_insert(problem);
    }

    fn read(&mut self, scanner: &mut Scanner<'a>) -> Result<(), ScanError> {
        let mut data_seen = false;
        if scanner.next()? != Some(Token::BeginObject) {
            // Serde would read a struct from an array; the contract wants `data`.
            self.flag(not_items());
            if scanner.depth() > 0 {
                scanner.skip_container()?;
            }
            return scanner.finish();
        }
        while let Some(Token::Key(key)) = scanner.next()? {
            match json::string_text(key, scanner.escaped()).as_ref() {
                "meta" => self.meta(scanner)?,
                "data" if data_seen => {
                    self.flag(ApiError::body("The member \"data\" occurs more than once."));
                    scanner.skip_value()?;
                }
                "data" => {
                    data_seen = true;
                    self.data(scanner)?;
                }
                _ => scanner.skip_value()?,
            }
        }
        if !data_seen {
            self.flag(not_items());
        }
        scanner.finish()
    }

    fn meta(&mut self, scanner: &mut Scanner<'a>) -> Result<(), ScanError> {
        match scanner.next()? {
            Some(Token::BeginObject) => {}
            Some(Token::Scalar("null")) => return Ok(()),
            Some(token) => {
                self.flag(ApiError::validation(
                    "meta",
                    "This value should be of type object.",
                ));
                if matches!(token, Token::BeginArray) {
                    scanner.skip_container()?;
                }
                return Ok(());
            }
            None => return Ok(()),
        }
        while let Some(Token::Key(key)) = scanner.next()? {
            if json::string_text(key, scanner.escaped()) != "separator" {
                scanner.skip_value()?;
                continue;
            }
            match scanner.next()? {
                Some(Token::Scalar("null")) => self.separator = None,
                Some(Token::Scalar(text)) if text.starts_with('"') => {
                    self.separator = Some(json::string_text(text, scanner.escaped()));
                }
                token => {
                    self.flag(ApiError::validation(
                        "meta.separator",
                        "This value should be of type string.",
                    ));
                    if matches!(token, Some(Token::BeginObject | Token::BeginArray)) {
                        scanner.skip_container()?;
                    }
                }
            }
        }
        Ok(())
    }

    fn data(&mut self, scanner: &mut Scanner<'a>) -> Result<(), ScanError> {
        match scanner.next()? {
            Some(Token::BeginArray) => {}
            token => {
                self.flag(not_items());
                if matches!(token, Some(Token::BeginObject)) {
                    scanner.skip_container()?;
                }
                return Ok(());
            }
        }
        let body = scanner.text();
        let mut index = 0;
        loop {
            match scanner.next()? {
                Some(Token::EndArray) | None => break,
                Some(Token::BeginObject) => {
                    let start = scanner.token_start();
                    let keys = self.keys.len();
                    let mut flat = true;
                    while let Some(Token::Key(key)) = scanner.next()? {
                        self.keys.push(json::string_text(key, scanner.escaped()));
                        if let Some(Token::BeginObject | Token::BeginArray) = scanner.next()? {
                            flat = false;
                            scanner.skip_container()?;
                        }
                    }
                    let text = &body[start..scanner.token_end()];
                    self.records.push(RawRecord {
                        text,
                        keys: keys..self.keys.len(),
                        flat,
                        // Strings cannot hold line breaks, so any is whitespace.
                        multiline: memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some(),
                    });
                }
                Some(token) => {
                    self.flag(ApiError::validation(
                        format!("data[{index}]"),
                        "This value should be of type object.",
                    ));
                    if matches!(token, Token::BeginArray) {
                        scanner.skip_container()?;
                    }
                }
            }
            index += 1;
        }
        if index == 0 {
            self.flag(not_items());
        }
        Ok(())
    }
}

fn not_items() -> ApiError {
    ApiError::validation("data", "This value should be an array of items.")
}

impl<'a> Batch<'a> {
    /// Scans the body once; flat records are then copied as they came, nested ones
    /// flattened. Nothing is returned unless every record is fine.
    fn parse(body: &'a str, max_depth: usize) -> Result<Self, ApiError> {
        let layout = Layout::scan(body, max_depth)?;
        let mut batch = Batch {
            buf: Vec::with_capacity(body.len() + body.len() / 8),
            rows: 0,
            columns: HashSet::new(),
        };
        let separator = layout
            .separator
            .clone()
            .unwrap_or(Cow::Borrowed(DEFAULT_SEPARATOR));
        let mut flattener = Flattener::new(separator);
        let mut members = Members::new();
        let mut order = Vec::new();
        let mut previous: &[Cow<str>] = &[];
        for (i, record) in layout.records.iter().enumerate() {
            let invalid = |problem: String| ApiError::validation(format!("data[{i}]"), problem);
            let keys = &layout.keys[record.keys.clone()];
            if record.flat && keys == previous {
                // Same columns as the record before: checked and collected already.
            } else if record.flat {
                if let Some(column) = first_duplicate(keys, &mut order) {
                    return Err(invalid(duplicate(column)));
                }
                batch.add_columns(keys.iter());
                previous = keys;
            }
            if record.flat && !record.multiline {
                batch.buf.extend_from_slice(record.text.as_bytes());
            } else {
                members.clear();
                json::members_into(record.text, &mut members)
                    .map_err(|e| ApiError::Internal(format!("re-parsing a record: {e}")))?;
                flattener
                    .flatten(members.drain(..))
                    .map_err(|e| invalid(flatten_problem(e)))?;
                if !record.flat {
                    batch.add_columns(flattener.columns.iter().map(|(k, _)| k));
                }
                json::write_object(
                    &mut batch.buf,
                    flattener.columns.iter().map(|(k, v)| (k.as_ref(), *v)),
                );
            }
            batch.buf.push(b'\n');
            batch.rows += 1;
        }
        Ok(batch)
    }

    fn add_columns<'k>(&mut self, columns: impl Iterator<Item = &'k Cow<'a, str>>)
    where
        'a: 'k,
    {
        for column in columns {
            if !self.columns.contains(column.as_ref()) {
                self.columns.insert(column.clone());
            }
        }
    }
}

/// The first name occurring twice in `keys`; `order` is scratch space.
fn first_duplicate<'k>(keys: &'k [Cow<str>], order: &mut Vec<usize>) -> Option<&'k str> {
    order.clear();
    order.extend(0..keys.len());
    order.sort_unstable_by(|&a, &b| keys[a].cmp(&keys[b]));
    order
        .windows(2)
        .find(|w| keys[w[0]] == keys[w[1]])
        .map(|w| keys[w[0]].as_ref())
}

fn duplicate(column: &str) -> String {
    format!("Column \"{column}\" occurs more than once after flattening.")
}

fn flatten_problem(e: FlattenError) -> String {
    match e {
        FlattenError::Duplicate(column) => duplicate(&column),
        FlattenError::Malformed(column) => format!("Column \"{column}\" is not valid JSON."),
    }
}

/// Appends records to an output file
///
/// Records are flattened (nested keys joined by `meta.separator`) and appended as
/// one line each, all or nothing per request.
#[utoipa::path(
    post,
    path = "/output/{type}",
    operation_id = "write_output",
    tag = "output",
    params(("type" = inline(OutputType), Path, description = "The output file.")),
    request_body(
        content = WriteRequest,
        example = json!({"meta": {"separator": "-"}, "data": [{"id": "1", "title": "Shoe", "taxon": [{"id": 11}]}]})
    ),
    responses(
        (status = 201, description = "Written.", body = Message,
         example = json!({"message": "Written successfully."})),
        (status = 400, description = "Invalid request; nothing was written.", body = ValidationError,
         example = json!({"message": "Validation failed", "errors": {"data": "This value should be an array of items."}})),
        (status = 413, description = "Body over the configured limit; nothing was written.", body = Message),
    )
)]
pub(crate) async fn write_output(
    State(state): State<AppState>,
    ApiPath(kind): ApiPath<String>,
    body: Result<JsonBody, ApiError>,
) -> Result<Written, ApiError> {
    let kind: OutputType = kind.parse()?;
    let JsonBody(body) = body?;
    tokio::task::spawn_blocking(move || {
        state
            .outputs()
            .ingest(kind, &body, state.config().max_depth)
    })
    .await??;
    Ok(written())
}

/// Closes an output file
///
/// Flushes and fsyncs the file; further writes to it are refused with 400. Closing
/// again is harmless.
#[utoipa::path(
    post,
    path = "/output/{type}/close",
    operation_id = "close_output",
    tag = "output",
    params(("type" = inline(OutputType), Path, description = "The output file.")),
    responses(
        (status = 204, description = "Closed."),
        (status = 400, description = "Unknown output type.", body = ValidationError),
    )
)]
pub(crate) async fn close_output(
    State(state): State<AppState>,
    ApiPath(kind): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let kind: OutputType = kind.parse()?;
    tokio::task::spawn_blocking(move || state.outputs().lock(kind).close()).await??;
    Ok(StatusCode::NO_CONTENT)
}
