//! JSON shared by reading and writing: request bodies, and objects taken apart into
//! members whose values stay unparsed text, so records can be filtered, flattened
//! and re-emitted without building a `serde_json::Value` each.

use std::borrow::Cow;
use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::{scan, ApiError, AppState};

/// A request body that is JSON by content type, within the size limit and valid
/// UTF-8. Whether it is JSON is left to the handler, which tokenizes it once.
pub(crate) struct JsonBody(pub String);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(CONTENT_TYPE)) {
            return Err(ApiError::body(
                "Expected request with `Content-Type: application/json`.",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(state.config().body_limit)
            } else {
                ApiError::body("Failed to read the request body.")
            }
        })?;
        let text = String::from_utf8(Vec::from(bytes))
            .map_err(|_| ApiError::body("The request body is not valid UTF-8."))?;
        Ok(Self(text))
    }
}

fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Parses a body into a `Value` after the scanner's checks.
pub(crate) fn parse_value(body: &str, max_depth: usize) -> Result<serde_json::Value, ApiError> {
    scan::validate(body, max_depth).map_err(|e| ApiError::body(e.describe(body)))?;
    serde_json::from_str(body)
        .map_err(|e| ApiError::body(format!("The request body is not valid JSON: {e}.")))
}

/// Parses a body that must be a JSON object.
pub(crate) fn parse_object(
    body: &str,
    max_depth: usize,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    match parse_value(body, max_depth)? {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(ApiError::body("This value should be a JSON object.")),
    }
}

/// The text of a string given as its JSON text (quotes and escapes included);
/// `escaped` says whether it has escapes to decode.
pub(crate) fn string_text(raw: &str, escaped: bool) -> Cow<'_, str> {
    if escaped {
        // Validated by the scanner, so decoding cannot fail.
        Cow::Owned(serde_json::from_str(raw).unwrap_or_default())
    } else {
        Cow::Borrowed(&raw[1..raw.len() - 1])
    }
}

/// The members of a JSON object in document order: keys decoded (borrowed when
/// they contain no escapes), values as their raw text.
pub(crate) type Members<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// Parses `text`, which must be a JSON object, appending its members to `out`.
pub(crate) fn members_into<'a>(text: &'a str, out: &mut Members<'a>) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(MembersVisitor(out))?;
    de.end()
}

/// Parses `text`, which must be a JSON array, into its elements' raw text.
pub(crate) fn elements(text: &str) -> serde_json::Result<Vec<&RawValue>> {
    serde_json::from_str(text)
}

struct MembersVisitor<'o, 'a>(&'o mut Members<'a>);

impl<'a> Visitor<'a> for MembersVisitor<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'a>>(self, mut map: M) -> Result<(), M::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value: &'a RawValue = map.next_value()?;
            self.0.push((key, value));
        }
        Ok(())
    }
}

struct KeySeed;

impl<'a> DeserializeSeed<'a> for KeySeed {
    type Value = Cow<'a, str>;

    fn deserialize<D: Deserializer<'a>>(self, de: D) -> Result<Cow<'a, str>, D::Error> {
        de.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'a> Visitor<'a> for KeyVisitor {
    type Value = Cow<'a, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'a str) -> Result<Cow<'a, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'a, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// Appends `{"key":value,...}` for `members` to `out`. Values are copied as they are
/// (raw JSON text never contains a line break outside whitespace, and scalars have none).
pub(crate) fn write_object<'m, 'a: 'm>(
    out: &mut Vec<u8>,
    members: impl IntoIterator<Item = (&'m str, &'a RawValue)>,
) {
    out.push(b'{');
    let mut first = true;
    for (key, value) in members {
        if !first {
            out.push(b',');
        }
        first = false;
        write_str(out, key);
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
    }
    out.push(b'}');
}

/// Appends `s` as a JSON string literal.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_order_and_raw_values() {
        let mut out = Members::new();
        members_into(r#" {"b": [1, 2], "a\n": "x", "c":null} "#, &mut out).unwrap();
        let got: Vec<(&str, &str)> = out.iter().map(|(k, v)| (k.as_ref(), v.get())).collect();
        assert_eq!(got, vec![("b", "[1, 2]"), ("a\n", "\"x\""), ("c", "null")]);
        assert!(matches!(out[0].0, Cow::Borrowed(_)));
        assert!(matches!(out[1].0, Cow::Owned(_)));
        let mut buf = Vec::new();
        write_object(&mut buf, out.iter().map(|(k, v)| (k.as_ref(), *v)));
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            r#"{"b":[1, 2],"a\n":"x","c":null}"#
        );
        assert!(members_into("[1]", &mut Members::new()).is_err());
        assert!(members_into("{} x", &mut Members::new()).is_err());
    }

    #[test]
    fn content_types() {
        let ok = |v: &str| is_json(Some(&axum::http::HeaderValue::from_str(v).unwrap()));
        assert!(ok("application/json"));
        assert!(ok("Application/JSON; charset=utf-8"));
        assert!(ok("application/merge-patch+json"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/jsonx"));
        assert!(!ok("application/+json"));
        assert!(!is_json(None));
    }
}
