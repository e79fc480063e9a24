//! The engine's client of the Container API: records, logs and the run's state.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use container_api::output::DEFAULT_SEPARATOR;

use crate::error::{api, transient};
use crate::model::Object;
use crate::transport::Failure;

/// Where the Container API is unless `CONTAINER_API_URL` says otherwise.
pub const DEFAULT_URL: &str = "http://cde-container-api";
/// Records per `POST /output/output` at most.
pub const BATCH: usize = 1000;

const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ContainerApi {
    base: String,
    client: reqwest::Client,
}

impl ContainerApi {
    pub fn new(base: &str) -> Result<Self, Failure> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| transient(format!("building the Container API client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, String), Failure> {
        let response = request
            .send()
            .await
            .map_err(|e| transient(format!("{what}: the Container API cannot be reached: {e}")))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| transient(format!("{what}: reading the Container API's answer: {e}")))?;
        Ok((status, text))
    }

    fn refused(what: &str, status: u16, text: &str) -> Failure {
        let message = format!(
            "{what}: the Container API answered {status}: {}",
            text.chars().take(500).collect::<String>()
        );
        // A 4xx is about what was sent (records that do not flatten, say), not the
        // server's health.
        if (400..500).contains(&status) {
            api(message)
        } else {
            transient(message)
        }
    }

    /// Writes `records` in batches of at most [`BATCH`]; each batch is all or nothing.
    /// A batch's records are freed once serialized, before it is sent.
    pub async fn write(&self, records: Vec<Object>) -> Result<(), Failure> {
        self.write_to("output", "records", records).await
    }

    /// Writes feedback rows (`{"id": ..., "error": ...}`) as [`Self::write`] does records.
    pub async fn feedback(&self, rows: Vec<Object>) -> Result<(), Failure> {
        self.write_to("feedback", "feedback rows", rows).await
    }

    async fn write_to(
        &self,
        file: &str,
        noun: &str,
        mut records: Vec<Object>,
    ) -> Result<(), Failure> {
        let batches = records.len().div_ceil(BATCH);
        for i in 0..batches {
            let what = format!("writing {noun} (batch {} of {batches})", i + 1);
            let batch: Vec<Object> = records.drain(..records.len().min(BATCH)).collect();
            let body = flat_body(&batch)
                .map_err(|e| transient(format!("{what}: serializing the records: {e}")))?;
            drop(batch);
            let (status, text) = self
                .call(
                    &what,
                    self.client
                        .post(self.url(&format!("/output/{file}")))
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body),
                )
                .await?;
            if status != 201 {
                return Err(Self::refused(&what, status, &text));
            }
        }
        Ok(())
    }

    /// The next at most `size` (1 to [`BATCH`]) records of the input stream `stream`
    /// (`input`, `new`, ...): empty once it is exhausted, `None` when the run has no such
    /// stream (404).
    pub async fn next_batch(
        &self,
        stream: &str,
        size: usize,
    ) -> Result<Option<Vec<Object>>, Failure> {
        let what = format!("reading records of {stream}");
        let size = size.clamp(1, BATCH);
        let (status, text) = self
            .call(
                &what,
                self.client
                    .get(self.url(&format!("/input/{stream}/next_batch")))
                    .query(&[("size", size)]),
            )
            .await?;
        match status {
            200 => {
                let body = answer(&what, &text)?;
                match body.get("data") {
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|item| match item {
                            Value::Object(record) => Ok(record.clone()),
                            _ => Err(transient(format!(
                                "{what}: the Container API served a record that is not an object"
                            ))),
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(Some),
                    _ => Err(transient(format!(
                        "{what}: the Container API's answer has no data array"
                    ))),
                }
            }
            404 => Ok(None),
            _ => Err(Self::refused(&what, status, &text)),
        }
    }

    /// Writes a log line; a failure is reported on stderr and otherwise ignored (the
    /// run's records matter more than its logs).
    pub async fn log(&self, level: &str, message: &str, context: Value) {
        let what = format!("writing a {level} log line");
        let result = self
            .call(
                &what,
                self.client
                    .post(self.url(&format!("/logs/{level}")))
                    .json(&json!({"message": message, "context": context})),
            )
            .await;
        match result {
            Ok((201, _)) => {}
            Ok((status, text)) => eprintln!("{}", Self::refused(&what, status, &text)),
            Err(e) => eprintln!("{e}"),
        }
    }

    /// The run's state; `{}` when there is none, or when the server predates `/state`
    /// (404).
    pub async fn state(&self) -> Result<Value, Failure> {
        let what = "reading the state";
        let (status, text) = self.call(what, self.client.get(self.url("/state"))).await?;
        match status {
            200 => {
                let body = answer(what, &text)?;
                Ok(match body.get("data") {
                    Some(Value::Object(data)) => Value::Object(data.clone()),
                    _ => json!({}),
                })
            }
            404 => Ok(json!({})),
            _ => Err(Self::refused(what, status, &text)),
        }
    }

    /// Saves the run's state (cde commits it only if the run succeeds). `Ok(false)` when
    /// the server predates `/state` (404).
    pub async fn save_state(&self, state: &Value) -> Result<bool, Failure> {
        let what = "saving the state";
        let (status, text) = self
            .call(
                what,
                self.client
                    .put(self.url("/state"))
                    .json(&json!({ "data": state })),
            )
            .await?;
        match status {
            200 | 201 | 204 => Ok(true),
            404 => Ok(false),
            _ => Err(Self::refused(what, status, &text)),
        }
    }
}

/// `{"data":[...]}` with each record flattened as the Container API flattens it (names
/// joined by its default separator, array items by index, an empty object or array a
/// `null`), so that it copies the records as they come instead of parsing them again.
fn flat_body(records: &[Object]) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(records.len() * 512 + 16);
    out.extend_from_slice(b"{\"data\":[");
    let mut name = String::new();
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        let mut first = true;
        for (key, value) in record {
            name.clear();
            name.push_str(key);
            flat_member(&mut out, &mut name, value, &mut first)?;
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Writes `value` as the column `name`, or its members as columns under it.
fn flat_member(
    out: &mut Vec<u8>,
    name: &mut String,
    value: &Value,
    first: &mut bool,
) -> serde_json::Result<()> {
    let len = name.len();
    match value {
        Value::Object(members) if !members.is_empty() => {
            for (key, member) in members {
                name.truncate(len);
                name.push_str(DEFAULT_SEPARATOR);
                name.push_str(key);
                flat_member(out, name, member, first)?;
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                name.truncate(len);
                name.push_str(DEFAULT_SEPARATOR);
                let _ = write!(name, "{i}");
                flat_member(out, name, item, first)?;
            }
        }
        _ => {
            if !std::mem::take(first) {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, name.as_str())?;
            out.push(b':');
            match value {
                Value::Object(_) | Value::Array(_) => out.extend_from_slice(b"null"),
                scalar => serde_json::to_writer(&mut *out, scalar)?,
            }
        }
    }
    name.truncate(len);
    Ok(())
}

/// The JSON body of a Container API answer to `what`.
fn answer(what: &str, text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| {
        transient(format!(
            "{what}: the Container API's answer is not JSON: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_sent_flattened_as_the_container_api_flattens_them() {
        let records = [
            json!({"member": {"id": "a", "tags": ["x", {"k": 1}], "empty": {}}, "n": 1.5}),
            json!({"none": [], "s": "quote\"d"}),
        ]
        .map(|r| match r {
            Value::Object(record) => record,
            _ => unreachable!(),
        });
        let body = String::from_utf8(flat_body(&records).unwrap()).unwrap();
        assert_eq!(
            body,
            r#"{"data":[{"member-empty":null,"member-id":"a","member-tags-0":"x","member-tags-1-k":1,"n":1.5},{"none":null,"s":"quote\"d"}]}"#
        );
        assert_eq!(flat_body(&[]).unwrap(), br#"{"data":[]}"#);
    }
}
