//! Export delta: the rows of a dataset split into `new`, `modified`, `unchanged` and
//! `deleted` against the snapshot of the last successful export, on a key column.
//!
//! Semantics:
//! - A row is identified by the string form of its key value: a string's decoded text or
//!   a number's literal text (`5` and `"5"` are the same key, `5.0` is another). A row
//!   whose key is missing or `null` is an error, and so is a key seen twice in one file.
//! - Two rows with the same key are unchanged when they hold the same columns with the
//!   same values, whatever the order of the columns and the JSON whitespace. A column that
//!   is `null` counts as missing. Strings, numbers and booleans compare by their string
//!   form, like keys (`"5"` equals `5`; `"\u00e9"` equals `"é"`); nested objects and arrays
//!   compare as parsed JSON with their object keys sorted.
//! - Lines that are empty or only whitespace are skipped; line numbers in errors count
//!   every line of the file, from 1.
//! - `new`, `modified` and `unchanged` hold the rows of the current file as they are there,
//!   in its order; `deleted` the rows of the previous file, in its order.
//!
//! Memory is bounded by the number of rows, not their size: each file is reduced to
//! (128-bit key hash, 128-bit row hash, line number) per row (40 bytes), the two files in
//! parallel, then sorted by key and merge-joined. The category of every current line (one
//! byte) and the line numbers of the deleted rows come out of the join; the lines are then
//! copied from the files as they are, without parsing them again.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_128;

pub use crate::model::DeltaCounts;

#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} line {line}: {reason}")]
    InvalidRow {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{path} line {line}: the row has no key column `{key}`")]
    MissingKey {
        path: PathBuf,
        line: u64,
        key: String,
    },
    #[error("{path} line {line}: duplicate key {value:?} (first on line {first})")]
    DuplicateKey {
        path: PathBuf,
        line: u64,
        first: u64,
        value: String,
    },
    #[error("{path}: more than {} lines", u32::MAX)]
    TooManyLines { path: PathBuf },
}

/// The output files, in the order of [`Category`].
pub const OUTPUT_FILES: [&str; 4] = [
    "new.jsonl",
    "modified.jsonl",
    "unchanged.jsonl",
    "deleted.jsonl",
];

#[derive(Clone, Copy)]
#[repr(u8)]
enum Category {
    New = 0,
    Modified = 1,
    Unchanged = 2,
    Deleted = 3,
}

/// Compares `current` (JSONL, one flat JSON object per line) with `previous` (`None`: no
/// snapshot yet, every row is new) on the `key` column and writes new.jsonl,
/// modified.jsonl, unchanged.jsonl and deleted.jsonl into `out_dir` (created if needed).
/// The four files appear only once all of them are complete; on an error none of them is
/// written (files of the same names from before are left as they were).
pub fn compute(
    previous: Option<&Path>,
    current: &Path,
    key: &str,
    out_dir: &Path,
) -> Result<DeltaCounts, DeltaError> {
    std::fs::create_dir_all(out_dir).map_err(|source| DeltaError::Write {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut outputs = Outputs::create(out_dir)?;

    // Both files are parsed and sorted at the same time, one of them in another thread.
    let (previous_rows, current_rows) = std::thread::scope(|scope| {
        let previous_rows = previous.map(|path| scope.spawn(move || sorted_rows(path, key)));
        let current_rows = sorted_rows(current, key);
        let previous_rows = previous_rows
            .map(|thread| thread.join().expect("the parsing thread does not panic"))
            .transpose();
        (previous_rows, current_rows)
    });
    let (previous_rows, _) = previous_rows?.unwrap_or_default();
    let (current_rows, current_lines) = current_rows?;

    // A merge join on the key: the category of every line of the current file (by line
    // number), and the line numbers of the deleted rows in the previous one.
    let mut categories = vec![Category::New; current_lines as usize + 1];
    let mut deleted = Vec::new();
    let mut current_iter = current_rows.iter().peekable();
    for old in &previous_rows {
        while current_iter.next_if(|row| row.key < old.key).is_some() {}
        match current_iter.next_if(|row| row.key == old.key) {
            Some(row) if row.hash == old.hash => {
                categories[row.line as usize] = Category::Unchanged
            }
            Some(row) => categories[row.line as usize] = Category::Modified,
            None => deleted.push(old.line),
        }
    }
    drop((previous_rows, current_rows));
    deleted.sort_unstable();

    let mut counts = [0u64; 4];
    let mut lines = Lines::open(current)?;
    while let Some((number, line)) = lines.next_row()? {
        let category = categories[number as usize];
        outputs.write(category, line)?;
        counts[category as usize] += 1;
    }
    if let Some(previous) = previous {
        let mut lines = Lines::open(previous)?;
        for wanted in deleted {
            loop {
                let Some((number, line)) = lines.next_row()? else {
                    return Err(shrank(previous));
                };
                if number == u64::from(wanted) {
                    outputs.write(Category::Deleted, line)?;
                    counts[Category::Deleted as usize] += 1;
                    break;
                }
            }
        }
    }

    outputs.commit()?;
    let [new, modified, unchanged, deleted] = counts;
    Ok(DeltaCounts {
        new,
        modified,
        unchanged,
        deleted,
    })
}

/// A row of a file reduced to hashes, and its line number.
struct HashedRow {
    key: [u64; 2],
    hash: [u64; 2],
    line: u32,
}

/// The rows of a file sorted by key, and the number of its lines; an error for a key
/// that repeats (the first such line in the file).
fn sorted_rows(path: &Path, key: &str) -> Result<(Vec<HashedRow>, u64), DeltaError> {
    let mut parser = RowParser::new(key);
    let mut rows = Vec::new();
    let mut lines = Lines::open(path)?;
    while let Some((number, line)) = lines.next_row()? {
        let row = parser.parse(line, path, number)?;
        let line = u32::try_from(number).map_err(|_| DeltaError::TooManyLines {
            path: path.to_path_buf(),
        })?;
        rows.push(HashedRow {
            key: row.key,
            hash: row.hash,
            line,
        });
    }
    rows.sort_unstable_by_key(|row| (row.key, row.line));
    let repeated = rows
        .windows(2)
        .filter(|pair| pair[0].key == pair[1].key)
        .map(|pair| (pair[0].line, pair[1].line))
        .min_by_key(|&(_, again)| again);
    if let Some((first, again)) = repeated {
        return Err(DeltaError::DuplicateKey {
            path: path.to_path_buf(),
            line: again.into(),
            first: first.into(),
            value: key_at(path, again.into(), key)?,
        });
    }
    Ok((rows, lines.number))
}

/// The string form of the key on a line known to have one.
fn key_at(path: &Path, wanted: u64, key: &str) -> Result<String, DeltaError> {
    let mut parser = RowParser::new(key);
    let mut lines = Lines::open(path)?;
    while let Some((number, line)) = lines.next_row()? {
        if number == wanted {
            parser.parse(line, path, number)?;
            return Ok(parser.key_text);
        }
    }
    Err(shrank(path))
}

/// For a file read a second time that ends before the line read the first time.
fn shrank(path: &Path) -> DeltaError {
    DeltaError::Read {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while read"),
    }
}

/// The xxh3-128 hash of a key's string form stands for the key itself: with 128 bits, a
/// collision among even billions of keys is far less likely than a hardware fault.
fn split(hash: u128) -> [u64; 2] {
    [hash as u64, (hash >> 64) as u64]
}

/// The lines of a file, read through one reused buffer.
struct Lines<'p> {
    path: &'p Path,
    reader: BufReader<File>,
    buffer: Vec<u8>,
    /// The number of the line last read, from 1.
    number: u64,
}

impl<'p> Lines<'p> {
    fn open(path: &'p Path) -> Result<Self, DeltaError> {
        let file = File::open(path).map_err(|source| DeltaError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path,
            reader: BufReader::with_capacity(1 << 20, file),
            buffer: Vec::with_capacity(4096),
            number: 0,
        })
    }

    /// The next line that is not blank, with its number and without its line ending;
    /// `None` at the end.
    fn next_row(&mut self) -> Result<Option<(u64, &[u8])>, DeltaError> {
        loop {
            self.buffer.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.buffer)
                .map_err(|source| DeltaError::Read {
                    path: self.path.to_path_buf(),
                    source,
                })?;
            if read == 0 {
                return Ok(None);
            }
            self.number += 1;
            let mut line = self.buffer.as_slice();
            line = line.strip_suffix(b"\n").unwrap_or(line);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.iter().all(u8::is_ascii_whitespace) {
                // Re-borrowed here so that the loop does not hold the borrow.
                let len = line.len();
                return Ok(Some((self.number, &self.buffer[..len])));
            }
        }
    }
}

/// The four output files, written under temporary names and renamed by [`Self::commit`];
/// dropped without a commit, it removes them.
struct Outputs {
    files: Vec<Output>,
}

struct Output {
    temp: PathBuf,
    path: PathBuf,
    writer: BufWriter<File>,
}

impl Outputs {
    fn create(dir: &Path) -> Result<Self, DeltaError> {
        let mut outputs = Self { files: Vec::new() };
        for name in OUTPUT_FILES {
            let temp = dir.join(format!(".{name}.partial"));
            let file = File::create(&temp).map_err(|source| DeltaError::Write {
                path: temp.clone(),
                source,
            })?;
            outputs.files.push(Output {
                temp,
                path: dir.join(name),
                writer: BufWriter::with_capacity(1 << 18, file),
            });
        }
        Ok(outputs)
    }

    fn write(&mut self, category: Category, line: &[u8]) -> Result<(), DeltaError> {
        let output = &mut self.files[category as usize];
        output
            .writer
            .write_all(line)
            .and_then(|()| output.writer.write_all(b"\n"))
            .map_err(|source| DeltaError::Write {
                path: output.temp.clone(),
                source,
            })
    }

    fn commit(mut self) -> Result<(), DeltaError> {
        for output in &mut self.files {
            output.writer.flush().map_err(|source| DeltaError::Write {
                path: output.temp.clone(),
                source,
            })?;
        }
        for output in &self.files {
            std::fs::rename(&output.temp, &output.path).map_err(|source| DeltaError::Write {
                path: output.path.clone(),
                source,
            })?;
        }
        self.files.clear();
        Ok(())
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        for output in self.files.drain(..) {
            let _ = std::fs::remove_file(output.temp);
        }
    }
}

/// A parsed row: the hash of its key and the hash of its content.
struct Row {
    key: [u64; 2],
    hash: [u64; 2],
}

/// Parses rows with reused buffers; `key_text` keeps the key of the last row for errors.
struct RowParser<'k> {
    key_column: &'k str,
    key_text: String,
    scratch: Vec<u8>,
}

impl<'k> RowParser<'k> {
    fn new(key_column: &'k str) -> Self {
        Self {
            key_column,
            key_text: String::new(),
            scratch: Vec::with_capacity(1024),
        }
    }

    fn parse(&mut self, line: &[u8], path: &Path, number: u64) -> Result<Row, DeltaError> {
        let invalid = |reason: String| DeltaError::InvalidRow {
            path: path.to_path_buf(),
            line: number,
            reason,
        };
        let mut members = MemberHasher {
            key_column: self.key_column,
            scratch: &mut self.scratch,
            hash: 0,
            key: None,
        };
        // Checked once here, so that the parser need not check every string.
        let line = std::str::from_utf8(line)
            .map_err(|e| invalid(format!("not valid UTF-8 at column {}", e.valid_up_to() + 1)))?;
        let mut deserializer = serde_json::Deserializer::from_str(line);
        deserializer
            .deserialize_map(&mut members)
            .and_then(|()| deserializer.end())
            .map_err(|e| invalid(format!("not a JSON object: {}", without_position(&e))))?;
        let hash = members.hash;
        let key = match members.key {
            None => false,
            Some(KeyValue::Repeated) => {
                return Err(invalid(format!(
                    "the key column `{}` appears twice",
                    self.key_column
                )))
            }
            Some(KeyValue::Raw(raw)) => string_form(raw, &mut self.key_text).map_err(|kind| {
                invalid(format!(
                    "the key column `{}` is {kind}; expected a string or a number",
                    self.key_column
                ))
            })?,
        };
        if !key {
            return Err(DeltaError::MissingKey {
                path: path.to_path_buf(),
                line: number,
                key: self.key_column.to_owned(),
            });
        }
        Ok(Row {
            key: split(xxh3_128(self.key_text.as_bytes())),
            hash: split(hash),
        })
    }
}

/// serde_json's message with "at column N" for its " at line 1 column N" (the line is
/// always 1 here), and no position where it has none (column 0).
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let message = text
        .rfind(" at line ")
        .map_or(text.as_str(), |at| &text[..at]);
    match error.column() {
        0 => message.to_owned(),
        column => format!("{message} at column {column}"),
    }
}

/// The key of a row whose key column holds `value`: its string form (a string as it is, a
/// number as written), the same in a delta and in a pipeline's join; `None` for `null`, a
/// boolean, an object or an array.
pub fn key_text(value: &serde_json::Value) -> Option<String> {
    let raw = serde_json::value::to_raw_value(value).ok()?;
    let mut text = String::new();
    matches!(string_form(&raw, &mut text), Ok(true)).then_some(text)
}

/// Puts the string form of a key value into `out`: `Ok(false)` for `null`, `Err` with
/// what it is for a boolean, an object or an array.
fn string_form(raw: &RawValue, out: &mut String) -> Result<bool, &'static str> {
    out.clear();
    let text = raw.get();
    match text.as_bytes()[0] {
        b'"' if !text.contains('\\') => out.push_str(&text[1..text.len() - 1]),
        b'"' => out.push_str(&serde_json::from_str::<String>(text).expect("a parsed string")),
        b'-' | b'0'..=b'9' => out.push_str(text),
        b'n' => return Ok(false),
        b't' | b'f' => return Err("a boolean"),
        b'{' => return Err("an object"),
        _ => return Err("an array"),
    }
    Ok(true)
}

enum KeyValue<'de> {
    Raw(&'de RawValue),
    Repeated,
}

/// Visits the members of one object: adds up (wrapping) the xxh3-128 hashes of every
/// (column, value) pair, so that the order of the columns does not matter, and takes out
/// the key column's raw value.
struct MemberHasher<'s, 'de> {
    key_column: &'s str,
    scratch: &'s mut Vec<u8>,
    hash: u128,
    key: Option<KeyValue<'de>>,
}

impl<'s, 'de> MemberHasher<'s, 'de> {
    fn add(&mut self, column: &str, value: &RawValue) {
        let text = value.get();
        let scratch = &mut *self.scratch;
        scratch.clear();
        // The length first, so that ("ab", "c") and ("a", "bc") differ.
        scratch.extend_from_slice(&(column.len() as u64).to_le_bytes());
        scratch.extend_from_slice(column.as_bytes());
        match text.as_bytes()[0] {
            b'n' => return,
            b'"' if !text.contains('\\') => {
                scratch.push(b's');
                scratch.extend_from_slice(&text.as_bytes()[1..text.len() - 1]);
            }
            b'"' => {
                scratch.push(b's');
                let decoded: String = serde_json::from_str(text).expect("a parsed string");
                scratch.extend_from_slice(decoded.as_bytes());
            }
            b'{' | b'[' => {
                scratch.push(b'j');
                let value: Value = serde_json::from_str(text).expect("a parsed value");
                write_canonical(&value, scratch);
            }
            _ => {
                scratch.push(b's');
                scratch.extend_from_slice(text.as_bytes());
            }
        }
        self.hash = self.hash.wrapping_add(xxh3_128(scratch));
    }
}

impl<'de> Visitor<'de> for &mut MemberHasher<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Column(column)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            if column == self.key_column {
                self.key = Some(match self.key {
                    None => KeyValue::Raw(value),
                    Some(_) => KeyValue::Repeated,
                });
            }
            self.add(&column, value);
        }
        Ok(())
    }
}

/// A column name, borrowed from the line unless it has escapes.
struct Column<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Column<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ColumnVisitor;

        impl<'de> Visitor<'de> for ColumnVisitor {
            type Value = Column<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a column name")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Column(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Column(Cow::Owned(v.to_owned())))
            }
        }

        deserializer.deserialize_str(ColumnVisitor)
    }
}

/// Compact JSON with the keys of every object sorted.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).expect("writing to a Vec");
                out.push(b':');
                write_canonical(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(out, scalar).expect("writing to a Vec"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        dir: tempfile::TempDir,
    }

    impl Case {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn file(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        }

        fn out(&self) -> PathBuf {
            self.dir.path().join("out")
        }

        fn run(&self, previous: Option<&str>, current: &str) -> Result<DeltaCounts, DeltaError> {
            let previous = previous.map(|text| self.file("previous.jsonl", text));
            let current = self.file("current.jsonl", current);
            compute(previous.as_deref(), &current, "id", &self.out())
        }

        fn output(&self, name: &str) -> String {
            std::fs::read_to_string(self.out().join(name)).unwrap()
        }

        /// The names in the output directory, temporary ones included.
        fn listing(&self) -> Vec<String> {
            let Ok(entries) = std::fs::read_dir(self.out()) else {
                return Vec::new();
            };
            let mut names: Vec<String> = entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        }
    }

    fn counts(new: u64, modified: u64, unchanged: u64, deleted: u64) -> DeltaCounts {
        DeltaCounts {
            new,
            modified,
            unchanged,
            deleted,
        }
    }

    #[test]
    fn every_category() {
        let case = Case::new();
        let previous = concat!(
            r#"{"id":"1","title":"same"}"#,
            "\n",
            r#"{"id":"2","title":"old"}"#,
            "\n",
            r#"{"id":"3","title":"gone"}"#,
            "\n",
            r#"{"id":"4","title":"gone too"}"#,
            "\n",
        );
        let current = concat!(
            r#"{"id":"5","title":"added"}"#,
            "\n",
            r#"{"id":"2","title":"new"}"#,
            "\n",
            r#"{"id":"1","title":"same"}"#,
            "\n",
        );
        assert_eq!(
            case.run(Some(previous), current).unwrap(),
            counts(1, 1, 1, 2)
        );
        assert_eq!(
            case.output("new.jsonl"),
            "{\"id\":\"5\",\"title\":\"added\"}\n"
        );
        assert_eq!(
            case.output("modified.jsonl"),
            "{\"id\":\"2\",\"title\":\"new\"}\n"
        );
        assert_eq!(
            case.output("unchanged.jsonl"),
            "{\"id\":\"1\",\"title\":\"same\"}\n"
        );
        assert_eq!(
            case.output("deleted.jsonl"),
            "{\"id\":\"3\",\"title\":\"gone\"}\n{\"id\":\"4\",\"title\":\"gone too\"}\n"
        );
        assert_eq!(
            case.listing(),
            [
                "deleted.jsonl",
                "modified.jsonl",
                "new.jsonl",
                "unchanged.jsonl"
            ]
        );
    }

    #[test]
    fn column_order_and_whitespace_do_not_matter() {
        let case = Case::new();
        let previous = "{\"id\":1,\"a\":\"x\",\"b\":[1,{\"c\":2,\"d\":3}]}\n";
        let current =
            "  { \"b\" : [ 1 , { \"d\" : 3, \"c\" : 2 } ] ,\t\"a\":\"x\", \"id\": 1 }\r\n";
        assert_eq!(
            case.run(Some(previous), current).unwrap(),
            counts(0, 0, 1, 0)
        );
        // The row is written as it is in the current file, without its line ending.
        assert_eq!(
            case.output("unchanged.jsonl"),
            current.trim_end().to_owned() + "\n"
        );
    }

    #[test]
    fn values_compare_by_their_string_form_and_null_is_missing() {
        let case = Case::new();
        let previous = r#"{"id":1,"a":"5","b":"é","c":"x","d":null}"#;
        let current = r#"{"id":1,"a":5,"b":"\u00e9","c":"x","e":null}"#;
        assert_eq!(
            case.run(Some(previous), current).unwrap(),
            counts(0, 0, 1, 0)
        );

        for changed in [
            r#"{"id":1,"a":"5","b":"é","c":"y"}"#,
            r#"{"id":1,"a":"5","b":"é","c":"x","d":""}"#,
            r#"{"id":1,"a":"5","b":"é"}"#,
            r#"{"id":1,"a":"5.0","b":"é","c":"x"}"#,
            r#"{"id":1,"a":"5","b":"é","cx":""}"#,
        ] {
            assert_eq!(
                case.run(Some(previous), changed).unwrap(),
                counts(0, 1, 0, 0),
                "{changed}"
            );
        }
    }

    #[test]
    fn numeric_and_string_keys_are_the_same_key() {
        let case = Case::new();
        let previous = "{\"id\":5,\"a\":1}\n{\"id\":\"6\",\"a\":1}\n{\"id\":7.0,\"a\":1}\n";
        let current = "{\"id\":\"5\",\"a\":1}\n{\"id\":6,\"a\":2}\n{\"id\":7,\"a\":1}\n";
        assert_eq!(
            case.run(Some(previous), current).unwrap(),
            counts(1, 1, 1, 1)
        );
        assert_eq!(case.output("new.jsonl"), "{\"id\":7,\"a\":1}\n");
        assert_eq!(case.output("deleted.jsonl"), "{\"id\":7.0,\"a\":1}\n");
        // An escaped key is the same key as its decoded text.
        let current = "{\"id\":\"\\u0035\",\"a\":1}\n";
        assert_eq!(
            case.run(Some("{\"id\":5,\"a\":1}"), current).unwrap(),
            counts(0, 0, 1, 0)
        );
    }

    #[test]
    fn no_snapshot_makes_every_row_new() {
        let case = Case::new();
        let current = "{\"id\":1}\n\n{\"id\":2}";
        assert_eq!(case.run(None, current).unwrap(), counts(2, 0, 0, 0));
        assert_eq!(case.output("new.jsonl"), "{\"id\":1}\n{\"id\":2}\n");
        assert_eq!(case.output("deleted.jsonl"), "");
    }

    #[test]
    fn empty_files() {
        let case = Case::new();
        assert_eq!(case.run(Some(""), "").unwrap(), counts(0, 0, 0, 0));
        assert_eq!(case.run(None, "\n \n").unwrap(), counts(0, 0, 0, 0));
        assert_eq!(
            case.run(Some("{\"id\":1}\n"), "").unwrap(),
            counts(0, 0, 0, 1)
        );
        assert_eq!(case.output("deleted.jsonl"), "{\"id\":1}\n");
        assert_eq!(
            case.run(Some(""), "{\"id\":1}").unwrap(),
            counts(1, 0, 0, 0)
        );
        for name in OUTPUT_FILES {
            assert!(case.out().join(name).exists(), "{name}");
        }
    }

    /// Thousands of rows, the current file in another order: every row lands where it
    /// should.
    #[test]
    fn many_rows_in_another_order() {
        let row =
            |id: u64, price: u64| format!(r#"{{"id":"{id}","title":"T {id}","price":{price}}}"#);
        let rows = 3000;
        let mut previous = String::new();
        for i in 0..rows {
            previous += &row(i, 1);
            previous.push('\n');
        }
        let mut current = String::new();
        let mut expected: [Vec<u64>; 4] = Default::default();
        for n in 0..rows {
            let i = n * 7 % rows;
            let line = match i % 10 {
                0 => {
                    expected[Category::Deleted as usize].push(i);
                    continue;
                }
                1 => {
                    expected[Category::Modified as usize].push(i);
                    row(i, 2)
                }
                2 => {
                    expected[Category::New as usize].push(rows + i);
                    expected[Category::Unchanged as usize].push(i);
                    format!("{}\n{}", row(rows + i, 1), row(i, 1))
                }
                3 => {
                    expected[Category::Unchanged as usize].push(i);
                    format!(r#"{{ "price": 1, "title": "T {i}", "id": {i} }}"#)
                }
                _ => {
                    expected[Category::Unchanged as usize].push(i);
                    row(i, 1)
                }
            };
            current += &line;
            current.push('\n');
        }
        let case = Case::new();
        let got = case.run(Some(&previous), &current).unwrap();
        let lengths = expected.each_ref().map(|ids| ids.len() as u64);
        assert_eq!(got, counts(lengths[0], lengths[1], lengths[2], lengths[3]));
        for (name, mut ids) in OUTPUT_FILES.into_iter().zip(expected) {
            let mut written: Vec<u64> = case
                .output(name)
                .lines()
                .map(|line| {
                    let value: Value = serde_json::from_str(line).unwrap();
                    match &value["id"] {
                        Value::String(id) => id.parse().unwrap(),
                        id => id.as_u64().unwrap(),
                    }
                })
                .collect();
            written.sort_unstable();
            ids.sort_unstable();
            assert_eq!(written, ids, "{name}");
        }
    }

    #[test]
    fn another_key_column() {
        let case = Case::new();
        let previous = case.file("p.jsonl", "{\"sku\":\"a\",\"id\":1}\n");
        let current = case.file("c.jsonl", "{\"sku\":\"a\",\"id\":2}\n");
        let got = compute(Some(&previous), &current, "sku", &case.out()).unwrap();
        assert_eq!(got, counts(0, 1, 0, 0));
    }

    fn error(previous: Option<&str>, current: &str) -> String {
        let case = Case::new();
        let message = case.run(previous, current).unwrap_err().to_string();
        assert_eq!(case.listing(), Vec::<String>::new(), "after: {message}");
        let dir = case.dir.path().display().to_string();
        message.replace(&dir, "DIR")
    }

    #[test]
    fn errors_name_what_is_wrong_and_leave_no_output() {
        assert_eq!(
            error(Some("{\"id\":1}\n[1,2]\n"), "{\"id\":1}"),
            "DIR/previous.jsonl line 2: not a JSON object: invalid type: sequence, \
             expected a JSON object"
        );
        assert_eq!(
            error(None, "{\"id\":1}\n\n{\"id\":2,\"a\":}\n"),
            "DIR/current.jsonl line 3: not a JSON object: expected value at column 13"
        );
        assert_eq!(
            error(None, "{\"id\":1} {}"),
            "DIR/current.jsonl line 1: not a JSON object: trailing characters at column 10"
        );
        assert_eq!(
            error(None, "{\"id\":1}\n{\"name\":\"x\"}\n"),
            "DIR/current.jsonl line 2: the row has no key column `id`"
        );
        assert_eq!(
            error(None, "{\"id\":null}"),
            "DIR/current.jsonl line 1: the row has no key column `id`"
        );
        assert_eq!(
            error(None, "{\"id\":[1]}"),
            "DIR/current.jsonl line 1: the key column `id` is an array; \
             expected a string or a number"
        );
        assert_eq!(
            error(None, "{\"id\":1,\"id\":2}"),
            "DIR/current.jsonl line 1: the key column `id` appears twice"
        );
        assert_eq!(
            error(Some("{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"a\"}\n"), ""),
            "DIR/previous.jsonl line 3: duplicate key \"a\" (first on line 1)"
        );
        // The first repeated line in the file is named, with the line before it.
        assert_eq!(
            error(
                None,
                "{\"id\":3}\n{\"id\":2}\n{\"id\":3}\n{\"id\":2}\n{\"id\":3}\n"
            ),
            "DIR/current.jsonl line 3: duplicate key \"3\" (first on line 1)"
        );
        // A duplicate in the current file, whether or not the key was in the previous one.
        assert_eq!(
            error(Some("{\"id\":1}"), "{\"id\":1}\n{\"id\":\"1\"}\n"),
            "DIR/current.jsonl line 2: duplicate key \"1\" (first on line 1)"
        );
        assert_eq!(
            error(Some("{\"id\":1}"), "{\"id\":2}\n{\"id\":2}\n"),
            "DIR/current.jsonl line 2: duplicate key \"2\" (first on line 1)"
        );
    }

    #[test]
    fn invalid_utf8_is_named() {
        let case = Case::new();
        let current = case.dir.path().join("current.jsonl");
        std::fs::write(&current, b"{\"id\":1}\n{\"id\":\"\xff\"}\n").unwrap();
        let message = compute(None, &current, "id", &case.out())
            .unwrap_err()
            .to_string();
        let expected = format!("{} line 2: not valid UTF-8 at column 8", current.display());
        assert_eq!(message, expected);
        assert_eq!(case.listing(), Vec::<String>::new());
    }

    #[test]
    fn a_missing_file_is_named() {
        let case = Case::new();
        let current = case.file("current.jsonl", "");
        let missing = case.dir.path().join("nope.jsonl");
        let message = compute(Some(&missing), &current, "id", &case.out())
            .unwrap_err()
            .to_string();
        assert!(message.starts_with(&format!("cannot read {}: ", missing.display())));
        assert_eq!(case.listing(), Vec::<String>::new());
    }

    #[test]
    fn an_error_keeps_the_outputs_of_before() {
        let case = Case::new();
        case.run(None, "{\"id\":1}").unwrap();
        case.run(None, "{\"id\":1}\n{\"id\":1}").unwrap_err();
        assert_eq!(case.output("new.jsonl"), "{\"id\":1}\n");
        assert_eq!(case.listing().len(), 4);
    }
}
