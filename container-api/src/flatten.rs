//! Flattening of nested records into columns: `{"taxon":[{"id":11}]}` becomes
//! `{"taxon-0-id":11}` with the separator `-`.

use serde_json::{Map, Value};

/// Flattens `record` into scalar columns joined by `separator`. An empty nested
/// object or array keeps its column with a `null` value, so the column is not lost.
/// Fails with the column name when two paths flatten to the same column
/// (`{"a-b":1,"a":{"b":2}}`), as one of the values would otherwise be dropped.
pub fn flatten(record: Map<String, Value>, separator: &str) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (key, value) in record {
        flatten_into(&mut out, key, value, separator)?;
    }
    Ok(out)
}

fn flatten_into(
    out: &mut Map<String, Value>,
    prefix: String,
    value: Value,
    separator: &str,
) -> Result<(), String> {
    let children: Vec<(String, Value)> = match value {
        Value::Object(map) if !map.is_empty() => map.into_iter().collect(),
        Value::Array(items) if !items.is_empty() => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        Value::Object(_) | Value::Array(_) => return insert(out, prefix, Value::Null),
        scalar => return insert(out, prefix, scalar),
    };
    for (key, child) in children {
        flatten_into(out, format!("{prefix}{separator}{key}"), child, separator)?;
    }
    Ok(())
}

fn insert(out: &mut Map<String, Value>, column: String, value: Value) -> Result<(), String> {
    if out.contains_key(&column) {
        return Err(column);
    }
    out.insert(column, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flat(v: Value, sep: &str) -> Result<Value, String> {
        let Value::Object(map) = v else {
            panic!("not an object")
        };
        flatten(map, sep).map(Value::Object)
    }

    #[test]
    fn nested_arrays_and_objects() {
        let got = flat(
            json!({"id": 1, "taxon": [{"id": 11, "name": "t"}], "dim": {"w": 2.5, "tags": ["a", "b"]}}),
            "-",
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"id": 1, "taxon-0-id": 11, "taxon-0-name": "t", "dim-w": 2.5, "dim-tags-0": "a", "dim-tags-1": "b"})
        );
    }

    #[test]
    fn custom_separator_and_scalars_untouched() {
        let got = flat(json!({"a": {"b": null, "c": true}, "d": "x"}), "_").unwrap();
        assert_eq!(got, json!({"a_b": null, "a_c": true, "d": "x"}));
    }

    #[test]
    fn empty_containers_keep_their_column() {
        let got = flat(json!({"a": {}, "b": []}), "-").unwrap();
        assert_eq!(got, json!({"a": null, "b": null}));
    }

    #[test]
    fn colliding_columns_are_an_error() {
        assert_eq!(
            flat(json!({"a-b": 1, "a": {"b": 2}}), "-"),
            Err("a-b".to_string())
        );
    }
}
