//! The push loop of an export or export delta: records read from the Container API in
//! batches, each batch sent as one request body, and a feedback row for every record the
//! API refused.
//!
//! - An export sends `input` to its action; an export delta sends `new` then `modified`
//!   (sharing batches) to its upsert action and `deleted` to its delete action, and never
//!   reads `unchanged`. A stream the run does not have is logged and skipped.
//! - A record is sent as the Container API serves it (typed values when cde registered
//!   the export with them), with the action's `configValues` merged into the body or
//!   into each record, replacing a column of the same name.
//! - A 2xx answer accepts its batch, except the records its per-record error list
//!   (`rejections`) names. A 4xx answer (other than 401, 403, 429, or a 404 to the
//!   action's first request) refuses the whole batch: each of its records gets a row and
//!   the next batch is sent. 401, 403 and the 404 end the run as configuration failures,
//!   and what still fails after the transport's retries (429, 5xx, no connection) as a
//!   transient one.
//! - A feedback row is `{"id": <the record's id column>, "error": <the API's text>}`, the
//!   text with secret values masked; the text of a refused batch is the answer's
//!   `error`, `message` or `detail` member when it is a string, else its body.
//! - A record without its id column ends the run as a configuration failure before its
//!   batch is sent.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::connector::Connector;
use crate::container::ContainerApi;
use crate::definition::ConnectorKind;
use crate::engine::transport_for;
use crate::error::configuration;
use crate::inputs::Options;
use crate::model::{Action, BodyLayout, Object, PushSpec, RecordRef, Rejections};
use crate::request::Request;
use crate::template::Values;
use crate::transport::{Failure, FailureKind};

#[derive(Default)]
struct Totals {
    sent: usize,
    refused: usize,
    requests: usize,
}

pub async fn push(
    connector: &Connector,
    push: &PushSpec,
    options: &Options,
    container: &ContainerApi,
) -> Result<(), Failure> {
    let phases: Vec<(&Action, &[&str])> = match (connector.kind, &push.delete) {
        (ConnectorKind::ExportDelta, Some(delete)) => vec![
            (&push.upsert, &["new", "modified"][..]),
            (delete, &["deleted"][..]),
        ],
        _ => vec![(&push.upsert, &["input"][..])],
    };
    let values = Values::new(options.values().clone());
    let mut totals = Totals::default();
    for (action, streams) in phases {
        send_streams(
            connector,
            push,
            action,
            streams,
            options,
            &values,
            container,
            &mut totals,
        )
        .await?;
    }
    container
        .log(
            "info",
            &format!(
                "done: {} records sent in {} requests, {} refused{}",
                totals.sent,
                totals.requests,
                totals.refused,
                if totals.refused > 0 {
                    " (see the feedback file)"
                } else {
                    ""
                }
            ),
            json!({"records": totals.sent, "requests": totals.requests, "refused": totals.refused}),
        )
        .await;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn send_streams(
    connector: &Connector,
    push: &PushSpec,
    action: &Action,
    streams: &[&str],
    options: &Options,
    values: &Values,
    container: &ContainerApi,
    totals: &mut Totals,
) -> Result<(), Failure> {
    let transport = transport_for(connector, action.rate_limit.as_ref(), &action.name)?;
    let request = Request::new(
        &action.request,
        &connector.auth,
        options,
        values,
        Vec::new(),
    )?;
    container
        .log(
            "info",
            &options.mask(&format!(
                "sending {} to {} {} ({}) in batches of {}",
                streams.join(" and "),
                request.method(),
                request.url(),
                action.name,
                push.batch_size
            )),
            json!({"action": action.name, "streams": streams, "batch_size": push.batch_size, "options": options.resolved()}),
        )
        .await;
    let mut reader = Reader {
        streams,
        current: 0,
        id_column: &push.id_column,
    };
    let mut number = 0usize;
    loop {
        let batch = reader.next(container, push.batch_size).await?;
        if batch.is_empty() {
            break;
        }
        number += 1;
        let (ids, records): (Vec<Value>, Vec<Object>) = batch.into_iter().unzip();
        let body = body(action, &records);
        totals.requests += 1;
        let what = format!("{}: batch {number}", action.name);
        let refused: Vec<(usize, String)> = match transport.send(request.build_json(&body)).await {
            Ok(response) => {
                let bytes = response.bytes().await.map_err(|e| Failure {
                    kind: FailureKind::Transient,
                    status: None,
                    message: format!("{what}: reading the answer: {e}"),
                })?;
                match &push.rejections {
                    Some(rejections) => {
                        let (refused, unknown) = match read_json(&bytes) {
                            Ok(answer) => rejected(&answer, rejections, &ids),
                            Err(e) => {
                                container
                                        .log(
                                            "warning",
                                            &format!("{what}: the answer is not JSON ({e}): its per-record errors cannot be read, the batch counts as accepted"),
                                            json!({"action": action.name, "batch": number}),
                                        )
                                        .await;
                                (Vec::new(), Vec::new())
                            }
                        };
                        if !unknown.is_empty() {
                            container
                                    .log(
                                        "warning",
                                        &options.mask(&format!(
                                            "{what}: {} error entries name no record of the batch",
                                            unknown.len()
                                        )),
                                        json!({"action": action.name, "batch": number, "entries": unknown.iter().map(|e| options.mask(e)).collect::<Vec<_>>()}),
                                    )
                                    .await;
                        }
                        refused
                    }
                    None => Vec::new(),
                }
            }
            Err(mut failure) => {
                let status = failure.status.unwrap_or(0);
                let refusal = failure.kind == FailureKind::Api
                    && (400..500).contains(&status)
                    && !(status == 404 && number == 1);
                if !refusal {
                    if status == 404 {
                        failure.kind = FailureKind::Configuration;
                    }
                    failure.message = format!("{what}: {}", failure.message);
                    return Err(failure);
                }
                let text = api_text(&failure);
                container
                    .log(
                        "warning",
                        &options.mask(&format!(
                            "{what}: the API refused all {} records: {}",
                            records.len(),
                            failure.message
                        )),
                        json!({"action": action.name, "batch": number, "status": status}),
                    )
                    .await;
                (0..records.len()).map(|i| (i, text.clone())).collect()
            }
        };
        let rows: Vec<Object> = refused
            .iter()
            .map(|(i, error)| {
                let mut row = Map::new();
                row.insert("id".into(), ids[*i].clone());
                row.insert("error".into(), Value::String(options.mask(error)));
                row
            })
            .collect();
        let refused = rows.len();
        totals.sent += records.len();
        totals.refused += refused;
        if !rows.is_empty() {
            container.feedback(rows).await?;
        }
        container
            .log(
                "info",
                &format!(
                    "{what}: {} records sent, {} refused ({} sent in total)",
                    records.len(),
                    refused,
                    totals.sent
                ),
                json!({"action": action.name, "batch": number, "records": records.len(), "refused": refused, "total": totals.sent}),
            )
            .await;
    }
    Ok(())
}

/// Reads records from one stream after the other, with their ids.
struct Reader<'a> {
    streams: &'a [&'a str],
    current: usize,
    id_column: &'a str,
}

impl Reader<'_> {
    /// Up to `size` records; fewer only when every stream is exhausted.
    async fn next(
        &mut self,
        container: &ContainerApi,
        size: usize,
    ) -> Result<Vec<(Value, Object)>, Failure> {
        let mut out = Vec::new();
        while out.len() < size && self.current < self.streams.len() {
            let stream = self.streams[self.current];
            match container.next_batch(stream, size - out.len()).await? {
                None => {
                    container
                        .log(
                            "warning",
                            &format!("the run has no {stream} input: nothing of it is sent"),
                            json!({"stream": stream}),
                        )
                        .await;
                    self.current += 1;
                }
                Some(records) if records.is_empty() => self.current += 1,
                Some(records) => {
                    for record in records {
                        let id = match record.get(self.id_column) {
                            Some(id) if !id.is_null() => id.clone(),
                            _ => {
                                return Err(configuration(format!(
                                    "reading {stream}: a record has no value in the id column `{}` (id_column); its columns are: {}",
                                    self.id_column,
                                    record.keys().cloned().collect::<Vec<_>>().join(", ")
                                )))
                            }
                        };
                        out.push((id, record));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The request body of a batch, as the action's layout says.
pub fn body(action: &Action, records: &[Object]) -> Value {
    let in_records = match &action.layout {
        BodyLayout::Array => true,
        BodyLayout::Object {
            config_in_records, ..
        } => *config_in_records,
    };
    let records: Vec<Value> = records
        .iter()
        .map(|record| {
            let mut record = record.clone();
            if in_records {
                for (k, v) in &action.config_values {
                    record.insert(k.clone(), v.clone());
                }
            }
            Value::Object(record)
        })
        .collect();
    match &action.layout {
        BodyLayout::Array => Value::Array(records),
        BodyLayout::Object { member, .. } => {
            let mut body = if in_records {
                Map::new()
            } else {
                action.config_values.clone()
            };
            body.insert(member.clone(), Value::Array(records));
            Value::Object(body)
        }
    }
}

fn read_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    if bytes.trim_ascii().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes)
}

/// The records of the batch (by position) that `answer`'s error entries name, each with
/// its error text (several entries for one record joined by `; `), and the entries that
/// name none (as JSON text).
pub fn rejected(
    answer: &Value,
    rejections: &Rejections,
    ids: &[Value],
) -> (Vec<(usize, String)>, Vec<String>) {
    let mut found: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut unknown = Vec::new();
    let entries = rejections
        .path
        .query(answer)
        .all()
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![other],
        });
    for entry in entries {
        let position = match &rejections.record {
            RecordRef::Id(path) => path
                .query(entry)
                .first()
                .and_then(|id| ids.iter().position(|candidate| same_id(candidate, id))),
            RecordRef::Index(path) => path
                .query(entry)
                .first()
                .and_then(|i| match i {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                })
                .map(|i| i as usize)
                .filter(|i| *i < ids.len()),
        };
        let error = match &rejections.error {
            Some(path) => path.query(entry).first().map_or_else(|| text(entry), text),
            None => text(entry),
        };
        match position {
            Some(i) => found.entry(i).or_default().push(error),
            None => unknown.push(entry.to_string()),
        }
    }
    let refused = found
        .into_iter()
        .map(|(i, errors)| (i, errors.join("; ")))
        .collect();
    (refused, unknown)
}

/// A string as it is, anything else as JSON text.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The same id: equal values, or a number and a string of the same text.
fn same_id(a: &Value, b: &Value) -> bool {
    a == b
        || match (a, b) {
            (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
                s.trim() == n.to_string()
            }
            _ => false,
        }
}

/// The API's error text of a refused request: its answer's `error`, `message` or
/// `detail` member when that is a string, else the answer's text, else its status.
fn api_text(failure: &Failure) -> String {
    let message = &failure.message;
    let Some(status) = failure.status else {
        return message.clone();
    };
    // The transport's message is "<method> <url>: <status> <reason>: <answer>".
    let marker = format!(": {status}");
    let Some(at) = message.find(&marker) else {
        return message.clone();
    };
    let rest = &message[at + 2..];
    let (status_text, answer) = rest.split_once(": ").unwrap_or((rest, ""));
    let answer = answer.trim();
    if answer.is_empty() {
        return format!("HTTP {}", status_text.trim());
    }
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(answer) {
        for key in ["error", "message", "detail"] {
            if let Some(Value::String(text)) = map.get(key) {
                if !text.trim().is_empty() {
                    return text.clone();
                }
            }
        }
    }
    answer.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Method, RequestTemplate};
    use serde_json_path::JsonPath;

    fn action(layout: BodyLayout) -> Action {
        Action {
            name: "a".into(),
            request: RequestTemplate {
                host: "https://h".into(),
                path: "/p".into(),
                method: Method::Post,
                query: Vec::new(),
                headers: Vec::new(),
                body: None,
                optional: Vec::new(),
            },
            config_values: json!({"subscribe": true}).as_object().unwrap().clone(),
            layout,
            properties: Vec::new(),
            rate_limit: None,
        }
    }

    fn records() -> Vec<Object> {
        vec![
            json!({"id": 1, "subscribe": false})
                .as_object()
                .unwrap()
                .clone(),
            json!({"id": 2}).as_object().unwrap().clone(),
        ]
    }

    #[test]
    fn the_three_body_layouts() {
        assert_eq!(
            body(&action(BodyLayout::Array), &records()),
            json!([{"id": 1, "subscribe": true}, {"id": 2, "subscribe": true}])
        );
        assert_eq!(
            body(
                &action(BodyLayout::Object {
                    member: "subscribers".into(),
                    config_in_records: false
                }),
                &records()
            ),
            json!({"subscribe": true, "subscribers": [{"id": 1, "subscribe": false}, {"id": 2}]})
        );
        assert_eq!(
            body(
                &action(BodyLayout::Object {
                    member: "data".into(),
                    config_in_records: true
                }),
                &records()
            ),
            json!({"data": [{"id": 1, "subscribe": true}, {"id": 2, "subscribe": true}]})
        );
    }

    fn rejections(path: &str, record: RecordRef, error: Option<&str>) -> Rejections {
        Rejections {
            path: JsonPath::parse(path).unwrap(),
            record,
            error: error.map(|e| JsonPath::parse(e).unwrap()),
        }
    }

    #[test]
    fn per_record_errors_are_matched_by_id_or_by_index() {
        let ids = [json!(7), json!("b"), json!(9)];
        let answer = json!({"Errors": [
            {"Id": "7", "Message": "bad email"},
            {"Id": "zz", "Message": "who?"},
            {"Id": "7", "Message": "no name"},
            {"Id": 9, "Message": {"code": 3}}
        ]});
        let by_id = rejections(
            "$.Errors",
            RecordRef::Id(JsonPath::parse("$.Id").unwrap()),
            Some("$.Message"),
        );
        let (refused, unknown) = rejected(&answer, &by_id, &ids);
        assert_eq!(
            refused,
            [
                (0, "bad email; no name".to_owned()),
                (2, "{\"code\":3}".to_owned())
            ]
        );
        assert_eq!(unknown.len(), 1);
        assert!(unknown[0].contains("zz"));

        let by_index = rejections(
            "$.failures[*]",
            RecordRef::Index(JsonPath::parse("$.index").unwrap()),
            None,
        );
        let answer = json!({"failures": [{"index": 1, "e": "x"}, {"index": "5"}]});
        let (refused, unknown) = rejected(&answer, &by_index, &ids);
        assert_eq!(refused, [(1, "{\"e\":\"x\",\"index\":1}".to_owned())]);
        assert_eq!(unknown.len(), 1, "index 5 is past the batch");
        assert!(rejected(&Value::Null, &by_index, &ids).0.is_empty());
    }

    #[test]
    fn the_apis_text_of_a_refused_batch() {
        let failure = |message: &str| Failure {
            kind: FailureKind::Api,
            status: Some(400),
            message: message.into(),
        };
        assert_eq!(
            api_text(&failure(
                "POST http://h/import?x=1: 400 Bad Request: {\"error\":\"batch too large\"}"
            )),
            "batch too large"
        );
        assert_eq!(
            api_text(&failure(
                "POST http://h/import: 400 Bad Request: plain text: yes"
            )),
            "plain text: yes"
        );
        assert_eq!(
            api_text(&failure("POST http://h/import: 400 Bad Request: ")),
            "HTTP 400 Bad Request"
        );
        assert_eq!(api_text(&failure("something else")), "something else");
    }
}
