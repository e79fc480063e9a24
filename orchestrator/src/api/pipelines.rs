//! Pipelines, their runs, and the datasets they and other runs produce.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::connectors::is_json;
use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Query};

use crate::model::{Dataset, Pipeline, PipelineRun};
use crate::Cde;

pub fn routes() -> OpenApiRouter<Arc<Cde>> {
    OpenApiRouter::new()
        .routes(routes!(save_pipeline, list_pipelines))
        .routes(routes!(show_pipeline))
        .routes(routes!(start_pipeline_run, list_pipeline_runs))
        .routes(routes!(show_pipeline_run))
        .routes(routes!(list_dataset_versions))
}

/// Create or replace a pipeline (JSON, or YAML with `Content-Type: application/yaml`).
///
/// Every step is checked against the registry first: connector types in the right place,
/// option values, limits and `max_usage`.
#[utoipa::path(
    post,
    path = "/pipelines",
    tag = "pipelines",
    security(("bearer" = [])),
    request_body(content((Pipeline = "application/json"), (Pipeline = "application/yaml"))),
    responses(
        (status = 200, description = "Saved", body = Pipeline),
        (status = 400, description = "Invalid; the message names the step or field", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 415, body = ErrorBody),
    ),
)]
async fn save_pipeline(
    State(cde): State<Arc<Cde>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Pipeline>, ApiError> {
    let json = is_json(&headers)?;
    let body = body?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the pipeline is not UTF-8"))?;
    let pipeline = Pipeline::parse(text, json).map_err(|message| {
        ApiError::from(crate::Error::Manifest {
            path: "request body".into(),
            message,
        })
    })?;
    Ok(Json(cde.save_pipeline(&pipeline).await?))
}

/// List pipelines by name.
#[utoipa::path(
    get,
    path = "/pipelines",
    tag = "pipelines",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<Pipeline>), (status = 401, body = ErrorBody)),
)]
async fn list_pipelines(State(cde): State<Arc<Cde>>) -> Result<Json<Vec<Pipeline>>, ApiError> {
    Ok(Json(cde.store.pipelines().await?))
}

/// Show a pipeline.
#[utoipa::path(
    get,
    path = "/pipelines/{name}",
    tag = "pipelines",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The pipeline's name")),
    responses((status = 200, body = Pipeline), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
async fn show_pipeline(
    State(cde): State<Arc<Cde>>,
    Path(name): Path<String>,
) -> Result<Json<Pipeline>, ApiError> {
    Ok(Json(cde.store.pipeline(&name).await?))
}

/// Start a run of a pipeline; it goes on in the server. Poll `GET /pipeline-runs/{id}`.
#[utoipa::path(
    post,
    path = "/pipelines/{name}/runs",
    tag = "pipelines",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The pipeline's name")),
    responses(
        (status = 202, description = "Started", body = PipelineRun),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "A run of this pipeline is still going", body = ErrorBody),
    ),
)]
async fn start_pipeline_run(
    State(cde): State<Arc<Cde>>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<PipelineRun>), ApiError> {
    let run = cde.start_pipeline_run(&name, "manual").await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Limit {
    /// At most this many (default 20, at most 1000).
    limit: Option<i64>,
}

/// A pipeline's runs with their steps, most recent first.
#[utoipa::path(
    get,
    path = "/pipelines/{name}/runs",
    tag = "pipelines",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The pipeline's name"), Limit),
    responses((status = 200, body = Vec<PipelineRun>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
async fn list_pipeline_runs(
    State(cde): State<Arc<Cde>>,
    Path(name): Path<String>,
    Query(query): Query<Limit>,
) -> Result<Json<Vec<PipelineRun>>, ApiError> {
    cde.store.pipeline(&name).await?;
    let limit = query.limit.unwrap_or(20).clamp(1, 1000);
    Ok(Json(cde.store.pipeline_runs(&name, limit).await?))
}

/// A pipeline run: each step's connector run, status and rows in and out.
#[utoipa::path(
    get,
    path = "/pipeline-runs/{id}",
    tag = "pipelines",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The pipeline run's id")),
    responses((status = 200, body = PipelineRun), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
async fn show_pipeline_run(
    State(cde): State<Arc<Cde>>,
    Path(id): Path<String>,
) -> Result<Json<PipelineRun>, ApiError> {
    Ok(Json(cde.store.pipeline_run(&id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DatasetQuery {
    /// `pipeline/<name>`, `pipeline/<name>/feedback` or `connector/<code>`.
    name: String,
}

/// The versions of a dataset, newest first.
#[utoipa::path(
    get,
    path = "/datasets",
    tag = "pipelines",
    security(("bearer" = [])),
    params(DatasetQuery),
    responses((status = 200, body = Vec<Dataset>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
)]
async fn list_dataset_versions(
    State(cde): State<Arc<Cde>>,
    Query(query): Query<DatasetQuery>,
) -> Result<Json<Vec<Dataset>>, ApiError> {
    Ok(Json(cde.store.datasets(&query.name).await?))
}
