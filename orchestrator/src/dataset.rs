//! Datasets: immutable, versioned JSONL files of flat rows. The output of a successful run
//! (or pipeline step) becomes the next version of a named dataset; nothing else does.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::model::Dataset;
use crate::Cde;

/// Why rows were not accepted: a line that is not a flat JSON object, or an I/O error.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    #[error("line {line}: {reason}")]
    Invalid { line: u64, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl RowsError {
    /// The error about rows read from the file `path`, naming it and the line.
    fn in_file(self, path: &Path) -> Error {
        match self {
            RowsError::Invalid { line, reason } => {
                Error::InvalidConfig(format!("{} line {line}: {reason}", path.display()))
            }
            RowsError::Io(e) => Error::File {
                op: "reading",
                path: path.to_owned(),
                source: e,
            },
        }
    }
}

/// Copies JSONL rows from `source` to `target`, checking that every line is a flat JSON
/// object (its values strings, numbers, booleans or null), and returns the row count and
/// the sorted column set. Blank lines are dropped; a last line without its newline gets
/// one. Lines are copied as they were written, not re-serialized.
pub fn copy_rows(
    source: impl Read,
    target: &mut impl Write,
) -> Result<(i64, Vec<String>), RowsError> {
    let mut reader = BufReader::with_capacity(1 << 16, source);
    let mut line = Vec::new();
    let mut columns = BTreeSet::new();
    let (mut rows, mut number) = (0, 0);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        if line.trim_ascii().is_empty() {
            continue;
        }
        let invalid = |reason: String| RowsError::Invalid {
            line: number,
            reason,
        };
        let row: BTreeMap<Cow<str>, &RawValue> = serde_json::from_slice(&line)
            .map_err(|e| invalid(format!("not a JSON object: {e}")))?;
        for (column, value) in &row {
            if matches!(value.get().as_bytes().first(), Some(b'{' | b'[')) {
                return Err(invalid(format!(
                    "column {column:?} holds an object or array; rows must be flat"
                )));
            }
            if !columns.contains(column.as_ref()) {
                columns.insert(column.to_string());
            }
        }
        target.write_all(&line)?;
        if line.last() != Some(&b'\n') {
            target.write_all(b"\n")?;
        }
        rows += 1;
    }
    Ok((rows, columns.into_iter().collect()))
}

/// The rows of a JSONL file of cde's own (a dataset version); a missing file has none.
pub fn read_rows(path: &Path) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::file("opening", path)(e)),
    };
    let mut rows = Vec::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(Error::file("reading", path))?;
        if !line.trim().is_empty() {
            let row = serde_json::from_str(&line).map_err(Error::json(format!(
                "reading {} line {}",
                path.display(),
                number + 1
            )))?;
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Rows and the column set of a JSONL file of cde's own or the user's (never a run
/// directory's: see [`crate::rundir`]); a missing file has none.
pub fn scan(path: &Path) -> Result<(i64, Vec<String>)> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, vec![])),
        Err(e) => return Err(Error::file("opening", path)(e)),
    };
    copy_rows(file, &mut std::io::sink()).map_err(|e| e.in_file(path))
}

/// Validated rows waiting in a dataset's directory to become one of its versions.
#[derive(Debug)]
pub struct StagedRows {
    file: tempfile::TempPath,
    pub rows: i64,
    pub columns: Vec<String>,
}

impl Cde {
    fn dataset_dir(&self, name: &str) -> PathBuf {
        self.config.data_dir.join("datasets").join(name)
    }

    /// Validates the rows of `source` into a staged file of dataset `name` (see
    /// [`copy_rows`]); `None` stages an empty one.
    pub fn stage_rows(
        &self,
        name: &str,
        source: Option<impl Read>,
    ) -> Result<StagedRows, RowsError> {
        let dir = self.dataset_dir(name);
        crate::private::create_dir(&dir).map_err(std::io::Error::other)?;
        let mut staged = tempfile::Builder::new()
            .prefix(".staged-")
            .tempfile_in(&dir)?;
        let (rows, columns) = match source {
            Some(source) => {
                let mut out = BufWriter::new(staged.as_file_mut());
                let counted = copy_rows(source, &mut out)?;
                out.flush()?;
                counted
            }
            None => (0, vec![]),
        };
        staged.as_file().sync_all()?;
        Ok(StagedRows {
            file: staged.into_temp_path(),
            rows,
            columns,
        })
    }

    /// Stages the JSONL file `path`, which cde or its user wrote.
    pub fn stage_file(&self, name: &str, path: &Path) -> Result<StagedRows> {
        let file = match std::fs::File::open(path) {
            Ok(file) => Some(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::file("opening", path)(e)),
        };
        self.stage_rows(name, file).map_err(|e| e.in_file(path))
    }

    /// Records staged rows as the next version of dataset `name`. The file gets its final
    /// name (never one another version has) before the row pointing at it is inserted, so
    /// a recorded version always has its whole file; two commits racing for one version
    /// number both succeed, one with the next number.
    pub async fn commit_dataset(
        &self,
        name: &str,
        run_id: Option<&str>,
        staged: StagedRows,
    ) -> Result<Dataset> {
        let dir = self.dataset_dir(name);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut current = staged.file.keep().map_err(|e| {
            Error::Other(format!("keeping a staged version of dataset {name}: {e}"))
        })?;
        let recorded = async {
            for _ in 0..COMMIT_ATTEMPTS {
                let version = self
                    .store
                    .latest_dataset(name)
                    .await?
                    .map_or(1, |d| d.version + 1);
                let path = dir.join(format!("{version}-{}.jsonl", &token[..12]));
                std::fs::rename(&current, &path).map_err(Error::file("recording", &path))?;
                current = path;
                let dataset = Dataset {
                    name: name.to_owned(),
                    version,
                    run_id: run_id.map(str::to_owned),
                    path: current.display().to_string(),
                    rows: staged.rows,
                    columns: staged.columns.clone(),
                    created_at: Utc::now(),
                };
                if self.store.insert_dataset(&dataset).await? {
                    crate::private::seal_file(&current)?;
                    return Ok(Some(dataset));
                }
            }
            Ok::<_, Error>(None)
        }
        .await;
        match recorded {
            Ok(Some(dataset)) => Ok(dataset),
            other => {
                let _ = std::fs::remove_file(&current);
                Err(other.err().unwrap_or_else(|| {
                    Error::Conflict(format!(
                        "recording a version of dataset {name}: {COMMIT_ATTEMPTS} concurrent commits took every version number tried"
                    ))
                }))
            }
        }
    }
}

/// How often a commit tries the next version number when others keep taking it.
const COMMIT_ATTEMPTS: usize = 20;

/// The dataset of a connector's standalone runs.
pub fn connector_dataset(code: &str) -> String {
    format!("connector/{code}")
}

/// The feedback rows of a connector's standalone runs (exports).
pub fn connector_feedback_dataset(code: &str) -> String {
    format!("connector/{code}/feedback")
}

/// A pipeline's feed.
pub fn pipeline_dataset(pipeline: &str) -> String {
    format!("pipeline/{pipeline}")
}

/// The feedback a pipeline's exports gave, joined into its next run.
pub fn feedback_dataset(pipeline: &str) -> String {
    format!("pipeline/{pipeline}/feedback")
}

/// Every key of `records`, in order of first appearance: the columns of a table of them.
pub fn columns_of(records: &[serde_json::Value]) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for key in records
        .iter()
        .filter_map(|r| r.as_object())
        .flat_map(|o| o.keys())
    {
        if !columns.contains(key) {
            columns.push(key.clone());
        }
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(text: &str) -> Result<(i64, Vec<String>, String), RowsError> {
        let mut out = Vec::new();
        let (rows, columns) = copy_rows(text.as_bytes(), &mut out)?;
        Ok((rows, columns, String::from_utf8(out).unwrap()))
    }

    #[test]
    fn rows_are_counted_and_copied_as_written() {
        let (rows, columns, out) =
            copy("{\"id\":1, \"b\":2}\n\n{\"id\":\"2\",\"___x\":null,\"c\":\"\\u00e9\"}").unwrap();
        assert_eq!(rows, 2);
        assert_eq!(columns, ["___x", "b", "c", "id"]);
        assert_eq!(
            out,
            "{\"id\":1, \"b\":2}\n{\"id\":\"2\",\"___x\":null,\"c\":\"\\u00e9\"}\n"
        );
    }

    #[test]
    fn anything_but_flat_objects_is_refused_with_its_line() {
        for (text, line, reason) in [
            ("{\"id\":1}\nTHIS IS NOT JSON\n", 2, "not a JSON object"),
            ("{\"id\":1}\n[1,2,3]\n", 2, "not a JSON object"),
            ("\"text\"\n", 1, "not a JSON object"),
            ("{\"id\":1}\n\n{\"a\":{\"b\":1}}\n", 3, "rows must be flat"),
            ("{\"a\":[1]}\n", 1, "rows must be flat"),
            ("{\"id\":1} {\"id\":2}\n", 1, "not a JSON object"),
        ] {
            match copy(text) {
                Err(RowsError::Invalid {
                    line: at,
                    reason: why,
                }) => {
                    assert_eq!(at, line, "{text:?}");
                    assert!(why.contains(reason), "{text:?}: {why}");
                }
                other => panic!("{text:?} was accepted: {other:?}"),
            }
        }
    }

    #[test]
    fn scan_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        std::fs::write(&path, "{\"id\":1}\n[1]\n").unwrap();
        let err = scan(&path).unwrap_err().to_string();
        assert!(
            err.contains("rows.jsonl line 2: not a JSON object"),
            "{err}"
        );
        assert_eq!(scan(&dir.path().join("missing")).unwrap(), (0, vec![]));
    }
}
