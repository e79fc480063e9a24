//! The reading side: `<run-dir>/input/<type>.jsonl` (one flat JSON object per line,
//! prepared before the run) served through one cursor per stream.
//!
//! A cursor is an open file, its byte offset and the number of records it passed,
//! so reading costs the batch and never the position. Counting scans the file once
//! and remembers; a cursor that reached the end knows the count already.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiPath, ApiQuery};
use crate::json::{self, Members};
use crate::openapi::{Message, Record, ValidationError};
use crate::{ApiError, AppState};

pub const INPUT_DIR: &str = "input";
pub const MAX_BATCH_SIZE: u64 = 1000;

/// Columns starting with this are hidden unless `show-hidden=true`.
pub const HIDDEN_PREFIX: &str = "___";

/// An input stream, as named in the path. `full` is the deprecated alias of `input`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum InputType {
    Input,
    Full,
    New,
    Modified,
    Unchanged,
    Deleted,
}

impl InputType {
    const ALL: [InputType; 6] = [
        Self::Input,
        Self::Full,
        Self::New,
        Self::Modified,
        Self::Unchanged,
        Self::Deleted,
    ];
    /// The streams that have a file; `full` reads the one of `input`.
    const STREAMS: [InputType; 5] = [
        Self::Input,
        Self::New,
        Self::Modified,
        Self::Unchanged,
        Self::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Full => "full",
            Self::New => "new",
            Self::Modified => "modified",
            Self::Unchanged => "unchanged",
            Self::Deleted => "deleted",
        }
    }

    fn stream(self) -> usize {
        match self {
            Self::Input | Self::Full => 0,
            Self::New => 1,
            Self::Modified => 2,
            Self::Unchanged => 3,
            Self::Deleted => 4,
        }
    }

    /// `input/<type>.jsonl`, relative to the run dir (`full` maps to `input`).
    pub fn relative_path(self) -> PathBuf {
        let stream = Self::STREAMS[self.stream()];
        Path::new(INPUT_DIR).join(format!("{}.jsonl", stream.as_str()))
    }
}

impl FromStr for InputType {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Self, ApiError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                ApiError::validation(
                    "type",
                    "This value should be one of: input, full, new, modified, unchanged, deleted.",
                )
            })
    }
}

/// Only JSON whitespace counts as blank, in reading and in counting alike.
fn is_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(is_space)
}

fn trim(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !is_space(b)).unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    &line[start..end]
}

/// Which columns a reader gets to see, and how.
pub(crate) struct Filter {
    pub(crate) show_hidden: bool,
    pub(crate) excluded: Option<HashSet<String>>,
    /// Values as they are in the file instead of as text (see [`write_text`]).
    pub(crate) typed: bool,
}

impl Filter {
    fn keeps(&self, column: &str) -> bool {
        (self.show_hidden || !column.starts_with(HIDDEN_PREFIX))
            && self.excluded.as_ref().is_none_or(|e| !e.contains(column))
    }
}

struct Cursor {
    reader: Option<BufReader<File>>,
    /// Byte offset of the next line.
    offset: u64,
    /// Records passed since the start of the file.
    records: u64,
    line: Vec<u8>,
    /// A read found nothing left (since the start or the last restart).
    answered_end: bool,
}

impl Cursor {
    fn reader(&mut self, path: &Path) -> Result<&mut BufReader<File>, ApiError> {
        if self.reader.is_none() {
            let file = open(path)?;
            self.reader = Some(BufReader::with_capacity(256 * 1024, file));
            self.offset = 0;
            self.records = 0;
        }
        Ok(self.reader.as_mut().expect("just opened"))
    }
}

fn open(path: &Path) -> Result<File, ApiError> {
    File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ApiError::InputNotProvided,
        _ => e.into(),
    })
}

struct Stream {
    path: PathBuf,
    cursor: Mutex<Cursor>,
    count: OnceLock<u64>,
    /// Reads after the one that answered "exhausted" (see [`crate::diagnostics`]).
    reads_after_end: AtomicU64,
}

impl Stream {
    fn cursor(&self) -> MutexGuard<'_, Cursor> {
        self.cursor.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends up to `size` records, comma-separated, to `out`; returns how many.
    /// All or nothing: on a corrupt line the cursor stays where it was.
    fn read(&self, size: u64, filter: &Filter, out: &mut Vec<u8>) -> Result<u64, ApiError> {
        let mut guard = self.cursor();
        let cursor = &mut *guard;
        let mut line = std::mem::take(&mut cursor.line);
        let (start_offset, start_records, start_len) = (cursor.offset, cursor.records, out.len());
        let mut n = 0;
        let mut result = Ok(());
        while n < size {
            line.clear();
            let got = match cursor.reader(&self.path)?.read_until(b'\n', &mut line) {
                Ok(got) => got,
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            };
            if got == 0 {
                // The whole file passed under this cursor: that is the count.
                let _ = self.count.set(cursor.records);
                break;
            }
            cursor.offset += got as u64;
            let text = trim(&line);
            if text.is_empty() {
                continue;
            }
            if n > 0 {
                out.push(b',');
            }
            if let Err(e) = render(text, filter, out) {
                result = Err(ApiError::Internal(format!(
                    "{}: record {} is not a JSON object: {e}",
                    self.path.display(),
                    cursor.records + 1
                )));
                break;
            }
            n += 1;
            cursor.records += 1;
        }
        cursor.line = line;
        if result.is_ok() && n == 0 {
            if cursor.answered_end {
                self.reads_after_end.fetch_add(1, Ordering::Relaxed);
            }
            cursor.answered_end = true;
        }
        if let Err(e) = result {
            out.truncate(start_len);
            cursor.offset = start_offset;
            cursor.records = start_records;
            if let Some(reader) = cursor.reader.as_mut() {
                reader.seek(SeekFrom::Start(start_offset))?;
            }
            return Err(e);
        }
        Ok(n)
    }

    fn restart(&self) -> Result<(), ApiError> {
        let mut cursor = self.cursor();
        match cursor.reader.as_mut() {
            Some(reader) => {
                reader.seek(SeekFrom::Start(0))?;
            }
            None => {
                open(&self.path)?;
            }
        }
        cursor.offset = 0;
        cursor.records = 0;
        cursor.answered_end = false;
        Ok(())
    }

    fn count(&self) -> Result<u64, ApiError> {
        if let Some(count) = self.count.get() {
            return Ok(*count);
        }
        let count = count_records(open(&self.path)?)?;
        Ok(*self.count.get_or_init(|| count))
    }
}

fn render(text: &[u8], filter: &Filter, out: &mut Vec<u8>) -> Result<(), String> {
    let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
    let mut members = Members::new();
    json::members_into(text, &mut members).map_err(|e| e.to_string())?;
    let kept = members
        .iter()
        .filter(|(k, _)| filter.keeps(k))
        .map(|(k, v)| (k.as_ref(), *v));
    if filter.typed {
        json::write_object(out, kept);
        return Ok(());
    }
    out.push(b'{');
    for (i, (key, value)) in kept.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_str(out, key);
        out.push(b':');
        write_text(out, value.get());
    }
    out.push(b'}');
    Ok(())
}

/// Appends a scalar as the text a Productsup site stores (and PHP casts to): a number
/// as written in the file, `true` as `"1"`, `false` and `null` as `""`, a string as it
/// is. An array or object (inputs are flat, so there is none) is left as it is.
fn write_text(out: &mut Vec<u8>, raw: &str) {
    match raw.as_bytes().first() {
        Some(b't') => out.extend_from_slice(b"\"1\""),
        Some(b'f' | b'n') => out.extend_from_slice(b"\"\""),
        // A JSON number needs no escaping inside a string.
        Some(b'-' | b'0'..=b'9') => {
            out.push(b'"');
            out.extend_from_slice(raw.as_bytes());
            out.push(b'"');
        }
        _ => out.extend_from_slice(raw.as_bytes()),
    }
}

/// Non-blank lines of `file`, read in large chunks.
fn count_records(mut file: File) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let (mut count, mut pending) = (0u64, false);
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', chunk) {
            if pending || !is_blank(&chunk[start..end]) {
                count += 1;
            }
            pending = false;
            start = end + 1;
        }
        pending |= !is_blank(&chunk[start..]);
    }
    Ok(count + u64::from(pending))
}

/// The input streams of a run, each with its own cursor.
pub(crate) struct InputStreams {
    streams: Vec<Stream>,
}

impl InputStreams {
    pub(crate) fn new(run_dir: &Path) -> Self {
        Self {
            streams: InputType::STREAMS
                .iter()
                .map(|t| Stream {
                    path: run_dir.join(t.relative_path()),
                    cursor: Mutex::new(Cursor {
                        reader: None,
                        offset: 0,
                        records: 0,
                        line: Vec::new(),
                        answered_end: false,
                    }),
                    count: OnceLock::new(),
                    reads_after_end: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    fn stream(&self, kind: InputType) -> &Stream {
        &self.streams[kind.stream()]
    }

    /// Per stream that was read after it answered "exhausted": how many times.
    pub(crate) fn reads_after_end(&self) -> BTreeMap<String, u64> {
        InputType::STREAMS
            .iter()
            .zip(&self.streams)
            .filter_map(|(kind, stream)| {
                let n = stream.reads_after_end.load(Ordering::Relaxed);
                (n > 0).then(|| (kind.as_str().to_owned(), n))
            })
            .collect()
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct NextQuery {
    /// Include columns starting with `___`.
    #[serde(rename = "show-hidden")]
    #[param(rename = "show-hidden", value_type = Option<bool>)]
    show_hidden: Option<String>,
    /// Leave out the category-specific columns of other classifications.
    #[serde(rename = "classification-id")]
    #[param(rename = "classification-id")]
    classification_id: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct BatchQuery {
    /// Records to read, 1 to 1000.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    size: Option<String>,
    /// Include columns starting with `___`.
    #[serde(rename = "show-hidden")]
    #[param(rename = "show-hidden", value_type = Option<bool>)]
    show_hidden: Option<String>,
    /// Leave out the category-specific columns of other classifications.
    #[serde(rename = "classification-id")]
    #[param(rename = "classification-id")]
    classification_id: Option<String>,
}

fn filter(
    state: &AppState,
    show_hidden: Option<&str>,
    classification_id: Option<&str>,
) -> Result<Filter, ApiError> {
    let show_hidden = match show_hidden
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(_) => {
            return Err(ApiError::validation(
                "show-hidden",
                "This value should be of type bool.",
            ))
        }
    };
    let excluded = state
        .classifications()
        .excluded_columns(classification_id)?;
    Ok(Filter {
        show_hidden,
        excluded,
        typed: state.config().typed_values,
    })
}

fn batch_size(size: Option<&str>) -> Result<u64, ApiError> {
    let Some(size) = size else { return Ok(1) };
    let out_of_range = || {
        ApiError::validation(
            "size",
            format!("This value should be between 1 and {MAX_BATCH_SIZE}."),
        )
    };
    match size.trim().parse::<i64>() {
        Ok(n) if (1..=MAX_BATCH_SIZE as i64).contains(&n) => Ok(n as u64),
        Ok(_) => Err(out_of_range()),
        Err(e)
            if matches!(
                e.kind(),
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
            ) =>
        {
            Err(out_of_range())
        }
        Err(_) => Err(ApiError::validation(
            "size",
            "This value should be of type int.",
        )),
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

/// Reads the next record
///
/// Continues where the last `next` or `next_batch` on this stream stopped. Every value
/// is a string, as on a Productsup site: a number as written in the input, `true` as
/// `"1"`, `false` and `null` as `""` (typed JSON instead when the server runs with
/// `--typed-values`).
#[utoipa::path(
    get,
    path = "/input/{type}/next",
    operation_id = "next_item",
    tag = "input",
    params(("type" = inline(InputType), Path, description = "The input stream; `full` is the deprecated alias of `input`."), NextQuery),
    responses(
        (status = 200, description = "The next record.", body = RecordResponse,
         example = json!({"message": "", "data": {"id": "1", "title": "Shoe"}})),
        (status = 204, description = "The stream is exhausted."),
        (status = 400, description = "Invalid parameter.", body = ValidationError),
        (status = 404, description = "The run has no such input.", body = Message,
         example = json!({"message": "Requested file not provided."})),
    )
)]
pub(crate) async fn next_item(
    State(state): State<AppState>,
    ApiPath(kind): ApiPath<String>,
    ApiQuery(query): ApiQuery<NextQuery>,
) -> Result<Response, ApiError> {
    let kind: InputType = kind.parse()?;
    let filter = filter(
        &state,
        query.show_hidden.as_deref(),
        query.classification_id.as_deref(),
    )?;
    tokio::task::spawn_blocking(move || {
        let mut out = br#"{"message":"","data":"#.to_vec();
        match state.inputs().stream(kind).read(1, &filter, &mut out)? {
            0 => Ok(StatusCode::NO_CONTENT.into_response()),
            _ => {
                out.push(b'}');
                Ok(json_response(StatusCode::OK, out))
            }
        }
    })
    .await?
}

/// Reads the next records
///
/// Up to `size` records, continuing where the last `next` or `next_batch` on this
/// stream stopped; `data` is empty once the stream is exhausted. Values are strings as
/// for `next`.
#[utoipa::path(
    get,
    path = "/input/{type}/next_batch",
    operation_id = "next_batch",
    tag = "input",
    params(("type" = inline(InputType), Path, description = "The input stream; `full` is the deprecated alias of `input`."), BatchQuery),
    responses(
        (status = 200, description = "The next records; `[]` when the stream is exhausted.", body = BatchResponse,
         example = json!({"message": "", "data": [{"id": "1", "title": "Shoe"}]})),
        (status = 400, description = "Invalid parameter.", body = ValidationError,
         example = json!({"message": "Validation failed", "errors": {"size": "This value should be between 1 and 1000."}})),
        (status = 404, description = "The run has no such input.", body = Message),
    )
)]
pub(crate) async fn next_batch(
    State(state): State<AppState>,
    ApiPath(kind): ApiPath<String>,
    ApiQuery(query): ApiQuery<BatchQuery>,
) -> Result<Response, ApiError> {
    let kind: InputType = kind.parse()?;
    let size = batch_size(query.size.as_deref())?;
    let filter = filter(
        &state,
        query.show_hidden.as_deref(),
        query.classification_id.as_deref(),
    )?;
    tokio::task::spawn_blocking(move || {
        let mut out = br#"{"message":"","data":["#.to_vec();
        state.inputs().stream(kind).read(size, &filter, &mut out)?;
        out.extend_from_slice(b"]}");
        Ok(json_response(StatusCode::OK, out))
    })
    .await?
}

/// Restarts the cursor of an input stream
#[utoipa::path(
    get,
    path = "/input/{type}/restart",
    operation_id = "restart_input",
    tag = "input",
    params(("type" = inline(InputType), Path, description = "The input stream.")),
    responses(
        (status = 200, description = "The cursor starts over.", body = Message,
         example = json!({"message": "successful request"})),
        (status = 400, description = "Unknown input type.", body = ValidationError),
        (status = 404, description = "The run has no such input.", body = Message),
    )
)]
pub(crate) async fn restart_input(
    State(state): State<AppState>,
    ApiPath(kind): ApiPath<String>,
) -> Result<Json<Message>, ApiError> {
    let kind: InputType = kind.parse()?;
    tokio::task::spawn_blocking(move || state.inputs().stream(kind).restart()).await??;
    Ok(Json(Message::new("successful request")))
}

/// Counts the records of an input stream
#[utoipa::path(
    get,
    path = "/items/{type}/count",
    operation_id = "count_items",
    tag = "input",
    params(("type" = inline(InputType), Path, description = "The input stream.")),
    responses(
        (status = 200, description = "All records of the stream, wherever its cursor is.", body = CountResponse,
         example = json!({"message": "Items counted successfully.", "data": {"count": 42}})),
        (status = 400, description = "Unknown input type.", body = ValidationError),
        (status = 404, description = "The run has no such input.", body = Message),
    )
)]
pub(crate) async fn count_items(
    State(state): State<AppState>,
    ApiPath(kind): ApiPath<String>,
) -> Result<Json<CountResponse>, ApiError> {
    let kind: InputType = kind.parse()?;
    let count = tokio::task::spawn_blocking(move || state.inputs().stream(kind).count()).await??;
    Ok(Json(CountResponse {
        message: "Items counted successfully.".into(),
        data: Count { count },
    }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RecordResponse {
    message: String,
    data: Record,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct BatchResponse {
    message: String,
    data: Vec<Record>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CountResponse {
    message: String,
    data: Count,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Count {
    count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_skips_blank_lines_across_chunk_borders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        for (text, expected) in [
            ("", 0),
            ("{}", 1),
            ("{}\n", 1),
            ("\n\n \r\n{}\n\t\n{}", 2),
            ("{}\n{}\n{}\n", 3),
        ] {
            std::fs::write(&path, text).unwrap();
            assert_eq!(
                count_records(File::open(&path).unwrap()).unwrap(),
                expected,
                "{text:?}"
            );
        }
        // A line spanning the 1 MiB read boundary counts once.
        let long = format!("{{\"a\":\"{}\"}}\n{{}}\n", "x".repeat(1 << 20));
        std::fs::write(&path, long).unwrap();
        assert_eq!(count_records(File::open(&path).unwrap()).unwrap(), 2);
    }

    #[test]
    fn values_are_served_as_text_unless_typed() {
        let line = r#"{"i":1,"d":1.50,"e":-2E+3,"t":true,"f":false,"n":null,"s":"x\"y","a":[1],"o":{"k":2}}"#;
        let mut filter = Filter {
            show_hidden: false,
            excluded: None,
            typed: false,
        };
        let mut out = Vec::new();
        render(line.as_bytes(), &filter, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"i":"1","d":"1.50","e":"-2E+3","t":"1","f":"","n":"","s":"x\"y","a":[1],"o":{"k":2}}"#
        );
        filter.typed = true;
        let mut out = Vec::new();
        render(line.as_bytes(), &filter, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), line);
    }

    #[test]
    fn sizes() {
        assert_eq!(batch_size(None).unwrap(), 1);
        assert_eq!(batch_size(Some("1000")).unwrap(), 1000);
        for bad in ["0", "1001", "-1", "99999999999999999999999"] {
            let ApiError::Validation(errors) = batch_size(Some(bad)).unwrap_err() else {
                panic!()
            };
            assert_eq!(errors["size"], "This value should be between 1 and 1000.");
        }
        for bad in ["", "ten", "1.5", "1e3"] {
            let ApiError::Validation(errors) = batch_size(Some(bad)).unwrap_err() else {
                panic!()
            };
            assert_eq!(errors["size"], "This value should be of type int.");
        }
    }
}
