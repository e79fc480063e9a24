//! Column mappings: the columns a pipeline step gets, in the order it lists them and under
//! the names it gives them (`columns: [{column: title, as: name}, {column: price}]`). The
//! orchestrator applies a step's mapping to the rows between steps, file to file, so the
//! connector never sees the other columns.
//!
//! On a source the join key is kept under its own name, because the join needs it: a
//! source's mapping that gives no column the name `id` keeps the row's `id` as `id`, first.
//! So `{column: id, as: sku}` on a source gives both `id` and `sku`, and
//! `{column: sku, as: id}` joins the source on its `sku` (its own `id` is dropped).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::model::ColumnMapping;

/// Checks one step's mapping: a list of at least one column, no empty name, and no two
/// columns given the same name. The message names the entry (`columns[1]: ...`); the
/// caller puts the step in front of it.
pub fn check(columns: &[ColumnMapping]) -> Result<(), String> {
    if columns.is_empty() {
        return Err(
            "columns: an empty list keeps no column; leave `columns` out to keep them all".into(),
        );
    }
    let mut outputs = HashSet::new();
    for (i, mapping) in columns.iter().enumerate() {
        if mapping.column.is_empty() {
            return Err(format!("columns[{i}]: the column name is empty"));
        }
        if mapping.rename.as_deref() == Some("") {
            return Err(format!("columns[{i}] ({}): `as` is empty", mapping.column));
        }
        let output = mapping.output();
        if !outputs.insert(output) {
            return Err(format!(
                "columns[{i}] ({}): another column is already named {output:?}",
                mapping.column
            ));
        }
    }
    Ok(())
}

/// A step's mapping, ready to apply to rows: the input column and the output name (as
/// JSON text) of each column kept, in order.
#[derive(Debug)]
pub struct Mapping<'a> {
    columns: Vec<(&'a str, String)>,
}

impl<'a> Mapping<'a> {
    /// The mapping of a data service or an export: exactly the listed columns.
    pub fn new(columns: &'a [ColumnMapping]) -> Self {
        Self {
            columns: columns
                .iter()
                .map(|mapping| (mapping.column.as_str(), json_string(mapping.output())))
                .collect(),
        }
    }

    /// The mapping of a source: the listed columns, and first the join key `key` under its
    /// own name unless a listed column is given that name.
    pub fn keeping_key(columns: &'a [ColumnMapping], key: &'a str) -> Self {
        let mut mapping = Self::new(columns);
        if !columns.iter().any(|mapping| mapping.output() == key) {
            mapping.columns.insert(0, (key, json_string(key)));
        }
        mapping
    }

    /// Writes the rows of the JSONL file `from` to `to`, each with the mapped columns only,
    /// and returns the row count. A column a row lacks is absent from its output; values
    /// are copied as they were written. Blank lines are dropped. A line that is not a JSON
    /// object is an error naming `from` and the line, and leaves no `to` behind.
    pub fn apply(&self, from: &Path, to: &Path) -> Result<i64> {
        let source = std::fs::File::open(from).map_err(Error::file("opening", from))?;
        let dir = to.parent().unwrap_or(Path::new("."));
        // Written beside `to` and renamed onto it once whole: an error drops (removes) it.
        let mut staged = tempfile::Builder::new()
            .prefix(".mapping-")
            .tempfile_in(dir)
            .map_err(Error::file("creating a file in", dir))?;
        let rows = {
            let mut out = BufWriter::new(staged.as_file_mut());
            let rows = self.copy(
                BufReader::with_capacity(1 << 16, source),
                &mut out,
                from,
                to,
            )?;
            out.flush().map_err(Error::file("writing", to))?;
            rows
        };
        staged
            .persist(to)
            .map_err(|e| Error::file("writing", to)(e.error))?;
        Ok(rows)
    }

    fn copy(
        &self,
        mut reader: impl BufRead,
        out: &mut impl Write,
        from: &Path,
        to: &Path,
    ) -> Result<i64> {
        let mut line = Vec::new();
        let mut text = Vec::new();
        let (mut rows, mut number) = (0, 0u64);
        loop {
            line.clear();
            if reader
                .read_until(b'\n', &mut line)
                .map_err(Error::file("reading", from))?
                == 0
            {
                break;
            }
            number += 1;
            if line.trim_ascii().is_empty() {
                continue;
            }
            let row: HashMap<Cow<str>, &RawValue> = serde_json::from_slice(&line).map_err(|e| {
                Error::Other(format!(
                    "{} line {number}: not a JSON object: {e}",
                    from.display()
                ))
            })?;
            text.clear();
            text.push(b'{');
            for (column, output) in &self.columns {
                if let Some(value) = row.get(*column) {
                    if text.len() > 1 {
                        text.push(b',');
                    }
                    text.extend_from_slice(output.as_bytes());
                    text.push(b':');
                    text.extend_from_slice(value.get().as_bytes());
                }
            }
            text.extend_from_slice(b"}\n");
            out.write_all(&text).map_err(Error::file("writing", to))?;
            rows += 1;
        }
        Ok(rows)
    }
}

/// `name` as a JSON string.
fn json_string(name: &str) -> String {
    serde_json::to_string(name).expect("a string serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(list: &[(&str, Option<&str>)]) -> Vec<ColumnMapping> {
        list.iter()
            .map(|(column, rename)| ColumnMapping {
                column: column.to_string(),
                rename: rename.map(str::to_owned),
            })
            .collect()
    }

    /// Maps `input` and returns the row count and the output text.
    fn map(mapping: &Mapping, input: &str) -> (tempfile::TempDir, Result<i64>, Option<String>) {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("in.jsonl");
        std::fs::write(&from, input).unwrap();
        let to = dir.path().join("out.jsonl");
        let rows = mapping.apply(&from, &to);
        let text = std::fs::read_to_string(&to).ok();
        (dir, rows, text)
    }

    #[test]
    fn keeps_the_listed_columns_in_order_under_their_names() {
        let list = columns(&[("title", Some("name")), ("price", None), ("id", None)]);
        let input = "{\"id\":\"a\",\"price\":1.50,\"title\":\"Shoe\",\"colour\":\"red\"}\n\n{\"price\":2,\"title\":\"Hat \\\"x\\\"\",\"id\":7}";
        let (_dir, rows, text) = map(&Mapping::new(&list), input);
        assert_eq!(rows.unwrap(), 2, "the blank line is dropped");
        assert_eq!(
            text.unwrap(),
            "{\"name\":\"Shoe\",\"price\":1.50,\"id\":\"a\"}\n{\"name\":\"Hat \\\"x\\\"\",\"price\":2,\"id\":7}\n",
            "values are copied as written, in the listed order"
        );
    }

    #[test]
    fn a_missing_column_is_absent_from_that_row() {
        let list = columns(&[("title", Some("name")), ("price", None)]);
        let input = "{\"id\":1,\"price\":3}\n{\"id\":2}\n{\"title\":null}\n";
        let (_dir, rows, text) = map(&Mapping::new(&list), input);
        assert_eq!(rows.unwrap(), 3);
        assert_eq!(text.unwrap(), "{\"price\":3}\n{}\n{\"name\":null}\n");
    }

    #[test]
    fn a_source_keeps_its_join_key_unless_a_column_is_named_after_it() {
        let rows = "{\"id\":\"a\",\"sku\":\"s1\",\"title\":\"t\"}\n";
        let list = columns(&[("title", None)]);
        let (_dir, _, text) = map(&Mapping::keeping_key(&list, "id"), rows);
        assert_eq!(text.unwrap(), "{\"id\":\"a\",\"title\":\"t\"}\n");
        let list = columns(&[("id", Some("key"))]);
        let (_dir, _, text) = map(&Mapping::keeping_key(&list, "id"), rows);
        assert_eq!(text.unwrap(), "{\"id\":\"a\",\"key\":\"a\"}\n", "a copy");
        let list = columns(&[("title", None), ("sku", Some("id"))]);
        let (_dir, _, text) = map(&Mapping::keeping_key(&list, "id"), rows);
        assert_eq!(text.unwrap(), "{\"title\":\"t\",\"id\":\"s1\"}\n");
        let list = columns(&[("title", None)]);
        let (_dir, _, text) = map(&Mapping::new(&list), rows);
        assert_eq!(text.unwrap(), "{\"title\":\"t\"}\n", "not on other steps");
    }

    #[test]
    fn a_line_that_is_not_an_object_is_an_error_naming_it_and_leaves_no_output() {
        let list = columns(&[("id", None)]);
        for bad in ["[1, 2]", "not json", "\"text\"", "null", "{\"id\": 1"] {
            let input = format!("{{\"id\":1}}\n\n{bad}\n{{\"id\":2}}\n");
            let (dir, rows, text) = map(&Mapping::new(&list), &input);
            let err = rows.unwrap_err().to_string();
            assert!(
                err.contains("in.jsonl line 3: not a JSON object"),
                "{bad}: {err}"
            );
            assert_eq!(text, None, "{bad}: no output");
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert_eq!(left.len(), 1, "{bad}: only the input remains: {left:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("bytes.jsonl");
        std::fs::write(&from, b"{\"id\": \"\xff\xfe\"}\n").unwrap();
        let err = Mapping::new(&list)
            .apply(&from, &dir.path().join("out"))
            .unwrap_err();
        assert!(err.to_string().contains("bytes.jsonl line 1"), "{err}");
    }

    #[test]
    fn mappings_are_checked_when_a_pipeline_is_parsed() {
        let parse =
            |steps: &str| crate::model::Pipeline::parse(&format!("name: shop\n{steps}"), false);
        let ok = parse("sources: [{connector: a, columns: [{column: title, as: name}]}]\nservices: [{connector: b, columns: [{column: name}, {column: price, as: cost}]}]\n").unwrap();
        assert_eq!(
            ok.services[0].columns.as_deref().unwrap()[1],
            ColumnMapping {
                column: "price".into(),
                rename: Some("cost".into())
            }
        );
        let twice = parse("sources: [{connector: a}]\nservices: [{connector: b, columns: [{column: title, as: name}, {column: name}]}]\n").unwrap_err();
        assert_eq!(
            twice,
            "services[0].columns[1] (name): another column is already named \"name\""
        );
        let empty = parse("sources: [{connector: a}]\nexports: [{connector: b}, {connector: c, columns: [{column: id, as: ''}]}]\n").unwrap_err();
        assert_eq!(empty, "exports[1].columns[0] (id): `as` is empty");
        let source = parse("sources: [{connector: a}, {connector: b, columns: []}]\n").unwrap_err();
        assert!(
            source.starts_with("sources[1].columns: an empty list"),
            "{source}"
        );
        let listener = parse("listeners: [{name: o, auth: {type: token}}]\nsources: [{listener: o, columns: [{column: id}]}]\n").unwrap_err();
        assert!(
            listener.contains("no options, limits, columns or connection"),
            "{listener}"
        );
        let unknown =
            parse("sources: [{connector: a, columns: [{column: id, to: x}]}]\n").unwrap_err();
        assert!(unknown.contains("unknown field `to`"), "{unknown}");
    }

    #[test]
    fn a_missing_input_is_an_error() {
        let list = columns(&[("id", None)]);
        let dir = tempfile::tempdir().unwrap();
        let err = Mapping::new(&list)
            .apply(&dir.path().join("nope.jsonl"), &dir.path().join("out"))
            .unwrap_err();
        assert!(err.to_string().contains("nope.jsonl"), "{err}");
    }

    #[test]
    fn mappings_are_checked() {
        assert!(check(&columns(&[
            ("a", None),
            ("b", Some("c")),
            ("c", Some("a2"))
        ]))
        .is_ok());
        assert!(
            check(&columns(&[("a", None), ("a", Some("b"))])).is_ok(),
            "one column twice under two names"
        );
        let err = check(&columns(&[("a", None), ("b", Some("a"))])).unwrap_err();
        assert_eq!(err, "columns[1] (b): another column is already named \"a\"");
        let err = check(&columns(&[("a", Some("x")), ("b", Some("x"))])).unwrap_err();
        assert!(err.starts_with("columns[1] (b):"), "{err}");
        let err = check(&columns(&[("a", None), ("", None)])).unwrap_err();
        assert_eq!(err, "columns[1]: the column name is empty");
        let err = check(&columns(&[("a", Some(""))])).unwrap_err();
        assert_eq!(err, "columns[0] (a): `as` is empty");
        let err = check(&[]).unwrap_err();
        assert!(err.starts_with("columns: an empty list"), "{err}");
    }
}
