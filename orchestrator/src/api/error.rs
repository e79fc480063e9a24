//! Every error the API answers with has one shape, `{"error": {"code", "message"}}`, and
//! `cde::Error` is mapped to HTTP here and nowhere else.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, ErrorCode};

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_request`, `invalid_manifest`, `invalid_config` (400),
    /// `unauthorized` (401), `not_found` (404), `method_not_allowed` (405), `conflict`
    /// (409), `payload_too_large` (413), `unsupported_media_type` (415),
    /// `health_check_failed`, `invalid_output` (422), `too_many_requests` (429, with
    /// `Retry-After`), `internal` (500),
    /// `docker_unavailable`, `unavailable` (503).
    #[schema(example = "not_found")]
    pub code: ErrorCode,
    /// For people; may change between versions.
    #[schema(example = "run not found: 0190c6c6-7d3a-7b1e-9d6a-0b9e4f1c2a3b")]
    pub message: String,
}

/// The HTTP status of every error code, here and nowhere else.
pub fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest | ErrorCode::InvalidManifest | ErrorCode::InvalidConfig => {
            StatusCode::BAD_REQUEST
        }
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::HealthCheckFailed | ErrorCode::InvalidOutput => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal | ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::DockerUnavailable | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// When a client told 429 may try again: a full listener log drains only when its
/// pipeline runs.
pub const RETRY_AFTER_SECS: u64 = 30;

#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    /// A 401 of the management API asks for a bearer token; a webhook's does not.
    bearer: bool,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            bearer: true,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "a valid bearer token is required")
    }

    fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status(self.code);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(RETRY_AFTER_SECS),
            );
        }
        if status == StatusCode::UNAUTHORIZED && self.bearer {
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
        match error.code() {
            // Details of cde's own failures stay in its log.
            ErrorCode::Internal | ErrorCode::Unknown => {
                tracing::error!("management API: {error}");
                Self::internal()
            }
            ErrorCode::DockerUnavailable => {
                tracing::warn!("management API: {error}");
                Self::new(
                    ErrorCode::DockerUnavailable,
                    "the Docker engine cannot be reached",
                )
            }
            code => {
                let bearer = !matches!(error, Error::Delivery(_));
                let message = match error {
                    Error::Manifest { message, .. }
                    | Error::InvalidConfig(message)
                    | Error::InvalidOption { message, .. }
                    | Error::RunOutput(message) => message,
                    other => other.to_string(),
                };
                Self {
                    bearer,
                    ..Self::new(code, message)
                }
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
                        Self::new(ErrorCode::UnsupportedMediaType, rejection.body_text())
                    }
                    StatusCode::PAYLOAD_TOO_LARGE => {
                        Self::new(ErrorCode::PayloadTooLarge, rejection.body_text())
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
