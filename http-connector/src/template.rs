//! Templates: text with `{name}` or `${name}` placeholders filled from option values.

use std::collections::HashMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::configuration;
use crate::model::RequestTemplate;
use crate::transport::Failure;

/// A piece of a template: literal text or a placeholder's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// Splits `template` into literal text and placeholders. Braces that do not enclose a
/// name (`@{if(...)}`, `{}`, a JSON snippet) are literal text.
pub fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut literal_start = 0;
    let mut i = 0;
    let bytes = template.as_bytes();
    while i < bytes.len() {
        let open = match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => Some(i + 2),
            b'{' => Some(i + 1),
            _ => None,
        };
        if let Some(name_start) = open {
            let name_len = template[name_start..]
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            let name_end = name_start + name_len;
            let starts_well = template[name_start..]
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
            if starts_well && bytes.get(name_end) == Some(&b'}') {
                if literal_start < i {
                    pieces.push(Piece::Text(&template[literal_start..i]));
                }
                pieces.push(Piece::Placeholder(&template[name_start..name_end]));
                i = name_end + 1;
                literal_start = i;
                continue;
            }
        }
        i += 1;
    }
    if literal_start < template.len() {
        pieces.push(Piece::Text(&template[literal_start..]));
    }
    pieces
}

/// The names of the placeholders in `template`, in order (repeats included).
pub fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    pieces(template).into_iter().filter_map(|p| match p {
        Piece::Placeholder(name) => Some(name),
        Piece::Text(_) => None,
    })
}

/// How a value is written into the text around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As is: query values (encoded later with the rest of the query), headers, bodies.
    Raw,
    /// Percent-encoded as (part of) one path segment: a `/` in a value stays in its segment.
    PathSegment,
    /// In a host name: only characters a host (and port) may hold are accepted.
    Host,
}

/// Every character but the unreserved ones of RFC 3986.
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The values placeholders are filled with: the options, and the engine's own
/// (`SCHEDULE_QUERY`).
#[derive(Debug, Clone, Default)]
pub struct Values(HashMap<String, String>);

impl Values {
    pub fn new(values: HashMap<String, String>) -> Self {
        Self(values)
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Fills `template` (found at `what`, e.g. `urlParams.path`). A placeholder without
    /// a value is an error naming it; the message never holds a value.
    pub fn fill(&self, template: &str, encoding: Encoding, what: &str) -> Result<String, Failure> {
        let mut out = String::with_capacity(template.len());
        for piece in pieces(template) {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Placeholder(name) => {
                    let value = self.get(name).ok_or_else(|| {
                        configuration(format!(
                            "filling {what}: the placeholder {{{name}}} has no value (option `{name}` is not set)"
                        ))
                    })?;
                    match encoding {
                        Encoding::Raw => out.push_str(value),
                        Encoding::PathSegment => {
                            out.extend(utf8_percent_encode(value, SEGMENT));
                        }
                        Encoding::Host => {
                            let fits = !value.is_empty()
                                && value.bytes().all(|b| {
                                    b.is_ascii_alphanumeric()
                                        || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
                                });
                            if !fits {
                                return Err(configuration(format!(
                                    "filling {what}: the value of option `{name}` is not a host name"
                                )));
                            }
                            out.push_str(value);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Fills every string inside a JSON value (keys included).
    pub fn fill_json(
        &self,
        value: &serde_json::Value,
        what: &str,
    ) -> Result<serde_json::Value, Failure> {
        use serde_json::Value;
        Ok(match value {
            Value::String(s) => Value::String(self.fill(s, Encoding::Raw, what)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.fill_json(v, what))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    out.insert(self.fill(k, Encoding::Raw, what)?, self.fill_json(v, what)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }
}

/// Every placeholder of a request, with the part it is in, in document order.
pub fn request_placeholders(request: &RequestTemplate) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let mut add = |text: &str, place: &'static str| {
        out.extend(placeholders(text).map(|n| (n.to_owned(), place)));
    };
    add(&request.host, "host");
    add(&request.path, "path");
    for (k, v) in &request.query {
        add(k, "queryParams");
        add(v, "queryParams");
    }
    for (k, v) in &request.headers {
        add(k, "headerParams");
        add(v, "headerParams");
    }
    if let Some(body) = &request.body {
        let mut names = Vec::new();
        json_placeholders(body, &mut names);
        out.extend(names.into_iter().map(|n| (n, "bodyParams")));
    }
    out
}

/// Every placeholder in a JSON value's strings and keys.
pub fn json_placeholders(value: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match value {
        Value::String(s) => out.extend(placeholders(s).map(str::to_owned)),
        Value::Array(items) => items.iter().for_each(|v| json_placeholders(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.extend(placeholders(k).map(str::to_owned));
                json_placeholders(v, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        Values::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn both_placeholder_syntaxes_are_found_and_other_braces_are_text() {
        let names: Vec<_> =
            placeholders("https://{domain}.x/${listId}/@{if(empty(a))}/{}/{ x}/{SCHEDULE_QUERY}")
                .collect();
        assert_eq!(names, ["domain", "listId", "SCHEDULE_QUERY"]);
        assert_eq!(
            pieces("a{b}c"),
            [Piece::Text("a"), Piece::Placeholder("b"), Piece::Text("c")]
        );
    }

    #[test]
    fn path_values_are_percent_encoded_within_their_segment() {
        let v = values(&[("listId", "a/b c?d")]);
        assert_eq!(
            v.fill("/3.0/lists/${listId}/members", Encoding::PathSegment, "p")
                .unwrap(),
            "/3.0/lists/a%2Fb%20c%3Fd/members"
        );
    }

    #[test]
    fn a_placeholder_without_value_is_an_error_naming_it() {
        let err = values(&[])
            .fill("/lists/${listId}", Encoding::PathSegment, "urlParams.path")
            .unwrap_err();
        assert!(err.message.contains("{listId}"), "{}", err.message);
        assert!(err.message.contains("urlParams.path"), "{}", err.message);
    }

    #[test]
    fn host_values_must_be_host_names_and_are_not_echoed() {
        let v = values(&[("domain", "us1"), ("bad", "evil.com/x?s3cret")]);
        assert_eq!(
            v.fill("https://{domain}.api.mailchimp.com", Encoding::Host, "h")
                .unwrap(),
            "https://us1.api.mailchimp.com"
        );
        let err = v.fill("https://{bad}", Encoding::Host, "h").unwrap_err();
        assert!(!err.message.contains("s3cret"), "{}", err.message);
    }

    #[test]
    fn json_strings_and_keys_are_filled() {
        let v = values(&[("q", "x"), ("k", "key")]);
        let filled = v
            .fill_json(&serde_json::json!({"{k}": ["a {q}", 1]}), "bodyParams")
            .unwrap();
        assert_eq!(filled, serde_json::json!({"key": ["a x", 1]}));
    }
}
