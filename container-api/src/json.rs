//! JSON shared by reading and writing: request bodies checked once at the door, and
//! objects taken apart into members whose values stay unparsed text, so records can
//! be filtered, flattened and re-emitted without building a `serde_json::Value` each.

use std::borrow::Cow;
use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::{ApiError, AppState};

/// A request body that is JSON by content type, valid UTF-8, nested no deeper than
/// the configured limit and free of unpaired `\u` surrogates. Whether it parses is
/// left to the handler, which knows what it expects.
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
        check(text.as_bytes(), state.config().max_depth)?;
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

/// Parses a checked body into a `Value`.
pub(crate) fn parse_value(body: &str) -> Result<serde_json::Value, ApiError> {
    serde_json::from_str(body).map_err(syntax)
}

/// Parses a checked body that must be a JSON object.
pub(crate) fn parse_object(body: &str) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    match parse_value(body)? {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(ApiError::body("This value should be a JSON object.")),
    }
}

pub(crate) fn syntax(e: serde_json::Error) -> ApiError {
    ApiError::body(format!("The request body is not valid JSON: {e}."))
}

/// What serde_json accepts but must not get past the door: nesting deeper than
/// `max_depth` (a flattener and every later reader would pay for it) and `\u`
/// escapes of unpaired UTF-16 surrogates (valid JSON text that no strict parser
/// turns into a string, so it would poison the output file). One pass, skipping
/// over string contents with memchr.
pub(crate) fn check(text: &[u8], max_depth: usize) -> Result<(), ApiError> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                i += 1;
                loop {
                    let Some(j) = text.get(i..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                    else {
                        return Ok(()); // unterminated: the parser reports it
                    };
                    i += j;
                    if text[i] == b'"' {
                        break;
                    }
                    i = escape_end(text, i)?;
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(ApiError::body(format!(
                        "The request body is nested deeper than {max_depth} levels."
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Given the index of a backslash inside a string, returns the index just past its
/// escape sequence, after checking surrogate pairing.
fn escape_end(text: &[u8], backslash: usize) -> Result<usize, ApiError> {
    let unpaired = || ApiError::body("The request body contains an unpaired surrogate in a \\u escape.");
    if text.get(backslash + 1) != Some(&b'u') {
        return Ok(backslash + 2);
    }
    let Some(unit) = hex4(text, backslash + 2) else {
        return Ok(backslash + 2); // malformed: the parser reports it
    };
    match unit {
        0xD800..=0xDBFF => {
            let low = (text.get(backslash + 6..backslash + 8) == Some(b"\\u"))
                .then(|| hex4(text, backslash + 8))
                .flatten();
            match low {
                Some(0xDC00..=0xDFFF) => Ok(backslash + 12),
                _ => Err(unpaired()),
            }
        }
        0xDC00..=0xDFFF => Err(unpaired()),
        _ => Ok(backslash + 6),
    }
}

fn hex4(text: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(text.get(at..at + 4)?).ok()?;
    u16::from_str_radix(digits, 16).ok()
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

/// A field that must be an array, kept apart from "present but something else" so
/// the caller can answer with its own validation message instead of serde's.
pub(crate) enum ArrayField<'a> {
    Items(Vec<&'a RawValue>),
    NotArray,
}

impl<'de: 'a, 'a> de::Deserialize<'de> for ArrayField<'a> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(ArrayFieldVisitor(std::marker::PhantomData))
    }
}

struct ArrayFieldVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ArrayFieldVisitor<'a> {
    type Value = ArrayField<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(ArrayField::Items(items))
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(ArrayField::NotArray)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(ArrayField::NotArray)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(ArrayField::NotArray)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(ArrayField::NotArray)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(ArrayField::NotArray)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(ArrayField::NotArray)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(ArrayField::NotArray)
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

    fn depth_ok(text: &str, max: usize) -> bool {
        check(text.as_bytes(), max).is_ok()
    }

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert!(depth_ok(r#"{"a":[1,{"b":2}]}"#, 3));
        assert!(!depth_ok(r#"{"a":[1,{"b":2}]}"#, 2));
        assert!(depth_ok(r#"{"a":"[[[[{{{{\"[["}"#, 1));
        assert!(depth_ok(r#"[[]] [[]]"#, 2));
        assert!(depth_ok(r#"{"unterminated"#, 1));
        assert!(depth_ok("\"\\", 1));
    }

    #[test]
    fn unpaired_surrogates_are_rejected() {
        assert!(depth_ok(r#"{"a":"\ud83d\ude00 \u00e9 \\ud800"}"#, 5));
        assert!(!depth_ok(r#"{"a":"\ud83d"}"#, 5));
        assert!(!depth_ok(r#"{"a":"\ud83d\u0041"}"#, 5));
        assert!(!depth_ok(r#"{"\udc00":1}"#, 5));
        assert!(!depth_ok(r#"["\uD800"]"#, 5));
    }

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
        assert_eq!(String::from_utf8(buf).unwrap(), r#"{"b":[1, 2],"a\n":"x","c":null}"#);
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
