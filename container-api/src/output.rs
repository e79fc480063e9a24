//! `POST /output/{type}` and `POST /output/{type}/close`: validated, flattened records
//! appended to `<run-dir>/output/<type>.jsonl`, all or nothing per request.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::extract::ApiPath;
use crate::flatten::{FlattenError, Flattener};
use crate::json::{self, syntax, ArrayField, JsonBody, Members};
use crate::openapi::{Message, ValidationError};
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
    fn ingest(&self, kind: OutputType, body: &str) -> Result<(), ApiError> {
        let batch = Batch::parse(body)?;
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

#[derive(Deserialize)]
struct RawBody<'a> {
    #[serde(borrow, default)]
    meta: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<ArrayField<'a>>,
}

/// The serialised lines of one request, ready to be appended with a single write.
struct Batch<'a> {
    buf: Vec<u8>,
    rows: u64,
    columns: HashSet<Cow<'a, str>>,
}

impl<'a> Batch<'a> {
    fn parse(body: &'a str) -> Result<Self, ApiError> {
        let not_items = || ApiError::validation("data", "This value should be an array of items.");
        if !body.trim_start().starts_with('{') {
            // Serde would read a struct from an array too; the contract wants `data`.
            return match serde_json::from_str::<serde::de::IgnoredAny>(body) {
                Ok(_) => Err(not_items()),
                Err(e) => Err(syntax(e)),
            };
        }
        let raw: RawBody = serde_json::from_str(body).map_err(syntax)?;
        let separator = separator(raw.meta)?;
        let items = match raw.data {
            Some(ArrayField::Items(items)) if !items.is_empty() => items,
            _ => return Err(not_items()),
        };

        let mut batch = Batch {
            buf: Vec::with_capacity(body.len() + body.len() / 8),
            rows: 0,
            columns: HashSet::new(),
        };
        let mut members = Members::new();
        let mut flattener = Flattener::new(separator);
        for (i, item) in items.into_iter().enumerate() {
            let text = item.get();
            let invalid = |problem: String| ApiError::validation(format!("data[{i}]"), problem);
            if !text.starts_with('{') {
                return Err(invalid("This value should be of type object.".into()));
            }
            members.clear();
            json::members_into(text, &mut members)
                .map_err(|e| ApiError::Internal(format!("re-parsing a record: {e}")))?;
            flattener
                .flatten(members.drain(..))
                .map_err(|e| invalid(flatten_problem(e)))?;
            for (column, _) in &flattener.columns {
                if !batch.columns.contains(column.as_ref()) {
                    batch.columns.insert(column.clone());
                }
            }
            json::write_object(
                &mut batch.buf,
                flattener.columns.iter().map(|(k, v)| (k.as_ref(), *v)),
            );
            batch.buf.push(b'\n');
            batch.rows += 1;
        }
        Ok(batch)
    }
}

fn flatten_problem(e: FlattenError) -> String {
    match e {
        FlattenError::Duplicate(column) => {
            format!("Column \"{column}\" occurs more than once after flattening.")
        }
        FlattenError::NumberOutOfRange(column) => {
            format!("The number in column \"{column}\" is out of range.")
        }
        FlattenError::Malformed(column) => format!("Column \"{column}\" is not valid JSON."),
    }
}

fn separator(meta: Option<&RawValue>) -> Result<Cow<'_, str>, ApiError> {
    let Some(meta) = meta else {
        return Ok(Cow::Borrowed(DEFAULT_SEPARATOR));
    };
    let not_object = || ApiError::validation("meta", "This value should be of type object.");
    let not_string =
        || ApiError::validation("meta.separator", "This value should be of type string.");
    if !meta.get().starts_with('{') {
        return Err(not_object());
    }
    let mut members = Members::new();
    json::members_into(meta.get(), &mut members).map_err(|_| not_object())?;
    match members.into_iter().rev().find(|(k, _)| k == "separator") {
        None => Ok(Cow::Borrowed(DEFAULT_SEPARATOR)),
        Some((_, value)) if value.get() == "null" => Ok(Cow::Borrowed(DEFAULT_SEPARATOR)),
        Some((_, value)) if value.get().starts_with('"') => serde_json::from_str::<String>(value.get())
            .map(Cow::Owned)
            .map_err(|_| not_string()),
        Some(_) => Err(not_string()),
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
    let outputs = state.clone();
    tokio::task::spawn_blocking(move || outputs.outputs().ingest(kind, &body)).await??;
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

#[cfg(test)]
mod perf_probe {
    use super::*;
    #[test]
    #[ignore]
    fn probe() {
        let rec = |i: usize| {
            let head = format!(r#"{{"id":"{i:08}","title":"Product {i} in blue","brand":"Brand {}","price":"{}.99","availability":"in stock","link":"https://shop.example.com/p/{i:08}","pad":""#, i % 97, i % 500);
            let pad = 200 - head.len() - 2;
            format!("{head}{}\"}}", "x".repeat(pad))
        };
        let body = format!(r#"{{"data":[{}]}}"#, (0..1000).map(rec).collect::<Vec<_>>().join(","));
        let n = 2000;
        let t = std::time::Instant::now();
        for _ in 0..n { std::hint::black_box(std::str::from_utf8(body.as_bytes()).unwrap()); }
        let utf8 = t.elapsed() / n;
        let t = std::time::Instant::now();
        for _ in 0..n { json::check(body.as_bytes(), 64).unwrap(); }
        let check = t.elapsed() / n;
        let t = std::time::Instant::now();
        for _ in 0..n { std::hint::black_box(serde_json::from_str::<RawBody>(&body).unwrap()); }
        let top = t.elapsed() / n;
        let t = std::time::Instant::now();
        for _ in 0..n { std::hint::black_box(Batch::parse(&body).unwrap()); }
        let parse = t.elapsed() / n;
        let mb = body.len() as f64 / 1e6;
        for (name, d) in [("utf8", utf8), ("check", check), ("top-level", top), ("Batch::parse", parse)] {
            println!("{name}: {d:?} = {:.0} MB/s", mb / d.as_secs_f64());
        }
    }
}
