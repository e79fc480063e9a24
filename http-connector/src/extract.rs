//! Records out of a response: `contentPath` picks the elements, each becomes
//! `{wrapper: element, ...siblings}`, and `explodeEntityPath` makes one record per element
//! of a sub-array. Records stay nested; the Container API flattens them.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value};
use serde_json_path::PathElement;

use crate::model::{Extraction, Object};

/// What one page gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Elements matched by `contentPath` (before exploding): what pagination counts.
    pub elements: usize,
    pub records: Vec<Object>,
    /// A digest of the elements, to notice an API that serves the same page again.
    pub fingerprint: u64,
}

#[derive(Debug, Clone)]
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

fn filtered(value: &Value, extraction: &Extraction) -> Value {
    match value {
        Value::Object(map) => {
            let mut map = map.clone();
            filter(&mut map, extraction);
            Value::Object(map)
        }
        other => other.clone(),
    }
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

pub fn page(response: &Value, content: &Extraction, explode: Option<&Extraction>) -> Page {
    let mut hasher = DefaultHasher::new();
    let mut elements = 0;
    let mut records = Vec::new();
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
        let items: Vec<&Value> = match node.node() {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            elements += 1;
            item.to_string().hash(&mut hasher);
            let record = record(wrapper.as_deref(), filtered(item, content), &siblings);
            match explode {
                Some(explode) => records.extend(exploded(record, explode)),
                None => records.push(record),
            }
        }
    }
    Page {
        elements,
        records,
        fingerprint: hasher.finish(),
    }
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
        let items: Vec<&Value> = match node {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            let mut record = base.clone();
            record.insert(wrapper.to_owned(), filtered(item, explode));
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
    let mut current = value;
    for step in parents {
        let next = match (step, current) {
            (Step::Name(n), Value::Object(map)) => map.get_mut(n),
            (Step::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(next) => current = next,
            None => return,
        }
    }
    match (last, current) {
        (Step::Name(n), Value::Object(map)) => {
            map.remove(n);
        }
        (Step::Index(i), Value::Array(items)) if *i < items.len() => {
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
        let page = page(&members(), &content, None);
        assert_eq!(page.elements, 2);
        assert_eq!(
            Value::Array(page.records.into_iter().map(Value::Object).collect()),
            json!([
                {"member": {"id": "a", "email_address": "a@x"}, "page": 1},
                {"member": {"id": "b", "email_address": "b@x"}, "page": 1}
            ])
        );
    }

    #[test]
    fn the_wrapper_is_the_last_name_of_the_path_and_keep_keeps_only_those() {
        let content = extraction("$.members[*]", None, Some(&["id", "total_items"]), &[]);
        let page = page(&members(), &content, None);
        assert_eq!(
            Value::Object(page.records[0].clone()),
            json!({"members": {"id": "a"}, "total_items": 2})
        );
    }

    #[test]
    fn a_root_array_gives_its_elements_unwrapped() {
        let content = extraction("$", None, None, &["x"]);
        let page = page(&json!([{"id": 1, "x": 2}, 3]), &content, None);
        assert_eq!(
            Value::Array(page.records.into_iter().map(Value::Object).collect()),
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
        let page = page(&response, &content, Some(&explode));
        assert_eq!(page.elements, 2);
        assert_eq!(
            Value::Array(page.records.into_iter().map(Value::Object).collect()),
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
        let page = page(&response, &content, Some(&explode));
        assert_eq!(
            Value::Object(page.records[0].clone()),
            json!({"email": {"id": 1}, "act": {"b": 2}})
        );
    }

    #[test]
    fn bare_elements_are_records_as_they_are() {
        let mut content = extraction("$.Results", None, None, &[]);
        content.bare = true;
        let response = json!({"Results": [{"id": 1, "email": "a@x"}, 7], "Total": 2});
        let page = page(&response, &content, None);
        assert_eq!(page.elements, 2);
        assert_eq!(
            Value::Array(page.records.into_iter().map(Value::Object).collect()),
            json!([{"id": 1, "email": "a@x"}, {"value": 7}])
        );
    }

    #[test]
    fn the_same_elements_give_the_same_fingerprint() {
        let content = extraction("$.members", None, None, &[]);
        let a = page(&members(), &content, None);
        let mut other = members();
        other["page"] = json!(2);
        assert_eq!(a.fingerprint, page(&other, &content, None).fingerprint);
        other["members"][0]["id"] = json!("z");
        assert_ne!(a.fingerprint, page(&other, &content, None).fingerprint);
        assert_eq!(page(&json!({"members": []}), &content, None).elements, 0);
    }
}
