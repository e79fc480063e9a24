//! Records out of a response: `contentPath` picks the elements, each becomes
//! `{wrapper: element, ...siblings}`, and `explodeEntityPath` makes one record per element
//! of a sub-array. Records stay nested; the Container API flattens them.
//!
//! Two steps, so that pagination can read the whole response before the elements are
//! taken out of it (moved, not copied: a page of a thousand records is most of a run's
//! work): [`locate`] finds the elements, [`Located::records`] takes them.

use std::hash::{Hash, Hasher};

use xxhash_rust::xxh3::Xxh3;

use serde_json::{Map, Value};
use serde_json_path::PathElement;

use crate::model::{Extraction, Object};

/// What pagination sees of a page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Page {
    /// Elements matched by `contentPath` (before exploding): what pagination counts.
    pub elements: usize,
    /// A digest of the elements (their count, the first and the last), to notice an API
    /// that serves the same page again.
    pub fingerprint: u64,
}

/// The elements `contentPath` matched in a response, found but not yet taken out.
#[derive(Debug)]
pub struct Located {
    pub page: Page,
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    location: Vec<Step>,
    wrapper: Option<String>,
    siblings: Object,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Name(String),
    Index(usize),
}

fn steps(elements: &[PathElement<'_>]) -> Vec<Step> {
    elements
        .iter()
        .map(|e| match e {
            PathElement::Name(n) => Step::Name((*n).to_owned()),
            PathElement::Index(i) => Step::Index(*i),
        })
        .collect()
}

fn last_name(steps: &[Step]) -> Option<&str> {
    steps.iter().rev().find_map(|s| match s {
        Step::Name(n) => Some(n.as_str()),
        Step::Index(_) => None,
    })
}

/// Applies `keepAttributes` (if any) then `skipAttributes` to an object's top-level keys.
fn filter(map: &mut Object, extraction: &Extraction) {
    if let Some(keep) = &extraction.keep {
        map.retain(|k, _| keep.contains(k));
    }
    map.retain(|k, _| !extraction.skip.contains(k));
}

fn filtered(mut value: Value, extraction: &Extraction) -> Value {
    if let Value::Object(map) = &mut value {
        filter(map, extraction);
    }
    value
}

/// One record: the element under its wrapper, or its own members when there is no name
/// to wrap it in (a root array), plus the siblings.
fn record(wrapper: Option<&str>, element: Value, siblings: &Object) -> Object {
    let mut record = siblings.clone();
    match (wrapper, element) {
        (Some(name), element) => {
            record.insert(name.to_owned(), element);
        }
        (None, Value::Object(members)) => record.extend(members),
        (None, other) => {
            record.insert("value".to_owned(), other);
        }
    }
    record
}

/// Feeds `value` to `hasher` without serializing it.
fn digest(value: &Value, hasher: &mut impl Hasher) {
    match value {
        Value::Null => 0u8.hash(hasher),
        Value::Bool(b) => (1u8, b).hash(hasher),
        Value::Number(n) => (2u8, n).hash(hasher),
        Value::String(s) => (3u8, s).hash(hasher),
        Value::Array(items) => {
            (4u8, items.len()).hash(hasher);
            items.iter().for_each(|item| digest(item, hasher));
        }
        Value::Object(map) => {
            (5u8, map.len()).hash(hasher);
            for (k, v) in map {
                k.hash(hasher);
                digest(v, hasher);
            }
        }
    }
}

/// The elements of a matched node: an array's items, or the node itself.
fn items_of(node: &Value) -> &[Value] {
    match node {
        Value::Array(items) => items,
        other => std::slice::from_ref(other),
    }
}

/// Finds what `content` matches in `response`: the elements counted and digested, their
/// wrappers and siblings decided.
pub fn locate(response: &Value, content: &Extraction) -> Located {
    let mut hasher = Xxh3::new();
    let mut elements = 0;
    let mut nodes = Vec::new();
    for node in content.path.query_located(response).iter() {
        let location = steps(&node.location().iter().cloned().collect::<Vec<_>>());
        let wrapper = if content.bare {
            None
        } else {
            content
                .wrapper
                .as_deref()
                .or_else(|| last_name(&location))
                .map(str::to_owned)
        };
        let mut siblings = Map::new();
        if let (false, Value::Object(top), Some(Step::Name(first))) =
            (content.bare, response, location.first())
        {
            for (k, v) in top {
                if k != first {
                    siblings.insert(k.clone(), v.clone());
                }
            }
        }
        filter(&mut siblings, content);
        // The first and last elements and the count tell a page served again from the
        // next one; digesting every element would cost as much as reading them.
        let items = items_of(node.node());
        elements += items.len();
        items.len().hash(&mut hasher);
        if let (Some(first), Some(last)) = (items.first(), items.last()) {
            digest(first, &mut hasher);
            digest(last, &mut hasher);
        }
        nodes.push(Node {
            location,
            wrapper,
            siblings,
        });
    }
    Located {
        page: Page {
            elements,
            fingerprint: hasher.finish(),
        },
        nodes,
    }
}

impl Located {
    /// The records, the elements moved out of `response` (the one [`locate`] was given).
    pub fn records(
        self,
        mut response: Value,
        content: &Extraction,
        explode: Option<&Extraction>,
    ) -> Vec<Object> {
        // A node inside another (`$..x`) would be gone once its ancestor is taken.
        let nested = self.nodes.iter().enumerate().any(|(i, a)| {
            self.nodes
                .iter()
                .enumerate()
                .any(|(j, b)| i != j && b.location.starts_with(&a.location))
        });
        let mut records = Vec::with_capacity(self.page.elements);
        for node in self.nodes {
            let taken = if nested {
                response.pointer(&pointer(&node.location)).cloned()
            } else {
                response
                    .pointer_mut(&pointer(&node.location))
                    .map(std::mem::take)
            };
            let items = match taken {
                Some(Value::Array(items)) => items,
                Some(other) => vec![other],
                None => continue,
            };
            for item in items {
                let record = record(
                    node.wrapper.as_deref(),
                    filtered(item, content),
                    &node.siblings,
                );
                match explode {
                    Some(explode) => records.extend(exploded(record, explode)),
                    None => records.push(record),
                }
            }
        }
        records
    }
}

/// `location` as a JSON Pointer (RFC 6901), for serde_json's `pointer` and `pointer_mut`.
fn pointer(location: &[Step]) -> String {
    location.iter().fold(String::new(), |mut out, step| {
        out.push('/');
        match step {
            Step::Name(n) => out.push_str(&n.replace('~', "~0").replace('/', "~1")),
            Step::Index(i) => out.push_str(&i.to_string()),
        }
        out
    })
}

/// One record per element of the sub-array(s) `explode` matches in `record`, each with
/// the sub-array taken out and the element under its own wrapper. A record whose
/// sub-array is missing or empty is kept once, without it.
fn exploded(record: Object, explode: &Extraction) -> Vec<Object> {
    let value = Value::Object(record);
    let found: Vec<(Vec<Step>, Value)> = explode
        .path
        .query_located(&value)
        .iter()
        .map(|n| {
            (
                steps(&n.location().iter().cloned().collect::<Vec<_>>()),
                n.node().clone(),
            )
        })
        .filter(|(location, _)| !location.is_empty())
        .collect();
    let mut base = value;
    for (location, _) in found.iter().rev() {
        remove(&mut base, location);
    }
    let Value::Object(base) = base else {
        unreachable!("a record is an object")
    };
    let mut out = Vec::new();
    for (location, node) in &found {
        let wrapper = explode
            .wrapper
            .as_deref()
            .or_else(|| last_name(location))
            .unwrap_or("value");
        for item in items_of(node) {
            let mut record = base.clone();
            record.insert(wrapper.to_owned(), filtered(item.clone(), explode));
            out.push(record);
        }
    }
    if out.is_empty() {
        out.push(base);
    }
    out
}

fn remove(value: &mut Value, location: &[Step]) {
    let Some((last, parents)) = location.split_last() else {
        return;
    };
    match (last, value.pointer_mut(&pointer(parents))) {
        (Step::Name(n), Some(Value::Object(map))) => {
            map.remove(n);
        }
        (Step::Index(i), Some(Value::Array(items))) if *i < items.len() => {
            items.remove(*i);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json_path::JsonPath;

    /// [`locate`] and [`Located::records`] at once.
    pub fn page(
        response: Value,
        content: &Extraction,
        explode: Option<&Extraction>,
    ) -> (Page, Vec<Object>) {
        let located = locate(&response, content);
        let page = located.page;
        (page, located.records(response, content, explode))
    }

    fn extraction(
        path: &str,
        wrapper: Option<&str>,
        keep: Option<&[&str]>,
        skip: &[&str],
    ) -> Extraction {
        Extraction {
            source: path.into(),
            path: JsonPath::parse(path).unwrap(),
            wrapper: wrapper.map(Into::into),
            keep: keep.map(|k| k.iter().map(|s| s.to_string()).collect()),
            skip: skip.iter().map(|s| s.to_string()).collect(),
            bare: false,
        }
    }

    fn members() -> Value {
        json!({
            "members": [
                {"id": "a", "email_address": "a@x", "list_id": "L", "_links": [{"rel": "self"}]},
                {"id": "b", "email_address": "b@x", "list_id": "L", "_links": []}
            ],
            "list_id": "L", "total_items": 2, "_links": [{"rel": "parent"}], "page": 1
        })
    }

    #[test]
    fn mailchimp_members_wrap_and_skip_both_siblings_and_own_keys() {
        let content = extraction(
            "$.members",
            Some("member"),
            None,
            &["_links", "total_items", "list_id"],
        );
        let (page, records) = page(members(), &content, None);
        assert_eq!(page.elements, 2);
        assert_eq!(
            Value::Array(records.into_iter().map(Value::Object).collect()),
            json!([
                {"member": {"id": "a", "email_address": "a@x"}, "page": 1},
                {"member": {"id": "b", "email_address": "b@x"}, "page": 1}
            ])
        );
    }

    #[test]
    fn the_wrapper_is_the_last_name_of_the_path_and_keep_keeps_only_those() {
        let content = extraction("$.members[*]", None, Some(&["id", "total_items"]), &[]);
        let (_, records) = page(members(), &content, None);
        assert_eq!(
            Value::Object(records[0].clone()),
            json!({"members": {"id": "a"}, "total_items": 2})
        );
    }

    #[test]
    fn a_root_array_gives_its_elements_unwrapped() {
        let content = extraction("$", None, None, &["x"]);
        let (_, records) = page(json!([{"id": 1, "x": 2}, 3]), &content, None);
        assert_eq!(
            Value::Array(records.into_iter().map(Value::Object).collect()),
            json!([{"id": 1}, {"value": 3}])
        );
    }

    #[test]
    fn explode_makes_one_record_per_sub_array_element() {
        let response = json!({
            "emails": [
                {"email_id": "e1", "activity": [{"action": "open", "ip": "1"}, {"action": "click", "ip": "2"}]},
                {"email_id": "e2", "activity": []}
            ],
            "total_items": 2
        });
        let content = extraction("$.emails", Some("email"), None, &["total_items"]);
        let explode = extraction("$.email.activity", None, None, &["ip"]);
        let (page, records) = page(response, &content, Some(&explode));
        assert_eq!(page.elements, 2);
        assert_eq!(
            Value::Array(records.into_iter().map(Value::Object).collect()),
            json!([
                {"email": {"email_id": "e1"}, "activity": {"action": "open"}},
                {"email": {"email_id": "e1"}, "activity": {"action": "click"}},
                {"email": {"email_id": "e2"}}
            ])
        );
    }

    #[test]
    fn explode_with_an_override_wrapper_and_keep() {
        let response = json!({"emails": [{"id": 1, "activity": [{"a": 1, "b": 2}]}]});
        let content = extraction("$.emails", Some("email"), None, &[]);
        let explode = extraction("$.email.activity", Some("act"), Some(&["b"]), &[]);
        let (_, records) = page(response, &content, Some(&explode));
        assert_eq!(
            Value::Object(records[0].clone()),
            json!({"email": {"id": 1}, "act": {"b": 2}})
        );
    }

    #[test]
    fn bare_elements_are_records_as_they_are() {
        let mut content = extraction("$.Results", None, None, &[]);
        content.bare = true;
        let response = json!({"Results": [{"id": 1, "email": "a@x"}, 7], "Total": 2});
        let (page, records) = page(response, &content, None);
        assert_eq!(page.elements, 2);
        assert_eq!(
            Value::Array(records.into_iter().map(Value::Object).collect()),
            json!([{"id": 1, "email": "a@x"}, {"value": 7}])
        );
    }

    #[test]
    fn the_same_elements_give_the_same_fingerprint() {
        let content = extraction("$.members", None, None, &[]);
        let (a, _) = page(members(), &content, None);
        let mut other = members();
        other["page"] = json!(2);
        assert_eq!(
            a.fingerprint,
            page(other.clone(), &content, None).0.fingerprint
        );
        other["members"][0]["id"] = json!("z");
        assert_ne!(
            a.fingerprint,
            page(other.clone(), &content, None).0.fingerprint
        );
        let mut last = members();
        last["members"][1]["email_address"] = json!("z@x");
        assert_ne!(a.fingerprint, page(last, &content, None).0.fingerprint);
        let mut fewer = members();
        fewer["members"].as_array_mut().unwrap().pop();
        assert_ne!(a.fingerprint, page(fewer, &content, None).0.fingerprint);
        assert_eq!(page(json!({"members": []}), &content, None).0.elements, 0);
    }

    #[test]
    fn nested_matches_each_give_their_record() {
        let content = extraction("$..a", None, None, &[]);
        let (page, records) = page(json!({"a": {"a": 1}}), &content, None);
        assert_eq!(page.elements, 2);
        assert_eq!(
            Value::Array(records.into_iter().map(Value::Object).collect()),
            json!([{"a": {"a": 1}}, {"a": 1}])
        );
    }
}
