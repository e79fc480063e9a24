use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Every error a handler can return; mapped to an HTTP response in one place
/// (the `IntoResponse` impl below).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `{"message":"Validation failed","errors":{field: problem}}`.
    #[error("validation failed: {0:?}")]
    Validation(BTreeMap<String, String>),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Validation(BTreeMap::from([(field.into(), problem.into())]))
    }
}

/// A struct rather than `json!`, so `message` comes before `errors` as in the contract.
#[derive(Serialize)]
struct ErrorBody {
    message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<BTreeMap<String, String>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, errors) = match self {
            Self::Validation(errors) => {
                (StatusCode::BAD_REQUEST, "Validation failed", Some(errors))
            }
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large.",
                None,
            ),
            Self::NotFound => (StatusCode::NOT_FOUND, "Not found.", None),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.", None),
            Self::Io(_) | Self::Internal(_) => {
                tracing::error!(error = %self, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error.",
                    None,
                )
            }
        };
        (status, Json(ErrorBody { message, errors })).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::validation(
                "body",
                "Expected request with `Content-Type: application/json`.",
            ),
            r if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            r => Self::validation("body", r.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::validation("path", rejection.body_text())
    }
}
