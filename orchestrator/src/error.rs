//! One error type for the orchestrator. Each variant names what failed and on what; the
//! stable [`ErrorCode`] it answers with over HTTP is decided in [`Error::code`], and the
//! HTTP status in `api::error`, nowhere else.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kinds of things the API finds by name or id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display)]
#[strum(serialize_all = "lowercase")]
pub enum Object {
    Connector,
    Run,
    Pipeline,
    #[strum(serialize = "pipeline run")]
    PipelineRun,
    Dataset,
    Listener,
    Connection,
    User,
}

/// Stable, machine-readable error codes: what API clients (the CLI among them) branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    InvalidManifest,
    InvalidConfig,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// A listener whose log is full: try again after `Retry-After` seconds.
    TooManyRequests,
    HealthCheckFailed,
    InvalidOutput,
    Internal,
    DockerUnavailable,
    Unavailable,
    /// A code this version does not know (a newer server).
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Error)]
pub enum Error {
    #[error("{object} not found: {id}")]
    NotFound { object: Object, id: String },
    #[error("invalid manifest {path}: {message}")]
    Manifest { path: String, message: String },
    /// A request that cannot be run as asked: options, limits, inputs, a pipeline definition.
    #[error("invalid run configuration: {0}")]
    InvalidConfig(String),
    /// A value the connector's option `option` does not take (or a required one missing);
    /// forms show `message` next to that field.
    #[error("invalid run configuration: {message}")]
    InvalidOption { option: String, message: String },
    /// The object is busy or changed under the request (a pipeline already running, a
    /// registration racing another).
    #[error("{0}")]
    Conflict(String),
    /// What a run wrote cannot be read as records (refused, or not JSON).
    #[error("the run's output: {0}")]
    RunOutput(String),
    #[error("health check of {code} failed: {reason}")]
    HealthCheck { code: String, reason: String },
    /// The process configuration (environment, data directory, secret key).
    #[error("configuration: {0}")]
    Config(String),
    #[error("cde executable: {0}")]
    Executable(String),
    /// The Docker engine cannot be reached at `address` (a `unix://` socket): why, and
    /// what to do about it.
    #[error("cannot reach the Docker engine at {address}: {reason}; {remedy}")]
    EngineUnreachable {
        address: String,
        reason: String,
        remedy: &'static str,
    },
    /// The engine at `address` speaks an API older than cde needs (`needed`, first spoken
    /// by Docker `release`).
    #[error(
        "the Docker engine at {address} speaks API {api_version}; cde needs API {needed} or newer (Docker {release}+): upgrade the engine"
    )]
    EngineTooOld {
        address: String,
        api_version: String,
        needed: String,
        release: &'static str,
    },
    /// A call to the Docker engine, named by what it was doing.
    #[error("{op}: {source}")]
    Engine {
        op: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// A statement against the store, named by what it was doing.
    #[error("{op}: {source}")]
    Store {
        op: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating the database: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A file or directory operation, with the path it was on.
    #[error("{op} {}: {source}", path.display())]
    File {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: {source}")]
    Json {
        op: String,
        #[source]
        source: serde_json::Error,
    },
    /// A management API server reached by the CLI, and what it answered.
    #[error("{server}: {message}")]
    Remote {
        server: String,
        code: ErrorCode,
        message: String,
    },
    /// A webhook delivery refused before anything was written: its sender or its body.
    #[error(transparent)]
    Delivery(#[from] crate::listener::DeliveryError),
    /// A webhook delivery's body over `CDE_HOOK_MAX_BODY_KB`.
    #[error("listener {listener}: the body is over the limit of {limit_kb} KiB")]
    DeliveryTooLarge { listener: String, limit_kb: u64 },
    /// A listener's event log refused or failed an append, or cannot be opened or read.
    #[error("listener {listener}: {source}")]
    EventLog {
        listener: String,
        #[source]
        source: crate::event_log::EventLogError,
    },
    /// Anything else, said in full where it happened.
    #[error("{0}")]
    Other(String),
}

/// Rows a user gave that cannot be compared are their mistake (400); a file cde cannot
/// read or write is cde's (500).
impl From<crate::delta::DeltaError> for Error {
    fn from(error: crate::delta::DeltaError) -> Self {
        use crate::delta::DeltaError;
        match error {
            DeltaError::Read { path, source } => Error::File {
                op: "reading",
                path,
                source,
            },
            DeltaError::Write { path, source } => Error::File {
                op: "writing",
                path,
                source,
            },
            invalid => Error::InvalidConfig(format!("computing the delta: {invalid}")),
        }
    }
}

impl Error {
    pub fn not_found(object: Object, id: impl Into<String>) -> Self {
        Error::NotFound {
            object,
            id: id.into(),
        }
    }

    pub fn engine(op: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Self {
        let op = op.into();
        move |source| Error::Engine { op, source }
    }

    pub fn store(op: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let op = op.into();
        move |source| Error::Store { op, source }
    }

    pub fn file(op: &'static str, path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.as_ref().to_owned();
        move |source| Error::File { op, path, source }
    }

    pub fn event_log(
        listener: impl Into<String>,
    ) -> impl FnOnce(crate::event_log::EventLogError) -> Self {
        let listener = listener.into();
        move |source| Error::EventLog { listener, source }
    }

    pub fn json(op: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Self {
        let op = op.into();
        move |source| Error::Json { op, source }
    }

    /// The stable code the API answers this error with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::Manifest { .. } => ErrorCode::InvalidManifest,
            Error::InvalidConfig(_) | Error::InvalidOption { .. } => ErrorCode::InvalidConfig,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::RunOutput(_) => ErrorCode::InvalidOutput,
            Error::HealthCheck { .. } => ErrorCode::HealthCheckFailed,
            // The engine answered: a failure of ours or its, not an outage.
            Error::Engine {
                source: bollard::errors::Error::DockerResponseServerError { .. },
                ..
            } => ErrorCode::Internal,
            Error::Engine { .. } | Error::EngineUnreachable { .. } | Error::EngineTooOld { .. } => {
                ErrorCode::DockerUnavailable
            }
            Error::Remote { code, .. } => *code,
            Error::Delivery(crate::listener::DeliveryError::Unauthorized { .. }) => {
                ErrorCode::Unauthorized
            }
            Error::Delivery(crate::listener::DeliveryError::Invalid { .. }) => {
                ErrorCode::BadRequest
            }
            Error::DeliveryTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Error::EventLog { source, .. } => {
                use crate::event_log::EventLogError;
                match source {
                    EventLogError::Full { .. } => ErrorCode::TooManyRequests,
                    EventLogError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
                    EventLogError::InUse { .. } => ErrorCode::Conflict,
                    _ => ErrorCode::Internal,
                }
            }
            Error::Config(_)
            | Error::Executable(_)
            | Error::Store { .. }
            | Error::Migration(_)
            | Error::File { .. }
            | Error::Json { .. }
            | Error::Other(_) => ErrorCode::Internal,
        }
    }
}
