//! `POST /storage/internal`, `POST /store/to-transport` and `GET /processes/...`:
//! asynchronous copies of files the connector wrote into its working directory.
//!
//! Only files of the working directory can be copied: `<run-dir>/work`, which the
//! connector sees at `/cde/work` (`CDE_WORK_DIR`). Copies land
//! in `<run-dir>/storage/{internal,transport}/<remote_file>`, written under a
//! temporary name and renamed when complete and synced.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::task::JoinHandle;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::extract::ApiPath;
use crate::json::{self, JsonBody};
use crate::openapi::{Message, ValidationError};
use crate::{ApiError, AppState};

pub const WORK_DIR: &str = "work";
/// Where the connector sees `<run-dir>/work`.
pub const CONTAINER_WORK_DIR: &str = "/cde/work";
pub const STORAGE_DIR: &str = "storage";

/// Assumed copy speed for the estimate before the first bytes have moved.
const ASSUMED_BYTES_PER_SECOND: f64 = 100.0 * 1024.0 * 1024.0;

#[derive(Clone, Copy, Debug)]
enum Destination {
    Internal,
    Transport,
}

impl Destination {
    fn dir(self) -> &'static str {
        match self {
            Self::Internal => "internal",
            Self::Transport => "transport",
        }
    }
}

struct Process {
    id: Uuid,
    total: u64,
    done: AtomicU64,
    started: Instant,
    /// Set once the copy ended: whether it succeeded.
    succeeded: OnceLock<bool>,
}

/// Status of a process: `pending` while the copy runs, then `success` or `failed`.
#[derive(Serialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProcessStatus {
    Pending,
    Success,
    Failed,
}

#[derive(Serialize, ToSchema, Debug)]
pub(crate) struct ProcessView {
    id: Uuid,
    status: ProcessStatus,
    /// `null` while pending, then 0 on success and 1 on failure.
    #[serde(rename = "exit-code")]
    #[schema(required = true)]
    exit_code: Option<i32>,
    /// Estimated from the progress so far; 0 once the process ended.
    #[serde(rename = "seconds-remaining")]
    seconds_remaining: u64,
}

impl Process {
    fn view(&self) -> ProcessView {
        let (status, exit_code) = match self.succeeded.get() {
            None => (ProcessStatus::Pending, None),
            Some(true) => (ProcessStatus::Success, Some(0)),
            Some(false) => (ProcessStatus::Failed, Some(1)),
        };
        let seconds_remaining = match status {
            ProcessStatus::Pending => {
                let done = self.done.load(Ordering::Relaxed);
                let elapsed = self.started.elapsed().as_secs_f64();
                let rate = if done > 0 && elapsed > 0.0 {
                    done as f64 / elapsed
                } else {
                    ASSUMED_BYTES_PER_SECOND
                };
                (self.total.saturating_sub(done) as f64 / rate).ceil() as u64
            }
            _ => 0,
        };
        ProcessView {
            id: self.id,
            status,
            exit_code,
            seconds_remaining,
        }
    }
}

/// The copies of a run, in the order they were started (ids are UUIDv7).
pub(crate) struct Storage {
    work_dir: PathBuf,
    storage_dir: PathBuf,
    processes: Mutex<BTreeMap<Uuid, Arc<Process>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Storage {
    pub(crate) fn new(run_dir: &Path) -> Self {
        Self {
            work_dir: run_dir.join(WORK_DIR),
            storage_dir: run_dir.join(STORAGE_DIR),
            processes: Mutex::default(),
            tasks: Mutex::default(),
        }
    }

    fn processes(&self) -> std::sync::MutexGuard<'_, BTreeMap<Uuid, Arc<Process>>> {
        self.processes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn process(&self, id: &str) -> Result<ProcessView, ApiError> {
        let id: Uuid = id.parse().map_err(|_| ApiError::ProcessNotFound)?;
        let processes = self.processes();
        processes
            .get(&id)
            .map(|p| p.view())
            .ok_or(ApiError::ProcessNotFound)
    }

    fn pending(&self) -> Vec<ProcessView> {
        self.processes()
            .values()
            .filter(|p| p.succeeded.get().is_none())
            .map(|p| p.view())
            .collect()
    }

    /// `source_file` relative to the working directory, or absolute under
    /// `/cde/work` (as the connector sees it) or under `<run-dir>/work` (development
    /// mode, where the connector is a plain process). No `..`, no symlink out of it.
    fn source(&self, source: &str) -> Result<(PathBuf, u64), ApiError> {
        let invalid = |problem: &str| ApiError::validation("source_file", problem);
        let outside = || invalid("This value should be a path inside the working directory.");
        let missing = || invalid("This file does not exist.");
        let path = Path::new(source);
        if source.contains('\0') {
            return Err(missing());
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(outside());
        }
        let root = std::path::absolute(&self.work_dir).map_err(|_| missing())?;
        let relative = if path.is_absolute() {
            path.strip_prefix(CONTAINER_WORK_DIR)
                .or_else(|_| path.strip_prefix(&root))
                .map_err(|_| outside())?
        } else {
            path
        };
        let real = root.join(relative).canonicalize().map_err(|_| missing())?;
        if !real.starts_with(root.canonicalize().map_err(|_| missing())?) {
            return Err(outside());
        }
        let metadata = std::fs::metadata(&real).map_err(|_| missing())?;
        if !metadata.is_file() {
            return Err(invalid("This value should be a file."));
        }
        Ok((real, metadata.len()))
    }

    fn destination(&self, to: Destination, remote: &str) -> Result<PathBuf, ApiError> {
        let path = Path::new(remote);
        let relative = !remote.contains('\0')
            && path
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
            && path.components().any(|c| matches!(c, Component::Normal(_)));
        if !relative {
            return Err(ApiError::validation(
                "remote_file",
                "This value should be a relative file path without \"..\".",
            ));
        }
        Ok(self.storage_dir.join(to.dir()).join(path))
    }

    fn start(&self, to: Destination, body: &str, max_depth: usize) -> Result<Uuid, ApiError> {
        let mut body = json::parse_object(body, max_depth)?;
        let source = string_field(&mut body, "source_file");
        let remote = string_field(&mut body, "remote_file");
        let (source, remote) = match (source, remote) {
            (Ok(s), Ok(r)) => (s, r),
            (s, r) => {
                let errors = [s.err(), r.err()].into_iter().flatten().flatten().collect();
                return Err(ApiError::Validation(errors));
            }
        };
        let (source, total) = self.source(&source)?;
        let destination = self.destination(to, &remote)?;
        let process = Arc::new(Process {
            id: Uuid::now_v7(),
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
            succeeded: OnceLock::new(),
        });
        self.processes().insert(process.id, process.clone());
        let id = process.id;
        let task = tokio::task::spawn_blocking(move || {
            let result = copy(&source, &destination, &process);
            if let Err(e) = &result {
                tracing::warn!(
                    error = %e,
                    source = %source.display(),
                    destination = %destination.display(),
                    "copy failed"
                );
            }
            let _ = process.succeeded.set(result.is_ok());
        });
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
        Ok(id)
    }

    /// Waits for the copies still running; used at shutdown.
    pub(crate) async fn wait(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// `Ok(value)` or the field's validation problem.
fn string_field(
    body: &mut Map<String, Value>,
    field: &'static str,
) -> Result<String, Option<(String, String)>> {
    let problem = |p: &str| Err(Some((field.to_string(), p.to_string())));
    match body.remove(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            problem("This value should not be blank.")
        }
        Some(_) => problem("This value should be of type string."),
    }
}

fn copy(source: &Path, destination: &Path, process: &Process) -> io::Result<()> {
    let dir = destination
        .parent()
        .ok_or_else(|| io::Error::other("no parent"))?;
    std::fs::create_dir_all(dir)?;
    let name = destination
        .file_name()
        .ok_or_else(|| io::Error::other("no file name"))?;
    let partial = dir.join(format!(".{}.{}.part", name.to_string_lossy(), process.id));
    let result = (|| {
        let mut from = File::open(source)?;
        let mut to = crate::nofollow::create_new(&partial)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            to.write_all(&buf[..n])?;
            process.done.fetch_add(n as u64, Ordering::Relaxed);
        }
        to.sync_all()?;
        std::fs::rename(&partial, destination)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// `POST /storage/internal` and `POST /store/to-transport` body.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body; parsed by hand for the contract's messages
pub(crate) struct CopyRequest {
    /// A file in the working directory: relative to it, or absolute under `/cde/work`.
    #[schema(example = "export.csv")]
    source_file: String,
    /// Where to put it, relative to the storage; no `..`.
    #[schema(example = "exports/export.csv")]
    remote_file: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ProcessStarted {
    message: String,
    data: ProcessId,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ProcessId {
    id: Uuid,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ProcessResponse {
    message: String,
    data: ProcessView,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ProcessList {
    message: String,
    data: Vec<ProcessView>,
}

async fn start_copy(
    state: AppState,
    to: Destination,
    body: Result<JsonBody, ApiError>,
) -> Result<(StatusCode, Json<ProcessStarted>), ApiError> {
    let JsonBody(body) = body?;
    let id = tokio::task::spawn_blocking(move || {
        state.storage().start(to, &body, state.config().max_depth)
    })
    .await??;
    Ok((
        StatusCode::ACCEPTED,
        Json(ProcessStarted {
            message: "Copy started.".into(),
            data: ProcessId { id },
        }),
    ))
}

/// Copies a file into the run's internal storage
#[utoipa::path(
    post,
    path = "/storage/internal",
    operation_id = "store_internal",
    tag = "storage",
    request_body = CopyRequest,
    responses(
        (status = 202, description = "The copy runs; follow it with `GET /processes/{id}`.", body = ProcessStarted,
         links(("GetProcess" = (operation_id = "get_process", parameters(("id" = "$response.body#/data/id")))))),
        (status = 400, description = "Invalid request; nothing is copied.", body = ValidationError,
         example = json!({"message": "Validation failed", "errors": {"source_file": "This file does not exist."}})),
        (status = 413, description = "Body over the configured limit.", body = Message),
    )
)]
pub(crate) async fn store_internal(
    State(state): State<AppState>,
    body: Result<JsonBody, ApiError>,
) -> Result<(StatusCode, Json<ProcessStarted>), ApiError> {
    start_copy(state, Destination::Internal, body).await
}

/// Copies a file to the transport storage
#[utoipa::path(
    post,
    path = "/store/to-transport",
    operation_id = "store_to_transport",
    tag = "storage",
    request_body = CopyRequest,
    responses(
        (status = 202, description = "The copy runs; follow it with `GET /processes/{id}`.", body = ProcessStarted,
         links(("GetProcess" = (operation_id = "get_process", parameters(("id" = "$response.body#/data/id")))))),
        (status = 400, description = "Invalid request; nothing is copied.", body = ValidationError),
        (status = 413, description = "Body over the configured limit.", body = Message),
    )
)]
pub(crate) async fn store_to_transport(
    State(state): State<AppState>,
    body: Result<JsonBody, ApiError>,
) -> Result<(StatusCode, Json<ProcessStarted>), ApiError> {
    start_copy(state, Destination::Transport, body).await
}

/// Shows a process
#[utoipa::path(
    get,
    path = "/processes/{id}",
    operation_id = "get_process",
    tag = "storage",
    params(("id" = String, Path, description = "The id answered when the process started.")),
    responses(
        (status = 200, description = "The process.", body = ProcessResponse,
         example = json!({"message": "", "data": {"id": "0190b6a4-8c2e-7c1a-9d51-3f1e2a4b5c6d", "status": "success", "exit-code": 0, "seconds-remaining": 0}})),
        (status = 404, description = "No such process.", body = Message,
         example = json!({"message": "Process not found."})),
    )
)]
pub(crate) async fn get_process(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProcessResponse>, ApiError> {
    Ok(Json(ProcessResponse {
        message: String::new(),
        data: state.storage().process(&id)?,
    }))
}

/// Lists the pending processes
#[utoipa::path(
    get,
    path = "/processes/pending",
    operation_id = "pending_processes",
    tag = "storage",
    responses(
        (status = 200, description = "Processes still running, oldest first.", body = ProcessList),
    )
)]
pub(crate) async fn pending_processes(State(state): State<AppState>) -> Json<ProcessList> {
    Json(ProcessList {
        message: String::new(),
        data: state.storage().pending(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(total: u64, done: u64, succeeded: Option<bool>) -> Arc<Process> {
        let process = Process {
            id: Uuid::now_v7(),
            total,
            done: AtomicU64::new(done),
            started: Instant::now(),
            succeeded: OnceLock::new(),
        };
        if let Some(succeeded) = succeeded {
            process.succeeded.set(succeeded).unwrap();
        }
        Arc::new(process)
    }

    #[test]
    fn views_by_state() {
        let view = process(300 * 1024 * 1024, 0, None).view();
        assert_eq!(
            (view.status, view.exit_code, view.seconds_remaining),
            (ProcessStatus::Pending, None, 3)
        );
        let view = process(10, 10, Some(true)).view();
        assert_eq!(
            (view.status, view.exit_code, view.seconds_remaining),
            (ProcessStatus::Success, Some(0), 0)
        );
        let view = process(10, 3, Some(false)).view();
        assert_eq!(
            (view.status, view.exit_code, view.seconds_remaining),
            (ProcessStatus::Failed, Some(1), 0)
        );
        let json = serde_json::to_value(process(1, 0, None).view()).unwrap();
        assert_eq!(json["exit-code"], Value::Null);
        assert_eq!(json["status"], "pending");
    }

    #[test]
    fn pending_lists_unfinished_processes_oldest_first() {
        let storage = Storage::new(Path::new("/nonexistent"));
        let all = [
            process(1, 0, None),
            process(1, 1, Some(true)),
            process(1, 0, None),
            process(1, 0, Some(false)),
        ];
        for p in &all {
            storage.processes().insert(p.id, p.clone());
        }
        let pending: Vec<Uuid> = storage.pending().iter().map(|v| v.id).collect();
        assert_eq!(pending, vec![all[0].id, all[2].id]);
        assert_eq!(
            storage.process(&all[1].id.to_string()).unwrap().status,
            ProcessStatus::Success
        );
    }
}
