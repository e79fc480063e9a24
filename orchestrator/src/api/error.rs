//! Every error the API answers with has one shape, `{"error": {"code", "message"}}`, and
//! `cde::Error` is mapped to HTTP here and nowhere else.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::Error;

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_request`, `invalid_manifest`, `invalid_config` (400),
    /// `unauthorized` (401), `not_found` (404), `method_not_allowed` (405),
    /// `payload_too_large` (413), `unsupported_media_type` (415), `health_check_failed`
    /// (422), `internal` (500), `docker_unavailable`, `unavailable` (503).
    #[schema(example = "not_found")]
    pub code: String,
    /// For people; may change between versions.
    #[schema(example = "run not found: 0190c6c6-7d3a-7b1e-9d6a-0b9e4f1c2a3b")]
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match &error {
            Error::NotFound { .. }
            | Error::ConnectorNotFound(_)
            | Error::RunNotFound(_)
            | Error::PipelineNotFound(_) => Self::not_found(error.to_string()),
            Error::Conflict(_) | Error::PipelineBusy(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            Error::Manifest { message, .. } => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_manifest", message)
            }
            Error::InvalidConfig(message) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_config", message)
            }
            Error::RunOutput(message) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_output", message)
            }
            // The manifest is well-formed, but its image does not pass its own check.
            Error::HealthCheck { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "health_check_failed",
                error.to_string(),
            ),
            // The engine answered: a failure of ours or its, not an outage.
            Error::Docker(bollard::errors::Error::DockerResponseServerError { .. }) => {
                tracing::error!("management API: {error}");
                Self::internal()
            }
            Error::Docker(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "docker_unavailable",
                "the Docker engine cannot be reached",
            ),
            _ => {
                tracing::error!("management API: {error}");
                Self::internal()
            }
        }
    }
}

/// Axum's own rejections (bad JSON, bad query, ...) in the same shape. A body that does not
/// fit the schema is a 400 like any other invalid request; 422 means a failed health check.
macro_rules! from_rejection {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for ApiError {
            fn from(rejection: $rejection) -> Self {
                match rejection.status() {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", rejection.body_text())
                    }
                    StatusCode::PAYLOAD_TOO_LARGE => {
                        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", rejection.body_text())
                    }
                    status if status.is_server_error() => {
                        tracing::error!("management API: {}", rejection.body_text());
                        Self::internal()
                    }
                    _ => Self::bad_request(rejection.body_text()),
                }
            }
        }
    )*};
}

from_rejection!(JsonRejection, QueryRejection, PathRejection, BytesRejection);
