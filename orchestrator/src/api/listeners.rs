//! Webhook listeners: the open route senders post events to, and the management of
//! listeners (their URLs, counts and secrets).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Query};

use crate::model::{ListenerSecret, ListenerStatus};
use crate::Cde;

/// The route webhook senders post to: authenticated by each listener's secret, not the
/// management token.
pub fn hooks() -> OpenApiRouter<Arc<Cde>> {
    OpenApiRouter::new().routes(routes!(deliver))
}

pub fn routes() -> OpenApiRouter<Arc<Cde>> {
    OpenApiRouter::new()
        .routes(routes!(list_listeners))
        .routes(routes!(show_listener_secret, rotate_listener_secret))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HookQuery {
    /// The listener's secret, for a `token` listener whose sender cannot set a header.
    token: Option<String>,
}

/// What a delivery did: events appended to the log (and synced to disk), and events
/// already there (by their id).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Delivered {
    pub written: usize,
    pub duplicates: usize,
}

/// Deliver events to a listener.
///
/// The events at the listener's `records_locator` are on disk when this answers 200; on
/// any error, nothing of the request was kept. A `token` listener takes its secret in its
/// header (default `x-cde-token`) or the query parameter `token`; an `hmac_sha256` one
/// takes the HMAC-SHA256 of the raw body in its header.
#[utoipa::path(
    post,
    path = "/hooks/{pipeline}/{listener}",
    tag = "listeners",
    params(
        ("pipeline" = String, Path, description = "The pipeline's name"),
        ("listener" = String, Path, description = "The listener's name"),
        HookQuery,
    ),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses(
        (status = 200, description = "The events are on disk", body = Delivered),
        (status = 400, description = "Not JSON, nothing at the locator, an event not an object, no id where the listener takes it", body = ErrorBody),
        (status = 401, description = "No token or signature, or not the listener's", body = ErrorBody),
        (status = 404, description = "No such pipeline or listener", body = ErrorBody),
        (status = 413, description = "The body is over `CDE_HOOK_MAX_BODY_KB`", body = ErrorBody),
        (status = 429, description = "The listener's log is full until its pipeline runs; see `Retry-After`", body = ErrorBody),
        (status = 500, description = "Nothing of the request was kept", body = ErrorBody),
    ),
)]
async fn deliver(
    State(cde): State<Arc<Cde>>,
    Path((pipeline, listener)): Path<(String, String)>,
    Query(query): Query<HookQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Delivered>, ApiError> {
    let appended = cde
        .deliver(&pipeline, &listener, &headers, query.token.as_deref(), body)
        .await?;
    Ok(Json(Delivered {
        written: appended.written,
        duplicates: appended.duplicates,
    }))
}

/// A pipeline's listeners: their URLs, masked secrets and counts.
#[utoipa::path(
    get,
    path = "/pipelines/{name}/listeners",
    tag = "listeners",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The pipeline's name")),
    responses((status = 200, body = Vec<ListenerStatus>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
async fn list_listeners(
    State(cde): State<Arc<Cde>>,
    Path(name): Path<String>,
) -> Result<Json<Vec<ListenerStatus>>, ApiError> {
    Ok(Json(cde.listeners(&name).await?))
}

/// A listener's secret in full, to configure its sender with.
#[utoipa::path(
    get,
    path = "/pipelines/{name}/listeners/{listener}/secret",
    tag = "listeners",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "The pipeline's name"),
        ("listener" = String, Path, description = "The listener's name"),
    ),
    responses((status = 200, body = ListenerSecret), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
async fn show_listener_secret(
    State(cde): State<Arc<Cde>>,
    Path((name, listener)): Path<(String, String)>,
) -> Result<Json<ListenerSecret>, ApiError> {
    let secret = cde.listener_secret(&name, &listener).await?;
    Ok(Json(ListenerSecret { secret }))
}

/// Rotate a listener's secret: to the one given, or (with no body) a new random one.
/// Deliveries with the old one are refused from then on.
#[utoipa::path(
    post,
    path = "/pipelines/{name}/listeners/{listener}/secret",
    tag = "listeners",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "The pipeline's name"),
        ("listener" = String, Path, description = "The listener's name"),
    ),
    request_body(content = Option<ListenerSecret>, content_type = "application/json"),
    responses(
        (status = 200, description = "The new secret", body = ListenerSecret),
        (status = 400, description = "An empty secret", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
async fn rotate_listener_secret(
    State(cde): State<Arc<Cde>>,
    Path((name, listener)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<ListenerSecret>, ApiError> {
    let given = match body.iter().all(u8::is_ascii_whitespace) {
        true => None,
        false => Some(
            serde_json::from_slice::<ListenerSecret>(&body)
                .map_err(|e| ApiError::bad_request(format!("the body: {e}")))?
                .secret,
        ),
    };
    let secret = cde.rotate_listener_secret(&name, &listener, given).await?;
    Ok(Json(ListenerSecret { secret }))
}
