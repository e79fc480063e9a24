//! Bearer-token authentication of the protected routes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The scheme's name in the OpenAPI document; the `security(("bearer" = []))` of each protected route.
pub const SCHEME: &str = "bearer";

/// Lets the request through when it carries `Authorization: Bearer <token>`; an empty
/// configured token lets nothing through.
pub async fn require_token(
    State(token): State<Arc<str>>,
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
    match presented {
        Some(presented) if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) => {
            Ok(next.run(request).await)
        }
        _ => Err(ApiError::unauthorized()),
    }
}
