//! Runs: create (queue), list, show, cancel, and their output records.

use std::io::BufRead;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, Path, Query};

use crate::model::{Run, RunFilter, RunRequest, RunStatus};
use crate::Cde;
use crate::{dataset, rundir};

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

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
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

/// A page of output records.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutputPage {
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<serde_json::Value>,
    pub offset: usize,
    /// The `offset` of the next page; null when there are no more records (yet: a running
    /// run may still add some).
    pub next_offset: Option<usize>,
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
    let run = cde.store.run(&id).await?;
    // A successful run's validated output, else what the run wrote (so far), opened as
    // the hostile file it may be.
    let (name, relative) = match query.kind {
        OutputType::Output => (
            dataset::connector_dataset(&run.connector_code),
            rundir::OUTPUT,
        ),
        OutputType::Feedback => (
            dataset::connector_feedback_dataset(&run.connector_code),
            rundir::FEEDBACK,
        ),
    };
    let recorded = cde.store.dataset_of_run(&name, &run.id).await?;
    let offset = query.offset;
    let (records, more) = tokio::task::spawn_blocking(move || {
        let file = match recorded {
            Some(dataset) => Some(
                std::fs::File::open(dataset.path())
                    .map_err(crate::Error::file("opening", dataset.path()))?,
            ),
            None => rundir::open(
                std::path::Path::new(&run.run_dir),
                relative,
                run.limits.disk_bytes(),
            )?,
        };
        read_records(file, offset, limit)
    })
    .await
    .map_err(|e| crate::Error::Other(format!("reading the output of a run: {e}")))??;
    Ok(Json(OutputPage {
        next_offset: more.then_some(offset + records.len()),
        records,
        offset,
    }))
}

/// Up to `limit` records after the first `offset` of a JSONL file, and whether more follow.
/// A last line without its newline is still being written and does not count yet.
fn read_records(
    file: Option<std::fs::File>,
    offset: usize,
    limit: usize,
) -> crate::Result<(Vec<serde_json::Value>, bool)> {
    let Some(file) = file else {
        return Ok((vec![], false));
    };
    let mut reader = std::io::BufReader::new(file);
    let mut line = String::new();
    let mut next_line = |line: &mut String| -> crate::Result<bool> {
        line.clear();
        reader
            .read_line(line)
            .map_err(|e| crate::Error::RunOutput(format!("reading: {e}")))?;
        Ok(line.ends_with('\n'))
    };
    for _ in 0..offset {
        if !next_line(&mut line)? {
            return Ok((vec![], false));
        }
    }
    let mut records = Vec::with_capacity(limit);
    while records.len() < limit && next_line(&mut line)? {
        let number = offset + records.len() + 1;
        records.push(
            serde_json::from_str(&line)
                .map_err(|e| crate::Error::RunOutput(format!("line {number} is not JSON: {e}")))?,
        );
    }
    let more = records.len() == limit && next_line(&mut line)?;
    Ok((records, more))
}
