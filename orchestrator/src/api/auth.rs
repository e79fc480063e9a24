//! Bearer-token authentication of the protected routes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::session::Sessions;

/// The scheme's name in the OpenAPI document; the `security(("bearer" = []))` of each protected route.
pub const SCHEME: &str = "bearer";

/// What lets a request in: the API token, or (for reading) a console session.
pub struct Gate {
    pub token: Arc<str>,
    pub sessions: Arc<Sessions>,
}

/// Lets the request through when it carries `Authorization: Bearer <token>`, or when it
/// only reads (`GET`, `HEAD`) and carries a console session's cookie (the console's live
/// logs); an empty configured token lets nothing through.
pub async fn require_token(
    State(gate): State<Arc<Gate>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, presented)| presented.trim())
        .filter(|presented| !presented.is_empty());
    let token = &gate.token;
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    match presented {
        Some(presented) if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) => {
            Ok(next.run(request).await)
        }
        None if reads && !token.is_empty() && gate.sessions.of(request.headers()).is_some() => {
            Ok(next.run(request).await)
        }
        _ => Err(ApiError::unauthorized()),
    }
}
