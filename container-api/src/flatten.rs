//! Flattening of nested records into columns: `{"taxon":[{"id":11}]}` becomes
//! `{"taxon-0-id":11}` with the separator `-`. Works on raw member values, so a flat
//! record (the common case) is re-emitted without parsing or allocating its values.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::json::{self, Members};

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FlattenError {
    /// Two paths flatten to the same column (`{"a-b":1,"a":{"b":2}}`), or a key is
    /// repeated; one of the values would otherwise be dropped.
    Duplicate(String),
    /// Cannot happen for text that came out of the parser as a value; kept as an
    /// error rather than a panic all the same.
    Malformed(String),
}

/// Reusable buffers for flattening the records of one request.
pub(crate) struct Flattener<'a> {
    separator: Cow<'a, str>,
    /// The flattened columns of the last record, in document order.
    pub(crate) columns: Members<'a>,
    order: Vec<usize>,
}

impl<'a> Flattener<'a> {
    pub(crate) fn new(separator: Cow<'a, str>) -> Self {
        Self {
            separator,
            columns: Members::new(),
            order: Vec::new(),
        }
    }

    /// Flattens one record's members into [`Self::columns`]. An empty nested object or
    /// array keeps its column with a `null` value, so the column is not lost.
    pub(crate) fn flatten(
        &mut self,
        members: impl Iterator<Item = (Cow<'a, str>, &'a RawValue)>,
    ) -> Result<(), FlattenError> {
        self.columns.clear();
        for (key, value) in members {
            self.add(key, value)?;
        }
        self.check_unique()
    }

    fn add(&mut self, column: Cow<'a, str>, value: &'a RawValue) -> Result<(), FlattenError> {
        let text = value.get();
        match text.as_bytes()[0] {
            b'{' => {
                let mut members = Members::new();
                json::members_into(text, &mut members).map_err(|_| malformed(&column))?;
                if members.is_empty() {
                    self.columns.push((column, RawValue::NULL));
                    return Ok(());
                }
                for (key, child) in members {
                    let name = format!("{column}{}{key}", self.separator);
                    self.add(Cow::Owned(name), child)?;
                }
            }
            b'[' => {
                let items = json::elements(text).map_err(|_| malformed(&column))?;
                if items.is_empty() {
                    self.columns.push((column, RawValue::NULL));
                    return Ok(());
                }
                for (i, child) in items.into_iter().enumerate() {
                    let name = format!("{column}{}{i}", self.separator);
                    self.add(Cow::Owned(name), child)?;
                }
            }
            _ => self.columns.push((column, value)),
        }
        Ok(())
    }

    fn check_unique(&mut self) -> Result<(), FlattenError> {
        let columns = &self.columns;
        self.order.clear();
        self.order.extend(0..columns.len());
        self.order
            .sort_unstable_by(|&a, &b| columns[a].0.cmp(&columns[b].0));
        match self
            .order
            .windows(2)
            .find(|w| columns[w[0]].0 == columns[w[1]].0)
        {
            Some(w) => Err(FlattenError::Duplicate(columns[w[0]].0.to_string())),
            None => Ok(()),
        }
    }
}

fn malformed(column: &str) -> FlattenError {
    FlattenError::Malformed(column.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(text: &str, separator: &str) -> Result<String, FlattenError> {
        let mut members = Members::new();
        json::members_into(text, &mut members).unwrap();
        let mut flattener = Flattener::new(Cow::Borrowed(separator));
        flattener.flatten(members.into_iter())?;
        let mut out = Vec::new();
        json::write_object(
            &mut out,
            flattener.columns.iter().map(|(k, v)| (k.as_ref(), *v)),
        );
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn nested_arrays_and_objects() {
        assert_eq!(
            flat(
                r#"{"id": 1, "taxon": [{"id": 11, "name": "t"}], "dim": {"w": 2.5, "tags": ["a", "b"]}}"#,
                "-"
            )
            .unwrap(),
            r#"{"id":1,"taxon-0-id":11,"taxon-0-name":"t","dim-w":2.5,"dim-tags-0":"a","dim-tags-1":"b"}"#
        );
    }

    #[test]
    fn custom_separator_and_scalars_untouched() {
        assert_eq!(
            flat(
                r#"{"a": {"b": null, "c": true}, "d": "x\u00e9", "e": 1.50}"#,
                "_"
            )
            .unwrap(),
            r#"{"a_b":null,"a_c":true,"d":"x\u00e9","e":1.50}"#
        );
        assert_eq!(
            flat(r#"{"a": {"b\"": 1}}"#, "\"").unwrap(),
            r#"{"a\"b\"":1}"#
        );
    }

    #[test]
    fn empty_containers_keep_their_column() {
        assert_eq!(
            flat(r#"{"a": { }, "b": []}"#, "-").unwrap(),
            r#"{"a":null,"b":null}"#
        );
    }

    #[test]
    fn colliding_or_repeated_columns_are_an_error() {
        assert_eq!(
            flat(r#"{"a-b": 1, "a": {"b": 2}}"#, "-"),
            Err(FlattenError::Duplicate("a-b".into()))
        );
        assert_eq!(
            flat(r#"{"x": 1, "y": 2, "x": 3}"#, "-"),
            Err(FlattenError::Duplicate("x".into()))
        );
    }
}
