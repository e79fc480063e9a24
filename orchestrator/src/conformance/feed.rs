//! The feeds the conformance kit gives a connector: generated products, and the
//! previous/current pairs that leave each export-delta stream empty in turn.

use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// Product `i`: `id`, `title`, `price`, `brand`, `description`, and a value for every
/// column in `required` it lacks.
pub fn product(i: usize, required: &[String]) -> Map<String, Value> {
    let mut row = json!({
        "id": format!("p{i}"),
        "title": format!("Product {i}"),
        "price": format!("{}.99", 5 + i % 200),
        "brand": format!("Brand {}", i % 7),
        "description": format!("A product of the conformance kit, number {i}."),
    });
    let row = row.as_object_mut().expect("an object");
    for column in required {
        if !row.contains_key(column) {
            row.insert(column.clone(), Value::String(format!("{column} {i}")));
        }
    }
    row.clone()
}

/// Writes `rows` as JSONL to `path`.
pub fn write(path: &Path, rows: impl IntoIterator<Item = Map<String, Value>>) -> Result<()> {
    let file = std::fs::File::create(path).map_err(Error::file("creating", path))?;
    let mut out = BufWriter::new(file);
    for row in rows {
        serde_json::to_writer(&mut out, &row).map_err(Error::json("writing a feed"))?;
        out.write_all(b"\n").map_err(Error::file("writing", path))?;
    }
    out.flush().map_err(Error::file("writing", path))
}

/// `n` products.
pub fn products(n: usize, required: &[String]) -> impl Iterator<Item = Map<String, Value>> + '_ {
    (0..n).map(move |i| product(i, required))
}

/// Rows of a feed.
pub type Rows = Vec<Map<String, Value>>;

/// The four streams of an export delta.
pub const STREAMS: [&str; 4] = ["new", "modified", "unchanged", "deleted"];

/// A previous snapshot and a current feed whose delta on `key` has two products in every
/// stream but `empty`, which has none.
pub fn delta_pair(empty: &str, key: &str, required: &[String]) -> (Rows, Rows) {
    let with_key = |i: usize| {
        let mut row = product(i, required);
        if key != "id" {
            row.insert(key.to_owned(), Value::String(format!("k{i}")));
        }
        row
    };
    let (mut previous, mut current) = (Vec::new(), Vec::new());
    for (n, stream) in STREAMS.iter().enumerate() {
        if *stream == empty {
            continue;
        }
        for i in [n * 10, n * 10 + 1] {
            let row = with_key(i);
            match *stream {
                "new" => current.push(row),
                "deleted" => previous.push(row),
                "unchanged" => {
                    previous.push(row.clone());
                    current.push(row);
                }
                _ => {
                    let mut changed = row.clone();
                    changed.insert("title".into(), Value::String(format!("Renamed {i}")));
                    previous.push(row);
                    current.push(changed);
                }
            }
        }
    }
    (previous, current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ids(rows: &[Map<String, Value>]) -> BTreeSet<String> {
        rows.iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn each_delta_pair_leaves_exactly_its_stream_empty() {
        for empty in STREAMS {
            let (previous, current) = delta_pair(empty, "id", &[]);
            let (p, c) = (ids(&previous), ids(&current));
            let new = c.difference(&p).count();
            let deleted = p.difference(&c).count();
            let both: Vec<_> = c.intersection(&p).collect();
            let modified = both
                .iter()
                .filter(|id| {
                    let find = |rows: &[Map<String, Value>]| {
                        rows.iter().find(|r| r["id"] == ***id).cloned()
                    };
                    find(&previous) != find(&current)
                })
                .count();
            let unchanged = both.len() - modified;
            let counts = [new, modified, unchanged, deleted];
            for (stream, count) in STREAMS.iter().zip(counts) {
                assert_eq!(
                    count == 0,
                    *stream == empty,
                    "{empty}: {stream} has {count}"
                );
            }
        }
    }

    #[test]
    fn products_carry_the_required_columns() {
        let row = product(3, &["gtin".to_owned(), "id".to_owned()]);
        assert_eq!(row["gtin"], "gtin 3");
        assert_eq!(row["id"], "p3");
    }
}
