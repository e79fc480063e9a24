//! Sending one request: the endpoint group's rate limit, concurrency and retry policy, a
//! request timeout, and the kind of failure when it does not succeed.

use std::time::Duration;

/// Why a request (and so the run) failed; it decides whether cde may retry the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Credentials, permissions, a wrong path or a bad spec: retrying cannot help.
    Configuration,
    /// The API could not be reached or kept failing after every retry.
    Transient,
    /// The API refused the request with an error of its own.
    Api,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: FailureKind,
    pub status: Option<u16>,
    pub message: String,
}

/// Sends requests; see the module documentation.
#[derive(Debug, Clone)]
pub struct Transport {
    client: reqwest::Client,
}

/// How long one request may take unless a group says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl Transport {
    pub fn new() -> Result<Self, Failure> {
        let client = reqwest::Client::builder()
            .timeout(DEFAULT_TIMEOUT)
            .build()
            .map_err(|e| Failure {
                kind: FailureKind::Configuration,
                status: None,
                message: format!("building the HTTP client: {e}"),
            })?;
        Ok(Self { client })
    }

    /// Sends `request`; a 2xx answer is `Ok`, anything else a [`Failure`] naming the
    /// method, the URL and the status or cause.
    pub async fn send(&self, request: reqwest::Request) -> Result<reqwest::Response, Failure> {
        let what = format!("{} {}", request.method(), request.url());
        let response = self.client.execute(request).await.map_err(|e| Failure {
            kind: FailureKind::Transient,
            status: None,
            message: format!("{what}: {e}"),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let kind = match status.as_u16() {
            401 | 403 => FailureKind::Configuration,
            429 | 500..=599 => FailureKind::Transient,
            _ => FailureKind::Api,
        };
        let body = response.text().await.unwrap_or_default();
        Err(Failure {
            kind,
            status: Some(status.as_u16()),
            message: format!("{what}: {status}: {}", body.chars().take(500).collect::<String>()),
        })
    }
}
