//! A run's log lines: all at once, or followed live over server-sent events.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use container_api::LogLine;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Query};
use crate::Cde;

pub fn routes() -> OpenApiRouter<Arc<Cde>> {
    OpenApiRouter::new().routes(routes!(run_logs))
}

/// How often a follower looks for new lines.
const POLL: Duration = Duration::from_millis(200);

/// One log line of a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogEntry {
    /// Position in the run's log, from 0; `from` and `Last-Event-ID` take it.
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// `api` (sent by the connector to its Container API), `stdout` or `stderr`.
    #[schema(example = "api")]
    pub source: String,
    #[schema(example = "info")]
    pub level: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Value>,
}

impl From<(i64, LogLine)> for LogEntry {
    fn from((seq, line): (i64, LogLine)) -> Self {
        Self {
            seq,
            at: line.at,
            source: line.source.as_str().to_owned(),
            level: line.level,
            message: line.message,
            context: line.context,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogsQuery {
    /// The first line's `seq` (default 0).
    #[serde(default)]
    from: i64,
    /// Follow the log as server-sent events (as does `Accept: text/event-stream`).
    #[serde(default)]
    follow: bool,
}

/// A run's log lines from `from` on.
///
/// Followed (`follow=true` or `Accept: text/event-stream`), the answer is a stream of
/// server-sent events: one `log` event per line (data: the line as JSON, id: its `seq`, so
/// a reconnect with `Last-Event-ID` resumes after it), and once the run has finished and
/// every line was sent, one `end` event whose data is the finished run.
#[utoipa::path(
    get,
    path = "/runs/{id}/logs",
    tag = "runs",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The run's id"),
        LogsQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "When following: resume after this `seq`"),
    ),
    responses(
        (status = 200, content(
            (Vec<LogEntry> = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
async fn run_logs(
    State(cde): State<Arc<Cde>>,
    Path(id): Path<String>,
    Query(query): Query<LogsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let wants_events = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"));
    if !(query.follow || wants_events) {
        let lines = cde.store.logs(&id, query.from).await?;
        return Ok(Json(lines.into_iter().map(LogEntry::from).collect::<Vec<_>>()).into_response());
    }
    let from = match headers.get("last-event-id") {
        None => query.from,
        Some(last) => {
            let last: i64 = last
                .to_str()
                .ok()
                .and_then(|last| last.trim().parse().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID: not a log line's seq"))?;
            last + 1
        }
    };
    cde.store.run(&id).await?;
    let stream = follow(Follower {
        cde,
        id,
        next: from,
        pending: VecDeque::new(),
        finished: false,
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct Follower {
    cde: Arc<Cde>,
    id: String,
    next: i64,
    pending: VecDeque<Event>,
    finished: bool,
}

impl Follower {
    /// Queues the new lines, and the `end` event once the run has finished.
    async fn poll(&mut self) -> crate::Result<()> {
        // The status is read first: a run is recorded finished only after its last line.
        let run = self.cde.store.run(&self.id).await?;
        for (seq, line) in self.cde.store.logs(&self.id, self.next).await? {
            let data = serde_json::to_string(&LogEntry::from((seq, line))).map_err(
                crate::Error::json(format!("serving the log of run {}", self.id)),
            )?;
            self.pending
                .push_back(Event::default().event("log").id(seq.to_string()).data(data));
            self.next = seq + 1;
        }
        if run.status.is_finished() {
            self.pending.push_back(Event::default().event("end").data(
                serde_json::to_string(&run).map_err(crate::Error::json(format!(
                    "serving the end of run {}",
                    self.id
                )))?,
            ));
            self.finished = true;
        }
        Ok(())
    }
}

/// The follower's events until the `end` event. On a store error the stream just ends; the
/// client reconnects with `Last-Event-ID`.
fn follow(follower: Follower) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(follower, |mut follower| async move {
        loop {
            if let Some(event) = follower.pending.pop_front() {
                return Some((Ok(event), follower));
            }
            if follower.finished {
                return None;
            }
            if let Err(e) = follower.poll().await {
                tracing::warn!(run = %follower.id, "following the log: {e}");
                return None;
            }
            if follower.pending.is_empty() {
                tokio::time::sleep(POLL).await;
            }
        }
    })
}
