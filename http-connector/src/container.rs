//! The engine's client of the Container API: records, logs and the run's state.

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

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
    pub async fn write(&self, records: &[Object]) -> Result<(), Failure> {
        self.write_to("output", "records", records).await
    }

    /// Writes feedback rows (`{"id": ..., "error": ...}`) as [`Self::write`] does records.
    pub async fn feedback(&self, rows: &[Object]) -> Result<(), Failure> {
        self.write_to("feedback", "feedback rows", rows).await
    }

    async fn write_to(&self, file: &str, noun: &str, records: &[Object]) -> Result<(), Failure> {
        for (i, batch) in records.chunks(BATCH).enumerate() {
            let what = format!(
                "writing {noun} (batch {} of {})",
                i + 1,
                records.len().div_ceil(BATCH)
            );
            let (status, text) = self
                .call(
                    &what,
                    self.client
                        .post(self.url(&format!("/output/{file}")))
                        .json(&Data { data: batch }),
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

/// The body of a write, serialized from the records as they are.
#[derive(Serialize)]
struct Data<'a> {
    data: &'a [Object],
}

/// The JSON body of a Container API answer to `what`.
fn answer(what: &str, text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| {
        transient(format!(
            "{what}: the Container API's answer is not JSON: {e}"
        ))
    })
}
