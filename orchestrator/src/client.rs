//! A client of a `cde server`'s management API, for the command line's remote mode.

use std::path::Path;

use container_api::LogLine;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::api::connectors::Connector;
use crate::error::{Error, Result};
use crate::model::{Registration, Run, RunFilter, RunRequest};

pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Entry {
    seq: i64,
    #[serde(flatten)]
    line: LogLine,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

impl Client {
    pub fn new(base: &str, token: String) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let answer = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| Error::Server(format!("{}: {e}", self.base)))?;
        let status = answer.status();
        let body = answer
            .bytes()
            .await
            .map_err(|e| Error::Server(e.to_string()))?;
        if status.is_success() {
            return Ok(serde_json::from_slice(&body)?);
        }
        let message = serde_json::from_slice::<ErrorAnswer>(&body)
            .map(|e| e.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        Err(match status.as_u16() {
            404 if message.starts_with("run not found") => Error::RunNotFound(message),
            404 if message.starts_with("connector not found") => Error::ConnectorNotFound(message),
            _ => Error::Server(format!("{status}: {message}")),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a manifest file as it is; the server validates it and runs the health check.
    pub async fn register(&self, path: &Path) -> Result<Registration> {
        let text = std::fs::read_to_string(path)?;
        let json = path.extension().is_some_and(|ext| ext == "json");
        let content_type = if json {
            "application/json"
        } else {
            "application/yaml"
        };
        let request = self
            .http
            .post(self.url("/connectors"))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(text);
        self.send(request).await
    }

    pub async fn connectors(&self) -> Result<Vec<Connector>> {
        self.send(self.http.get(self.url("/connectors"))).await
    }

    pub async fn connector(&self, code: &str) -> Result<Connector> {
        self.send(self.http.get(self.url(&format!("/connectors/{code}"))))
            .await
    }

    pub async fn submit(&self, request: &RunRequest) -> Result<Run> {
        self.send(self.http.post(self.url("/runs")).json(request))
            .await
    }

    pub async fn run(&self, id: &str) -> Result<Run> {
        self.send(self.http.get(self.url(&format!("/runs/{id}"))))
            .await
    }

    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        let mut query = vec![("limit", filter.limit.unwrap_or(100).to_string())];
        if let Some(status) = filter.status {
            query.push(("status", status.as_str().to_owned()));
        }
        if let Some(connector) = &filter.connector {
            query.push(("connector", connector.clone()));
        }
        self.send(self.http.get(self.url("/runs")).query(&query))
            .await
    }

    pub async fn logs(&self, id: &str, from: i64) -> Result<Vec<(i64, LogLine)>> {
        let url = self.url(&format!("/runs/{id}/logs"));
        let entries: Vec<Entry> = self
            .send(self.http.get(url).query(&[("from", from)]))
            .await?;
        Ok(entries.into_iter().map(|e| (e.seq, e.line)).collect())
    }

    pub async fn cancel(&self, id: &str) -> Result<Run> {
        self.send(self.http.post(self.url(&format!("/runs/{id}/cancel"))))
            .await
    }
}
