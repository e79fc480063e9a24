use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("invalid manifest {path}: {message}")]
    Manifest { path: String, message: String },
    #[error("connector not found: {0}")]
    ConnectorNotFound(String),
    #[error("pipeline {0} is already running")]
    PipelineBusy(String),
    #[error("pipeline not found: {0}")]
    PipelineNotFound(String),
    #[error("run not found: {0}")]
    RunNotFound(String),
    #[error("invalid run configuration: {0}")]
    InvalidConfig(String),
    /// What a run wrote cannot be read as records (refused, or not JSON).
    #[error("the run's output: {0}")]
    RunOutput(String),
    #[error("health check of {code} failed: {reason}")]
    HealthCheck { code: String, reason: String },
    #[error("container-api binary: {0}")]
    ApiBinary(String),
    #[error("server: {0}")]
    Server(String),
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}
