//! Runs: create (queue), list, show, cancel, and their output records.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, Path, Query};

use crate::model::{OutputPage, Run, RunFilter, RunRequest, RunStatus};
use crate::Cde;

pub fn routes() -> OpenApiRouter<Arc<Cde>> {
    OpenApiRouter::new()
        .routes(routes!(create_run, list_runs))
        .routes(routes!(show_run))
        .routes(routes!(cancel_run))
        .routes(routes!(run_output))
}

const MAX_RUNS: i64 = 1000;
const DEFAULT_RECORDS: usize = 100;
const MAX_RECORDS: usize = 1000;

/// Queue a run of a connector's latest version; the server's scheduler starts it.
///
/// Options are checked against the manifest first: an unknown option, a missing required
/// one or an invalid value is a 400 and no run is recorded.
#[utoipa::path(
    post,
    path = "/runs",
    tag = "runs",
    security(("bearer" = [])),
    request_body = RunRequest,
    responses(
        (status = 201, description = "Queued", body = Run),
        (status = 400, description = "Invalid options or limits", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Unknown connector", body = ErrorBody),
    ),
)]
async fn create_run(
    State(cde): State<Arc<Cde>>,
    JsonBody(request): JsonBody<RunRequest>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    Ok((StatusCode::CREATED, Json(cde.submit(request).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    /// Only runs in this state.
    status: Option<RunStatus>,
    /// Only runs of this connector (its code).
    connector: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<i64>,
}

/// List runs, most recent first.
#[utoipa::path(
    get,
    path = "/runs",
    tag = "runs",
    security(("bearer" = [])),
    params(RunsQuery),
    responses(
        (status = 200, body = Vec<Run>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
)]
async fn list_runs(
    State(cde): State<Arc<Cde>>,
    Query(query): Query<RunsQuery>,
) -> Result<Json<Vec<Run>>, ApiError> {
    if query.limit.is_some_and(|limit| limit < 1) {
        return Err(ApiError::bad_request("limit: must be at least 1"));
    }
    let filter = RunFilter {
        status: query.status,
        connector: query.connector,
        limit: Some(query.limit.unwrap_or(100).min(MAX_RUNS)),
    };
    Ok(Json(cde.store.runs(&filter).await?))
}

/// Show a run.
#[utoipa::path(
    get,
    path = "/runs/{id}",
    tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, body = Run),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
async fn show_run(
    State(cde): State<Arc<Cde>>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    Ok(Json(cde.store.run(&id).await?))
}

/// Cancel a run: a queued one at once; a started one gets SIGTERM, then SIGKILL after the
/// grace period, and becomes `cancelled` when it has stopped. A finished run stays as it is.
#[utoipa::path(
    post,
    path = "/runs/{id}/cancel",
    tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run after the request; poll it for the outcome", body = Run),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, description = "The Docker engine cannot be reached", body = ErrorBody),
    ),
)]
async fn cancel_run(
    State(cde): State<Arc<Cde>>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    Ok(Json(cde.cancel(&id).await?))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum OutputType {
    #[default]
    Output,
    Feedback,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct OutputQuery {
    /// Which file: `output` (default) or `feedback`.
    #[serde(default, rename = "type")]
    #[param(inline)]
    kind: OutputType,
    /// Records to skip (default 0).
    #[serde(default)]
    offset: usize,
    /// Records per page (default 100; more than 1000 is capped to 1000).
    limit: Option<usize>,
}

/// Page through a run's output or feedback records, in the order they were written.
#[utoipa::path(
    get,
    path = "/runs/{id}/output",
    tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run's id"), OutputQuery),
    responses(
        (status = 200, body = OutputPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "The run's output is refused (a link or other non-regular file) or not JSON.", body = ErrorBody),
    ),
)]
async fn run_output(
    State(cde): State<Arc<Cde>>,
    Path(id): Path<String>,
    Query(query): Query<OutputQuery>,
) -> Result<Json<OutputPage>, ApiError> {
    let limit = match query.limit {
        Some(0) => return Err(ApiError::bad_request("limit: must be at least 1")),
        Some(limit) => limit.min(MAX_RECORDS),
        None => DEFAULT_RECORDS,
    };
    Ok(Json(
        cde.output_page(&id, query.kind == OutputType::Feedback, query.offset, limit)
            .await?,
    ))
}
