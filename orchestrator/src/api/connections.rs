//! Connections: a connector with saved values, checked before saving, discovered.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, Path};

use crate::model::{Connection, ConnectionCheck, SaveConnection};
use crate::Cde;

pub fn routes() -> OpenApiRouter<Arc<Cde>> {
    OpenApiRouter::new()
        .routes(routes!(list_connections))
        .routes(routes!(check_connection))
        .routes(routes!(show_connection, save_connection, delete_connection))
        .routes(routes!(discover_connection))
}

/// List connections, by name; password values masked.
#[utoipa::path(
    get,
    path = "/connections",
    tag = "connections",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<Connection>), (status = 401, body = ErrorBody)),
)]
async fn list_connections(State(cde): State<Arc<Cde>>) -> Result<Json<Vec<Connection>>, ApiError> {
    Ok(Json(cde.connections().await?))
}

/// What a check takes: a connector and the values to try.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckValues {
    connector: String,
    #[serde(default)]
    values: BTreeMap<String, String>,
}

/// Check values for a connector without saving them: against its options, then with the
/// connector (an HTTP connector's first request, or its health check run with the
/// values). A failed check is a 200 with `ok: false`, its reason and the option it is
/// about.
#[utoipa::path(
    post,
    path = "/connections/check",
    tag = "connections",
    security(("bearer" = [])),
    request_body = CheckValues,
    responses(
        (status = 200, body = ConnectionCheck),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Unknown connector", body = ErrorBody),
    ),
)]
async fn check_connection(
    State(cde): State<Arc<Cde>>,
    JsonBody(request): JsonBody<CheckValues>,
) -> Result<Json<ConnectionCheck>, ApiError> {
    Ok(Json(
        cde.check_connection(&request.connector, &request.values)
            .await?,
    ))
}

/// Show a connection; password values masked.
#[utoipa::path(
    get,
    path = "/connections/{name}",
    tag = "connections",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The connection's name")),
    responses(
        (status = 200, body = Connection),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
async fn show_connection(
    State(cde): State<Arc<Cde>>,
    Path(name): Path<String>,
) -> Result<Json<Connection>, ApiError> {
    Ok(Json(cde.connection(&name).await?))
}

/// Save a connection (create or replace). Its values are checked first: a failed check
/// is a 400 naming the reason (and the option) unless `save_anyway`. A password left out,
/// empty or given as the mask keeps the value saved before.
#[utoipa::path(
    put,
    path = "/connections/{name}",
    tag = "connections",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The connection's name, kebab-case")),
    request_body = SaveConnection,
    responses(
        (status = 200, description = "Saved", body = Connection),
        (status = 400, description = "Invalid values, or a failed check", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Unknown connector", body = ErrorBody),
    ),
)]
async fn save_connection(
    State(cde): State<Arc<Cde>>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<SaveConnection>,
) -> Result<Json<Connection>, ApiError> {
    Ok(Json(cde.save_connection(&name, request).await?))
}

/// Delete a connection.
#[utoipa::path(
    delete,
    path = "/connections/{name}",
    tag = "connections",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The connection's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
async fn delete_connection(
    State(cde): State<Arc<Cde>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    cde.delete_connection(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Discover what a source connection produces: a run of it with its values, to its end;
/// its columns and first 20 rows are kept with the connection (shown by `GET` until the
/// next discovery or a change of values).
#[utoipa::path(
    post,
    path = "/connections/{name}/discover",
    tag = "connections",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The connection's name")),
    responses(
        (status = 200, body = Connection),
        (status = 400, description = "Not a source, or the run failed", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
async fn discover_connection(
    State(cde): State<Arc<Cde>>,
    Path(name): Path<String>,
) -> Result<Json<Connection>, ApiError> {
    Ok(Json(cde.discover(&name).await?))
}
