//! A delivery to a webhook listener: whether its sender holds the listener's secret, and
//! the events it carries. Nothing here writes; the [`crate::event_log`] keeps the events.

use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::value::RawValue;
use serde_json::Value;
use serde_json_path::JsonPath;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::event_log::Event;
use crate::model::{EventId, Listener, ListenerAuth, SignatureEncoding};

#[derive(Debug, Error, PartialEq)]
pub enum DeliveryError {
    /// The sender did not prove it holds the secret (401). Says what was missing, never
    /// what was expected.
    #[error("listener {listener}: {reason}")]
    Unauthorized { listener: String, reason: String },
    /// The body is not what the listener takes (400).
    #[error("listener {listener}: {reason}")]
    Invalid { listener: String, reason: String },
}

/// Checks that a delivery comes from a holder of `secret`: the token compared in constant
/// time, or the HMAC-SHA256 of `body` verified in constant time.
pub fn authenticate(
    listener: &Listener,
    secret: &str,
    headers: &HeaderMap,
    query_token: Option<&str>,
    body: &[u8],
) -> Result<(), DeliveryError> {
    let refused = |reason: String| DeliveryError::Unauthorized {
        listener: listener.name.clone(),
        reason,
    };
    match &listener.auth {
        ListenerAuth::Token { header } => {
            let given = header_text(headers, header)
                .or(query_token)
                .ok_or_else(|| {
                    refused(format!(
                        "no token in the header {header} or the query parameter token"
                    ))
                })?;
            match bool::from(given.as_bytes().ct_eq(secret.as_bytes())) {
                true => Ok(()),
                false => Err(refused("the token is not the listener's".to_owned())),
            }
        }
        ListenerAuth::HmacSha256 {
            header,
            prefix,
            encoding,
        } => {
            let given = header_text(headers, header)
                .ok_or_else(|| refused(format!("no signature in the header {header}")))?;
            let signature = given.trim().strip_prefix(prefix.as_str()).ok_or_else(|| {
                refused(format!(
                    "the signature in {header} does not start with {prefix:?}"
                ))
            })?;
            let signature = match encoding {
                SignatureEncoding::Hex => hex::decode(signature).ok(),
                SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD
                    .decode(signature)
                    .ok(),
            }
            .ok_or_else(|| refused(format!("the signature in {header} is not {encoding:?}")))?;
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .map_err(|e| refused(format!("the listener's secret cannot key an HMAC: {e}")))?;
            mac.update(body);
            mac.verify_slice(&signature)
                .map_err(|_| refused("the signature does not match the body".to_owned()))
        }
    }
}

/// The events of a delivery, each with its id when the listener has [`EventId`].
pub fn events(
    listener: &Listener,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<Event>, DeliveryError> {
    let invalid = |reason: String| DeliveryError::Invalid {
        listener: listener.name.clone(),
        reason,
    };
    let raw = body;
    let body: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
    let locator = json_path(&listener.records_locator).map_err(&invalid)?;
    let found = locator.query(&body).all();
    if found.is_empty() {
        return Err(invalid(format!(
            "nothing at the records locator {}",
            listener.records_locator
        )));
    }
    let items: Vec<&Value> = found
        .into_iter()
        .flat_map(|node| match node {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![other],
        })
        .collect();
    let delivery_id = match &listener.event_id {
        Some(EventId::Header(name)) => Some(
            header_text(headers, name)
                .ok_or_else(|| invalid(format!("no event id in the header {name}")))?
                .to_owned(),
        ),
        _ => None,
    };
    let id_path = match &listener.event_id {
        Some(EventId::Path(path)) => Some((path, json_path(path).map_err(&invalid)?)),
        _ => None,
    };
    let single = items.len() == 1;
    // The body itself is the one event: its text as it came, not written again.
    let whole = single && std::ptr::eq(items[0], &body);
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            if !item.is_object() {
                // Events become a pipeline's rows.
                return Err(invalid(format!("event {i} is not a JSON object")));
            }
            let id = match (&delivery_id, &id_path) {
                (Some(id), _) if single => Some(id.clone()),
                (Some(id), _) => Some(format!("{id}#{i}")),
                (None, Some((text, path))) => Some(match path.query(item).at_most_one() {
                    Ok(Some(Value::String(s))) => s.clone(),
                    Ok(Some(Value::Number(n))) => n.to_string(),
                    _ => {
                        return Err(invalid(format!(
                            "event {i} has no single string or number at the event id path {text}"
                        )))
                    }
                }),
                (None, None) => None,
            };
            let text = match whole {
                true => String::from_utf8_lossy(raw).trim().to_owned(),
                false => item.to_string(),
            };
            let json =
                RawValue::from_string(text).map_err(|e| invalid(format!("event {i}: {e}")))?;
            Ok(Event { id, json })
        })
        .collect()
}

/// Checks a declaration: its locator and id path are JSONPath, its header names are
/// header names.
pub fn check(listener: &Listener) -> Result<(), String> {
    json_path(&listener.records_locator).map_err(|e| format!("records_locator: {e}"))?;
    let header = match &listener.auth {
        ListenerAuth::Token { header } | ListenerAuth::HmacSha256 { header, .. } => header,
    };
    let is_header = |name: &str| axum::http::HeaderName::from_bytes(name.as_bytes()).is_ok();
    if !is_header(header) {
        return Err(format!("auth.header: {header:?} is not a header name"));
    }
    match &listener.event_id {
        Some(EventId::Header(name)) if !is_header(name) => {
            Err(format!("event_id.header: {name:?} is not a header name"))
        }
        Some(EventId::Path(path)) => json_path(path)
            .map(|_| ())
            .map_err(|e| format!("event_id.path: {e}")),
        _ => Ok(()),
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A JSONPath, or a bare member name (as the CDP hub's `recordsLocatorPath`).
fn json_path(text: &str) -> Result<JsonPath, String> {
    http_connector::json_path(text, text)
        .map_err(|e| format!("the path {} is not JSONPath: {}", text.trim(), e.message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    const SECRET: &str = "whsec-0123456789";

    fn listener(auth: ListenerAuth, locator: &str, event_id: Option<EventId>) -> Listener {
        Listener {
            name: "orders".into(),
            records_locator: locator.into(),
            auth,
            event_id,
            log_limit_mb: None,
            connector: None,
            webhook: None,
        }
    }

    fn token() -> Listener {
        listener(
            ListenerAuth::Token {
                header: "x-cde-token".into(),
            },
            "$",
            None,
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn sign(body: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    fn unauthorized(result: Result<(), DeliveryError>) -> String {
        match result {
            Err(DeliveryError::Unauthorized { reason, .. }) => {
                assert!(!reason.contains(SECRET), "{reason}");
                reason
            }
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_token_in_the_header_or_the_query_is_checked() {
        let l = token();
        authenticate(
            &l,
            SECRET,
            &headers(&[("x-cde-token", SECRET)]),
            None,
            b"{}",
        )
        .unwrap();
        authenticate(&l, SECRET, &HeaderMap::new(), Some(SECRET), b"{}").unwrap();
        let wrong = unauthorized(authenticate(
            &l,
            SECRET,
            &headers(&[("x-cde-token", "whsec-0123456788")]),
            None,
            b"{}",
        ));
        assert!(wrong.contains("not the listener's"), "{wrong}");
        let missing = unauthorized(authenticate(&l, SECRET, &HeaderMap::new(), None, b"{}"));
        assert!(missing.contains("x-cde-token"), "{missing}");
        unauthorized(authenticate(&l, SECRET, &HeaderMap::new(), Some(""), b"{}"));
    }

    #[test]
    fn a_github_signature_matches_the_body_it_signs_and_no_other() {
        let l = listener(
            ListenerAuth::HmacSha256 {
                header: "x-hub-signature-256".into(),
                prefix: "sha256=".into(),
                encoding: SignatureEncoding::Hex,
            },
            "$",
            None,
        );
        let body = br#"{"action":"opened"}"#;
        let signed = format!("sha256={}", hex::encode(sign(body)));
        let h = headers(&[("x-hub-signature-256", &signed)]);
        authenticate(&l, SECRET, &h, None, body).unwrap();
        let tampered = unauthorized(authenticate(
            &l,
            SECRET,
            &h,
            None,
            br#"{"action":"closed"}"#,
        ));
        assert!(tampered.contains("does not match"), "{tampered}");
        unauthorized(authenticate(&l, "another-secret", &h, None, body));
        let bare = hex::encode(sign(body));
        let no_prefix = unauthorized(authenticate(
            &l,
            SECRET,
            &headers(&[("x-hub-signature-256", &bare)]),
            None,
            body,
        ));
        assert!(no_prefix.contains("sha256="), "{no_prefix}");
        unauthorized(authenticate(
            &l,
            SECRET,
            &headers(&[("x-hub-signature-256", "sha256=zz")]),
            None,
            body,
        ));
    }

    #[test]
    fn a_shopify_signature_is_base64() {
        let l = listener(
            ListenerAuth::HmacSha256 {
                header: "x-shopify-hmac-sha256".into(),
                prefix: String::new(),
                encoding: SignatureEncoding::Base64,
            },
            "$",
            None,
        );
        let body = br#"{"id":1}"#;
        let signed = base64::engine::general_purpose::STANDARD.encode(sign(body));
        authenticate(
            &l,
            SECRET,
            &headers(&[("x-shopify-hmac-sha256", &signed)]),
            None,
            body,
        )
        .unwrap();
    }

    fn values(events: &[Event]) -> Vec<Value> {
        events
            .iter()
            .map(|e| serde_json::from_str(e.json.get()).unwrap())
            .collect()
    }

    #[test]
    fn the_locator_finds_one_event_or_an_arrays_elements() {
        let one = events(&token(), &HeaderMap::new(), br#"{"id": 1}"#).unwrap();
        assert_eq!(values(&one), [json!({"id": 1})]);
        let all = events(&token(), &HeaderMap::new(), br#"[{"id": 1}, {"id": 2}]"#).unwrap();
        assert_eq!(values(&all), [json!({"id": 1}), json!({"id": 2})]);
        let named = listener(token().auth, "events", None);
        let found = events(
            &named,
            &HeaderMap::new(),
            br#"{"events": [{"n": 1}, {"n": 2}], "n": 2}"#,
        )
        .unwrap();
        assert_eq!(values(&found), [json!({"n": 1}), json!({"n": 2})]);
        assert!(found.iter().all(|e| e.id.is_none()));
    }

    #[test]
    fn bad_bodies_are_refused_saying_why() {
        let invalid = |l: &Listener, body: &[u8]| match events(l, &HeaderMap::new(), body) {
            Err(DeliveryError::Invalid { reason, .. }) => reason,
            other => panic!("accepted: {other:?}"),
        };
        assert!(invalid(&token(), b"{not json").contains("not JSON"));
        let named = listener(token().auth, "$.events", None);
        assert!(
            invalid(&named, br#"{"other": 1}"#).contains("nothing at the records locator $.events")
        );
        assert!(invalid(&token(), br#"[{"a": 1}, 2]"#).contains("event 1 is not a JSON object"));
        let broken = listener(token().auth, "$[", None);
        assert!(invalid(&broken, b"{}").contains("not JSONPath"));
    }

    #[test]
    fn ids_come_from_a_header_or_each_event() {
        let by_header = listener(
            token().auth,
            "$",
            Some(EventId::Header("x-github-delivery".into())),
        );
        let h = headers(&[("x-github-delivery", "d-1")]);
        let one = events(&by_header, &h, br#"{"a": 1}"#).unwrap();
        assert_eq!(one[0].id.as_deref(), Some("d-1"));
        let two = events(&by_header, &h, br#"[{"a": 1}, {"a": 2}]"#).unwrap();
        assert_eq!(
            two.iter()
                .map(|e| e.id.clone().unwrap())
                .collect::<Vec<_>>(),
            ["d-1#0", "d-1#1"]
        );
        assert!(matches!(
            events(&by_header, &HeaderMap::new(), b"{}"),
            Err(DeliveryError::Invalid { .. })
        ));
        let by_path = listener(token().auth, "$", Some(EventId::Path("$.id".into())));
        let found = events(&by_path, &HeaderMap::new(), br#"[{"id": "e1"}, {"id": 7}]"#).unwrap();
        assert_eq!(
            found
                .iter()
                .map(|e| e.id.clone().unwrap())
                .collect::<Vec<_>>(),
            ["e1", "7"]
        );
        let missing = events(&by_path, &HeaderMap::new(), br#"[{"id": "e1"}, {"x": 1}]"#);
        assert!(
            matches!(&missing, Err(DeliveryError::Invalid { reason, .. }) if reason.contains("event 1")),
            "{missing:?}"
        );
    }
}
