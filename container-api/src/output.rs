//! `POST /output/{type}` and `POST /output/{type}/close`: validated, flattened records
//! appended to `<run-dir>/output/<type>.jsonl`, all or nothing per request.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, IoSlice, Write};
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
    run_dir: PathBuf,
    relative: PathBuf,
    file: Option<File>,
    len: u64,
    rows: u64,
    columns: BTreeSet<String>,
    closed: bool,
}

impl OutputFile {
    fn append(&mut self, batch: Batch, body: &[u8]) -> Result<(), ApiError> {
        if self.closed {
            return Err(closed());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let file = crate::nofollow::open_append_beneath(&self.run_dir, &self.relative)
                    .map_err(|e| {
                        ApiError::Internal(format!("opening {}: {e}", self.relative.display()))
                    })?;
                self.len = file.metadata()?.len();
                self.file.insert(file)
            }
        };
        let slices = batch.slices(body);
        let len: u64 = slices.iter().map(|s| s.len() as u64).sum();
        if let Err(e) = write_all_vectored(file, slices) {
            // Drop a partially written batch so the request stays all or nothing.
            let _ = file.set_len(self.len);
            return Err(e.into());
        }
        self.len += len;
        self.rows += batch.rows;
        for column in batch.columns {
            if !self.columns.contains(&column) {
                self.columns.insert(column);
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
/// are serialised and never interleave. The lock is held for one append to the page
/// cache, so it may be taken on an async worker (see [`INLINE_BODY_BYTES`]).
pub(crate) struct OutputFiles {
    files: [Arc<Mutex<OutputFile>>; OutputType::ALL.len()],
}

impl OutputFiles {
    pub(crate) fn new(run_dir: &Path) -> Self {
        Self {
            files: OutputType::ALL.map(|t| {
                Arc::new(Mutex::new(OutputFile {
                    run_dir: run_dir.to_path_buf(),
                    relative: t.relative_path(),
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

    /// Parses, flattens and appends one request body (blocking, CPU and page cache).
    fn ingest(&self, kind: OutputType, body: String, max_depth: usize) -> Result<(), ApiError> {
        let batch = Batch::parse(&body, max_depth)?;
        // The byte after each record copied as it came (`,`, `]` or whitespace) becomes
        // its line break, so that runs of records go out as single slices of the body.
        let mut body = body.into_bytes();
        for &end in &batch.line_ends {
            body[end] = b'\n';
        }
        self.lock(kind).append(batch, &body)
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

/// The lines of one request, ready to be appended with a single (vectored) write:
/// runs of records as they came in the body, and flattened records.
struct Batch {
    pieces: Vec<Piece>,
    /// Flattened records, one per line.
    flattened: Vec<u8>,
    /// Offsets in the body of the byte after each record copied as it came; each is to
    /// be made its line break.
    line_ends: Vec<usize>,
    rows: u64,
    /// The columns of the records, each once.
    columns: Vec<String>,
}

/// A range of lines of a [`Batch`].
enum Piece {
    /// Records in the body, each with the byte after it (to be a line break).
    Body(Range<usize>),
    Flattened(Range<usize>),
}

/// A record as the scanner found it.
struct RawRecord {
    /// Its JSON text in the body, `{` to `}`.
    range: Range<usize>,
    /// Its member names, a range of [`Layout::keys`]; consecutive flat records with
    /// the same names share one range.
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
    records: Vec<RawRecord>,
    /// Member names as their JSON text.
    keys: Vec<&'a str>,
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
        let mut index = 0;
        // The member names of the last flat record.
        let mut previous = 0..0;
        loop {
            match scanner.next()? {
                Some(Token::EndArray) | None => break,
                Some(Token::BeginObject) => {
                    let start = scanner.token_start();
                    let line_breaks = scanner.line_breaks();
                    let first_key = self.keys.len();
                    let mut flat = true;
                    loop {
                        scanner.scalar_members(|key| self.keys.push(key))?;
                        match scanner.next()? {
                            Some(Token::Key(key)) => self.keys.push(key),
                            Some(Token::BeginObject | Token::BeginArray) => {
                                flat = false;
                                scanner.skip_container()?;
                            }
                            Some(Token::Scalar(_)) => {}
                            Some(Token::EndObject | Token::EndArray) | None => break,
                        }
                    }
                    let mut keys = first_key..self.keys.len();
                    if flat {
                        if self.keys[previous.clone()] == self.keys[keys.clone()] {
                            self.keys.truncate(first_key);
                            keys = previous.clone();
                        }
                        previous = keys.clone();
                    }
                    let range = start..scanner.token_end();
                    // Strings cannot hold line breaks, so any is whitespace; the count
                    // includes those after the record.
                    let multiline = scanner.line_breaks() != line_breaks
                        && memchr::memchr2(b'\n', b'\r', &scanner.text().as_bytes()[range.clone()])
                            .is_some();
                    self.records.push(RawRecord {
                        range,
                        keys,
                        flat,
                        multiline,
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

impl Batch {
    /// Scans the body once; flat records are then to be copied as they came, nested
    /// ones are flattened. Nothing is returned unless every record is fine.
    fn parse(body: &str, max_depth: usize) -> Result<Self, ApiError> {
        let layout = Layout::scan(body, max_depth)?;
        let mut batch = Batch {
            pieces: Vec::new(),
            flattened: Vec::new(),
            line_ends: Vec::with_capacity(layout.records.len()),
            rows: 0,
            columns: Vec::new(),
        };
        let mut columns = HashSet::new();
        let separator = layout
            .separator
            .clone()
            .unwrap_or(Cow::Borrowed(DEFAULT_SEPARATOR));
        let mut flattener = Flattener::new(separator);
        let mut members = Members::new();
        let mut order = Vec::new();
        let mut previous = 0..0;
        for (i, record) in layout.records.iter().enumerate() {
            let invalid = |problem: String| ApiError::validation(format!("data[{i}]"), problem);
            if record.flat && record.keys != previous {
                // Records with the same names as the one before are checked already.
                let keys: Vec<Cow<str>> = layout.keys[record.keys.clone()]
                    .iter()
                    .map(|key| json::string_text(key, key.contains('\\')))
                    .collect();
                if let Some(column) = first_duplicate(&keys, &mut order) {
                    return Err(invalid(duplicate(column)));
                }
                add_columns(&mut columns, keys.into_iter());
                previous = record.keys.clone();
            }
            if record.flat && !record.multiline {
                let end = record.range.end;
                batch.line_ends.push(end);
                match batch.pieces.last_mut() {
                    Some(Piece::Body(run)) if run.end == record.range.start => run.end = end + 1,
                    _ => batch.pieces.push(Piece::Body(record.range.start..end + 1)),
                }
            } else {
                members.clear();
                json::members_into(&body[record.range.clone()], &mut members)
                    .map_err(|e| ApiError::Internal(format!("re-parsing a record: {e}")))?;
                flattener
                    .flatten(members.drain(..))
                    .map_err(|e| invalid(flatten_problem(e)))?;
                if !record.flat {
                    add_columns(
                        &mut columns,
                        flattener.columns.iter().map(|(k, _)| k.clone()),
                    );
                }
                let start = batch.flattened.len();
                json::write_object(
                    &mut batch.flattened,
                    flattener.columns.iter().map(|(k, v)| (k.as_ref(), *v)),
                );
                batch.flattened.push(b'\n');
                let end = batch.flattened.len();
                match batch.pieces.last_mut() {
                    Some(Piece::Flattened(run)) if run.end == start => run.end = end,
                    _ => batch.pieces.push(Piece::Flattened(start..end)),
                }
            }
            batch.rows += 1;
        }
        batch.columns = columns.into_iter().map(Cow::into_owned).collect();
        Ok(batch)
    }

    /// The lines, given the body with its line breaks in place.
    fn slices<'b>(&'b self, body: &'b [u8]) -> Vec<IoSlice<'b>> {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Body(range) => IoSlice::new(&body[range.clone()]),
                Piece::Flattened(range) => IoSlice::new(&self.flattened[range.clone()]),
            })
            .collect()
    }
}

fn add_columns<'a>(columns: &mut HashSet<Cow<'a, str>>, names: impl Iterator<Item = Cow<'a, str>>) {
    for name in names {
        if !columns.contains(name.as_ref()) {
            columns.insert(name);
        }
    }
}

/// Writes all of `slices`, however many the kernel takes per call.
fn write_all_vectored(file: &mut File, mut slices: Vec<IoSlice>) -> io::Result<()> {
    let mut rest = slices.as_mut_slice();
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

/// Bodies up to this size are parsed and appended right on the async worker, which
/// takes at most about a millisecond; the trip to the blocking pool and back would add
/// a third to the CPU time of a typical body of a few hundred kilobytes.
const INLINE_BODY_BYTES: usize = 1 << 20;

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
    let max_depth = state.config().max_depth;
    if body.len() <= INLINE_BODY_BYTES {
        state.outputs().ingest(kind, body, max_depth)?;
    } else {
        tokio::task::spawn_blocking(move || state.outputs().ingest(kind, body, max_depth))
            .await??;
    }
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
mod tests {
    use super::*;

    /// Records in every form the batch distinguishes, with all kinds of separators,
    /// and more pieces than one `writev` takes: each line is the record as sent, or
    /// flattened when it is nested or spans lines.
    #[test]
    fn appended_lines_are_the_records_as_sent_or_flattened() {
        let separators = [",", ", ", ",\n", " ,\t", "\r\n,"];
        let mut body = String::from("{\"meta\": {\"separator\": \".\"}, \"data\": [");
        let mut expected = String::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..3000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if i > 0 {
                body.push_str(separators[(seed % 5) as usize]);
            }
            let (record, line) = match (seed >> 8) % 6 {
                0 => {
                    let r = format!(r#"{{"id":{i},"v":{{"w":"a\u00e9"}}}}"#);
                    let l = format!(r#"{{"id":{i},"v.w":"a\u00e9"}}"#);
                    (r, l)
                }
                1 => (
                    format!("{{\n  \"id\": {i},\r\n  \"s\": \"x y\"\n}}"),
                    format!(r#"{{"id":{i},"s":"x y"}}"#),
                ),
                2 => {
                    let r = format!(r#"{{ "id" : {i} , "s": "\"\\", "\u0074": true }}"#);
                    (r.clone(), r)
                }
                3 => {
                    let r = format!(r#"{{"id":{i},"s":"a","n":null}}"#);
                    (r.clone(), r)
                }
                _ => {
                    let r = format!(r#"{{"id":{i},"e":[]}}"#);
                    (r, format!(r#"{{"id":{i},"e":null}}"#))
                }
            };
            body.push_str(&record);
            expected.push_str(&line);
            expected.push('\n');
        }
        body.push_str("\n]}");

        assert!(Batch::parse(&body, 64).unwrap().pieces.len() > 1024);
        let dir = tempfile::tempdir().unwrap();
        let outputs = OutputFiles::new(dir.path());
        outputs.ingest(OutputType::Output, body, 64).unwrap();
        let path = dir.path().join(OutputType::Output.relative_path());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
        let summary = outputs.lock(OutputType::Output).summary();
        assert_eq!(summary.rows, 3000);
        assert_eq!(summary.columns, ["e", "id", "n", "s", "t", "v.w"]);
    }
}
