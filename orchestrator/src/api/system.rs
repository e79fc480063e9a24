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

use crate::model::{ListenerStatus, RunStatus};
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

/// Prometheus metrics: `cde_runs{status}` (runs in the store by status), for each webhook
/// listener `cde_listener_events_received_total`, `_deduplicated_total`,
/// `cde_listener_deliveries_rejected_total`, `cde_listener_events_consumed_total`,
/// `cde_listener_events_pending` and `cde_listener_oldest_pending_seconds` (labels
/// `pipeline`, `listener`), and `process_resident_memory_bytes`.
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
    listener_metrics(&mut text, &cde.all_listeners().await?);
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

fn listener_metrics(text: &mut String, listeners: &[ListenerStatus]) {
    if listeners.is_empty() {
        return;
    }
    type Value = fn(&ListenerStatus) -> Option<f64>;
    let metrics: [(&str, &str, &str, Value); 6] = [
        (
            "cde_listener_events_received_total",
            "counter",
            "Events appended to the listener's log.",
            |l| Some(l.received as f64),
        ),
        (
            "cde_listener_events_deduplicated_total",
            "counter",
            "Delivered events already in the log, since the server started.",
            |l| Some(l.deduplicated as f64),
        ),
        (
            "cde_listener_deliveries_rejected_total",
            "counter",
            "Deliveries refused, since the server started.",
            |l| Some(l.rejected as f64),
        ),
        (
            "cde_listener_events_consumed_total",
            "counter",
            "Events given to successful pipeline runs.",
            |l| Some(l.consumed as f64),
        ),
        (
            "cde_listener_events_pending",
            "gauge",
            "Events waiting for the next successful pipeline run.",
            |l| Some(l.pending as f64),
        ),
        (
            "cde_listener_oldest_pending_seconds",
            "gauge",
            "Age of the oldest pending event.",
            |l| l.oldest_pending_secs,
        ),
    ];
    for (name, kind, help, value) in metrics {
        let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for listener in listeners {
            if let Some(value) = value(listener) {
                let _ = writeln!(
                    text,
                    "{name}{{pipeline=\"{}\",listener=\"{}\"}} {value}",
                    listener.pipeline, listener.name
                );
            }
        }
    }
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
