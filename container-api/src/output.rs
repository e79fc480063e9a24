//! `POST /output/{type}`: validated, flattened records appended to
//! `<run-dir>/output/<type>.jsonl`, all or nothing per request.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::State;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::extract::{ApiJson, ApiPath};
use crate::flatten::flatten;
use crate::summary::FileSummary;
use crate::{written, ApiError, AppState, Written};

pub const OUTPUT_DIR: &str = "output";
pub const DEFAULT_SEPARATOR: &str = "-";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

/// One output file; opened on the first write so a run that writes nothing leaves no file.
struct OutputFile {
    path: PathBuf,
    file: Option<File>,
    rows: u64,
    columns: BTreeSet<String>,
}

impl OutputFile {
    fn append(&mut self, batch: Batch) -> io::Result<()> {
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
                self.file.insert(file)
            }
        };
        let len_before = file.metadata()?.len();
        if let Err(e) = file.write_all(&batch.buf) {
            // Drop a partially written batch so the request stays all or nothing.
            let _ = file.set_len(len_before);
            return Err(e);
        }
        self.rows += batch.rows;
        self.columns.extend(batch.columns);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => {
                file.flush()?;
                file.sync_all()
            }
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

/// The output files of a run, each behind its own lock so writes to one file are
/// serialised and never interleave.
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
                    rows: 0,
                    columns: BTreeSet::new(),
                }))
            }),
        }
    }

    fn file(&self, kind: OutputType) -> &Arc<Mutex<OutputFile>> {
        &self.files[kind as usize]
    }

    async fn append(&self, kind: OutputType, batch: Batch) -> Result<(), ApiError> {
        let mut file = self.file(kind).clone().lock_owned().await;
        tokio::task::spawn_blocking(move || file.append(batch))
            .await
            .map_err(|e| ApiError::Internal(format!("output writer panicked: {e}")))??;
        Ok(())
    }

    pub(crate) async fn sync(&self) -> io::Result<()> {
        for kind in OutputType::ALL {
            let mut file = self.file(kind).clone().lock_owned().await;
            tokio::task::spawn_blocking(move || file.sync())
                .await
                .map_err(io::Error::other)??;
        }
        Ok(())
    }

    pub(crate) async fn summaries(&self) -> Vec<(OutputType, FileSummary)> {
        let mut out = Vec::new();
        for kind in OutputType::ALL {
            out.push((kind, self.file(kind).lock().await.summary()));
        }
        out
    }
}

/// The serialised lines of one request, ready to be appended with a single write.
struct Batch {
    buf: Vec<u8>,
    rows: u64,
    columns: BTreeSet<String>,
}

impl Batch {
    fn from_body(body: Value) -> Result<Self, ApiError> {
        let not_items = || ApiError::validation("data", "This value should be an array of items.");
        let Value::Object(mut body) = body else {
            return Err(not_items());
        };
        let separator = separator(body.get("meta"))?;
        let items = match body.remove("data") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            _ => return Err(not_items()),
        };
        let mut batch = Batch {
            buf: Vec::new(),
            rows: 0,
            columns: BTreeSet::new(),
        };
        for (i, item) in items.into_iter().enumerate() {
            let field = || format!("data[{i}]");
            let Value::Object(record) = item else {
                return Err(ApiError::validation(
                    field(),
                    "This value should be of type object.",
                ));
            };
            let record = flatten(record, &separator).map_err(|column| {
                ApiError::validation(
                    field(),
                    format!("Column \"{column}\" occurs more than once after flattening."),
                )
            })?;
            batch.columns.extend(record.keys().cloned());
            serde_json::to_writer(&mut batch.buf, &record)
                .map_err(|e| ApiError::Internal(format!("serialising a record: {e}")))?;
            batch.buf.push(b'\n');
            batch.rows += 1;
        }
        Ok(batch)
    }
}

fn separator(meta: Option<&Value>) -> Result<String, ApiError> {
    match meta {
        None | Some(Value::Null) => Ok(DEFAULT_SEPARATOR.to_string()),
        Some(Value::Object(meta)) => match meta.get("separator") {
            None | Some(Value::Null) => Ok(DEFAULT_SEPARATOR.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ApiError::validation(
                "meta.separator",
                "This value should be of type string.",
            )),
        },
        Some(_) => Err(ApiError::validation(
            "meta",
            "This value should be of type object.",
        )),
    }
}

pub(crate) async fn write_output(
    State(state): State<AppState>,
    ApiPath(kind): ApiPath<String>,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Written, ApiError> {
    let kind: OutputType = kind.parse()?;
    let ApiJson(body) = body?;
    let batch = Batch::from_body(body)?;
    state.outputs().append(kind, batch).await?;
    Ok(written())
}
