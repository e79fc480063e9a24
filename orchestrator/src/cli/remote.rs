//! A client of a `cde server`'s management API, for the command line's remote mode.

use std::path::Path;

use container_api::LogLine;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::api::connectors::Connector;
use crate::error::{Error, ErrorCode, Result};

use crate::model::{
    CheckReport, CheckRequest, ListenerSecret, ListenerStatus, Pipeline, PipelineRun, Registration,
    Run, RunFilter, RunRequest,
};

pub struct Remote {
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

/// The API's error answer, `{"error": {"code", "message"}}`.
#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: ErrorCode,
    message: String,
}

impl Remote {
    pub fn new(base: &str, token: String) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// reqwest says only "error sending request for url (…)": the cause (a refused
    /// connection, a name that does not resolve, a certificate that does not verify) is
    /// in its sources, so they are all said too.
    fn unreachable(&self, what: &str, e: reqwest::Error) -> Error {
        let mut message = format!("{what}: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Error::Remote {
            server: self.base.clone(),
            code: ErrorCode::Unavailable,
            message,
        }
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let request = request
            .bearer_auth(&self.token)
            .build()
            .map_err(|e| self.unreachable("building the request", e))?;
        let what = format!("{} {}", request.method(), request.url().path());
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| self.unreachable(&what, e))?;
        let status = answer.status();
        let body = answer
            .bytes()
            .await
            .map_err(|e| self.unreachable(&format!("reading the answer to {what}"), e))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| Error::Remote {
                server: self.base.clone(),
                code: ErrorCode::Unknown,
                message: format!("the answer to {what} is not what this client expects: {e}"),
            });
        }
        let (code, message) = match serde_json::from_slice::<ErrorAnswer>(&body) {
            Ok(answer) => (answer.error.code, answer.error.message),
            Err(_) => (
                ErrorCode::Unknown,
                format!("{what}: {status}: {}", String::from_utf8_lossy(&body)),
            ),
        };
        Err(Error::Remote {
            server: self.base.clone(),
            code,
            message,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts a JSON or YAML file (by its extension) as it is; the server validates it.
    async fn post_file<T: DeserializeOwned>(&self, route: &str, path: &Path) -> Result<T> {
        let text = std::fs::read_to_string(path).map_err(Error::file("reading", path))?;
        let json = path.extension().is_some_and(|ext| ext == "json");
        let content_type = if json {
            "application/json"
        } else {
            "application/yaml"
        };
        let request = self
            .http
            .post(self.url(route))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(text);
        self.send(request).await
    }

    /// Sends a manifest file as it is; the server validates it and runs the health check.
    pub async fn register(&self, path: &Path) -> Result<Registration> {
        self.post_file("/connectors", path).await
    }

    pub async fn connectors(&self) -> Result<Vec<Connector>> {
        self.send(self.http.get(self.url("/connectors"))).await
    }

    pub async fn connector(&self, code: &str) -> Result<Connector> {
        self.send(self.http.get(self.url(&format!("/connectors/{code}"))))
            .await
    }

    pub async fn check(&self, code: &str, request: &CheckRequest) -> Result<CheckReport> {
        let route = format!("/connectors/{code}/check");
        self.send(self.http.post(self.url(&route)).json(request))
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

    /// Sends a pipeline file as it is; the server validates it against its registry.
    pub async fn save_pipeline(&self, path: &Path) -> Result<Pipeline> {
        self.post_file("/pipelines", path).await
    }

    pub async fn pipelines(&self) -> Result<Vec<Pipeline>> {
        self.send(self.http.get(self.url("/pipelines"))).await
    }

    pub async fn pipeline(&self, name: &str) -> Result<Pipeline> {
        self.send(self.http.get(self.url(&format!("/pipelines/{name}"))))
            .await
    }

    /// Starts a run of the pipeline; it goes on in the server.
    pub async fn start_pipeline_run(&self, name: &str) -> Result<PipelineRun> {
        self.send(self.http.post(self.url(&format!("/pipelines/{name}/runs"))))
            .await
    }

    pub async fn pipeline_run(&self, id: &str) -> Result<PipelineRun> {
        self.send(self.http.get(self.url(&format!("/pipeline-runs/{id}"))))
            .await
    }

    pub async fn pipeline_runs(&self, name: &str, limit: i64) -> Result<Vec<PipelineRun>> {
        let url = self.url(&format!("/pipelines/{name}/runs"));
        self.send(self.http.get(url).query(&[("limit", limit)]))
            .await
    }

    pub async fn listeners(&self, pipeline: &str) -> Result<Vec<ListenerStatus>> {
        let url = self.url(&format!("/pipelines/{pipeline}/listeners"));
        self.send(self.http.get(url)).await
    }

    pub async fn listener_secret(
        &self,
        pipeline: &str,
        listener: &str,
        rotate: bool,
        given: Option<String>,
    ) -> Result<String> {
        let url = self.url(&format!(
            "/pipelines/{pipeline}/listeners/{listener}/secret"
        ));
        let request = match (rotate, given) {
            (false, _) => self.http.get(url),
            (true, None) => self.http.post(url),
            (true, Some(secret)) => self.http.post(url).json(&ListenerSecret { secret }),
        };
        let answer: ListenerSecret = self.send(request).await?;
        Ok(answer.secret)
    }
}
