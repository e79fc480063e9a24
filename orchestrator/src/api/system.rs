//! Health and Prometheus metrics; both open, for probes and scrapers.

use crate::error::ErrorCode;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};

use crate::model::RunStatus;
use crate::Cde;
use strum::VariantArray;

pub fn routes() -> OpenApiRouter<Arc<Cde>> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// Whether the server can reach its store.
#[utoipa::path(
    get,
    path = "/health",
    tag = "system",
    responses(
        (status = 200, body = Health),
        (status = 503, description = "The store cannot be reached", body = ErrorBody),
    ),
)]
async fn health(State(cde): State<Arc<Cde>>) -> Result<Json<Health>, ApiError> {
    match cde.store.ping().await {
        Ok(()) => Ok(Json(Health {
            status: "ok".into(),
        })),
        Err(e) => {
            tracing::error!("health: {e}");
            Err(ApiError::new(
                ErrorCode::Unavailable,
                "the store cannot be reached",
            ))
        }
    }
}

/// Prometheus metrics: `cde_runs{status}` (runs in the store by status) and
/// `process_resident_memory_bytes`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    responses(
        (status = 200, body = String, content_type = "text/plain; version=0.0.4"),
        (status = 500, body = ErrorBody),
    ),
)]
async fn metrics(
    State(cde): State<Arc<Cde>>,
) -> Result<([(header::HeaderName, &'static str); 1], String), ApiError> {
    let counts: HashMap<String, i64> = cde.store.count_by_status().await?.into_iter().collect();
    let mut text = String::from(
        "# HELP cde_runs Runs in the store, by status.\n\
         # TYPE cde_runs gauge\n",
    );
    for &status in RunStatus::VARIANTS {
        let count = counts.get(status.as_str()).copied().unwrap_or(0);
        let _ = writeln!(text, "cde_runs{{status=\"{status}\"}} {count}");
    }
    if let Some(bytes) = resident_memory_bytes() {
        let _ = write!(
            text,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\n\
             process_resident_memory_bytes {bytes}\n"
        );
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

/// From `/proc/self/status` (`VmRSS:  1234 kB`); `None` where there is no procfs.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = kib.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}
