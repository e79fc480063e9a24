//! Registering and listing connectors.

use crate::error::ErrorCode;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Query};
use crate::catalog::CatalogFilter;

use crate::model::{CheckReport, CheckRequest, ConnectorVersion, Manifest, Registration};
use crate::Cde;

pub fn routes() -> OpenApiRouter<Arc<Cde>> {
    OpenApiRouter::new()
        .routes(routes!(register_connector, list_connectors))
        .routes(routes!(show_connector))
        .routes(routes!(check_connector))
}

/// The latest version of a registered connector.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Connector {
    pub code: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub manifest: Manifest,
}

impl From<ConnectorVersion> for Connector {
    fn from(connector: ConnectorVersion) -> Self {
        Self {
            code: connector.manifest.code.clone(),
            version: connector.version,
            created_at: connector.created_at,
            manifest: connector.manifest,
        }
    }
}

/// Register a connector: the manifest as JSON, or as YAML with `Content-Type: application/yaml`.
///
/// A changed manifest becomes a new version once its health check (a throw-away container
/// of the image) exits 0; the same manifest again changes nothing.
#[utoipa::path(
    post,
    path = "/connectors",
    tag = "connectors",
    security(("bearer" = [])),
    request_body(content(
        (Manifest = "application/json"),
        (Manifest = "application/yaml"),
    )),
    responses(
        (status = 201, description = "A new version was registered", body = Registration),
        (status = 200, description = "The manifest equals the latest version", body = Registration),
        (status = 400, description = "Invalid manifest; the message names the field", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 415, description = "Neither JSON nor YAML", body = ErrorBody),
        (status = 422, description = "The health check failed", body = ErrorBody),
        (status = 503, description = "The Docker engine cannot be reached", body = ErrorBody),
    ),
)]
async fn register_connector(
    State(cde): State<Arc<Cde>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<Registration>), ApiError> {
    let json = is_json(&headers)?;
    let body = body?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the manifest is not UTF-8"))?;
    let manifest = Manifest::parse(text, json).map_err(|message| {
        ApiError::from(crate::Error::Manifest {
            path: "request body".into(),
            message,
        })
    })?;
    let registration = cde.register(manifest).await?;
    let status = if registration.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(registration)))
}

/// Whether the body is JSON (true) or YAML (false), from its content type; JSON when unset.
pub(super) fn is_json(headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return Ok(true);
    };
    let essence = content_type
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(true),
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => Ok(false),
        other if other.ends_with("+json") => Ok(true),
        other => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("a manifest is application/json or application/yaml, not {other:?}"),
        )),
    }
}

/// List connectors, each at its latest version, by code; filtered by category, role
/// (`source`, `service`, `export`) and words in their code, label or summary.
#[utoipa::path(
    get,
    path = "/connectors",
    tag = "connectors",
    security(("bearer" = [])),
    params(CatalogFilter),
    responses(
        (status = 200, body = Vec<Connector>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
)]
async fn list_connectors(
    State(cde): State<Arc<Cde>>,
    Query(filter): Query<CatalogFilter>,
) -> Result<Json<Vec<Connector>>, ApiError> {
    let connectors = cde.store.connectors().await?;
    Ok(Json(
        connectors
            .into_iter()
            .filter(|c| filter.matches(&c.manifest))
            .map(Connector::from)
            .collect(),
    ))
}

/// Show a connector's latest version with its manifest.
#[utoipa::path(
    get,
    path = "/connectors/{code}",
    tag = "connectors",
    security(("bearer" = [])),
    params(("code" = String, Path, description = "The connector's code")),
    responses(
        (status = 200, body = Connector),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
async fn show_connector(
    State(cde): State<Arc<Cde>>,
    Path(code): Path<String>,
) -> Result<Json<Connector>, ApiError> {
    Ok(Json(cde.store.connector(&code).await?.into()))
}

/// Check an HTTP connector: its first request, made with these options on the network a
/// run would join, and what the answer holds (status, records of the first page, their
/// columns). Nothing is written: no run, dataset or state.
#[utoipa::path(
    post,
    path = "/connectors/{code}/check",
    tag = "connectors",
    security(("bearer" = [])),
    params(("code" = String, Path, description = "The connector's code")),
    request_body = CheckRequest,
    responses(
        (status = 200, description = "What the first request found; `ok` says whether it succeeded", body = CheckReport),
        (status = 400, description = "An unknown or invalid option, or not an HTTP connector", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, description = "The Docker engine cannot be reached", body = ErrorBody),
    ),
)]
async fn check_connector(
    State(cde): State<Arc<Cde>>,
    Path(code): Path<String>,
    Json(request): Json<CheckRequest>,
) -> Result<Json<CheckReport>, ApiError> {
    Ok(Json(cde.check(request.into_run_request(&code)).await?))
}
