use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
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
    /// 413; carries the configured limit in bytes.
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 404 for an input stream this run does not have.
    #[error("input file not provided")]
    InputNotProvided,
    #[error("no such process")]
    ProcessNotFound,
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

    /// A problem with the request body as a whole (media type, encoding, syntax).
    pub fn body(problem: impl Into<String>) -> Self {
        Self::validation("body", problem)
    }
}

/// A struct rather than `json!`, so `message` comes before `errors` as in the contract.
#[derive(Serialize)]
struct ErrorBody {
    message: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<BTreeMap<String, String>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, errors): (_, Cow<'static, str>, _) = match self {
            Self::Validation(errors) => (
                StatusCode::BAD_REQUEST,
                "Validation failed".into(),
                Some(errors),
            ),
            Self::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body too large: the limit is {limit} bytes.").into(),
                None,
            ),
            Self::InputNotProvided => (
                StatusCode::NOT_FOUND,
                "Requested file not provided.".into(),
                None,
            ),
            Self::ProcessNotFound => (StatusCode::NOT_FOUND, "Process not found.".into(), None),
            Self::NotFound => (StatusCode::NOT_FOUND, "Not found.".into(), None),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed.".into(),
                None,
            ),
            Self::Io(_) | Self::Internal(_) => {
                tracing::error!(error = %self, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error.".into(),
                    None,
                )
            }
        };
        (status, Json(ErrorBody { message, errors })).into_response()
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::validation("path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::validation("query", rejection.body_text())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Internal(format!("background task failed: {error}"))
    }
}
