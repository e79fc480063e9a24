//! What the run's connector did that the conformance kit (`cde test`) judges: answers of
//! 400 it was given, reads after a stream said it was exhausted, how it ended after a
//! signal, the container's peak memory. Kept in `summary.json`; the orchestrator never
//! uses it for a run's outcome.
//!
//! With [`Config::reject_writes`](crate::Config::reject_writes) every write of output is
//! answered 400, as a bad request would be, so that the kit can watch the connector
//! cope with it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::server::AppState;
use crate::ApiError;

/// The report, e.g. `{"bad_requests":2,"rejected_writes":2,"reads_after_end":{"input":1},
/// "memory_peak_bytes":7340032,"signal":{"after_ms":40,"killed":false}}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Requests answered 400 (rejected writes included).
    pub bad_requests: u64,
    /// Writes answered 400 on purpose (`--reject-writes`).
    pub rejected_writes: u64,
    /// Per input stream: reads after the one that answered "exhausted" (until a restart).
    pub reads_after_end: BTreeMap<String, u64>,
    /// The peak memory of the container's cgroup, where the kernel tells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_peak_bytes: Option<u64>,
    /// How the connector ended after the first SIGTERM or SIGINT, if it got one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<SignalOutcome>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalOutcome {
    /// Milliseconds from the signal to the connector's exit.
    pub after_ms: u64,
    /// It outlived the grace period and was killed.
    pub killed: bool,
}

/// The counters, updated while the run goes on.
#[derive(Default)]
pub(crate) struct Counters {
    bad_requests: AtomicU64,
    rejected_writes: AtomicU64,
    signal: Mutex<Option<SignalOutcome>>,
}

impl Counters {
    pub(crate) fn set_signal(&self, outcome: SignalOutcome) {
        *self.signal.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    }

    pub(crate) fn report(&self, reads_after_end: BTreeMap<String, u64>) -> Diagnostics {
        Diagnostics {
            bad_requests: self.bad_requests.load(Ordering::Relaxed),
            rejected_writes: self.rejected_writes.load(Ordering::Relaxed),
            reads_after_end,
            memory_peak_bytes: memory_peak(),
            signal: *self.signal.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// Counts the answers of 400 (a layer over every route).
pub(crate) async fn count_bad_requests(
    State(state): State<AppState>,
    response: Response,
) -> Response {
    if response.status() == StatusCode::BAD_REQUEST {
        state
            .counters()
            .bad_requests
            .fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// Answers every write of output with 400 (a layer only with `reject_writes`).
pub(crate) async fn reject_writes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::POST && request.uri().path().starts_with("/output/") {
        state
            .counters()
            .rejected_writes
            .fetch_add(1, Ordering::Relaxed);
        return ApiError::validation(
            "data",
            "Rejected on purpose: the conformance kit (cde test) checks how the connector copes with a 400.",
        )
        .into_response();
    }
    next.run(request).await
}

/// The cgroup's peak memory: `memory.peak` (cgroup v2, Linux 5.19+) or
/// `memory.max_usage_in_bytes` (cgroup v1), as the container sees its own cgroup.
fn memory_peak() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.peak",
        "/sys/fs/cgroup/memory/memory.max_usage_in_bytes",
    ]
    .iter()
    .find_map(|path| std::fs::read_to_string(path).ok()?.trim().parse().ok())
}
