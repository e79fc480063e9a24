//! `GET /state` and `PUT /state`: a connector's incremental state (cursors, schedule
//! windows), our addition to the contract. cde puts the state of the last successful run
//! in `input/state.json` before the run; what the run puts goes to `output/state.json`,
//! and cde keeps it for the next run only when this run succeeds.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::json::{self, JsonBody};
use crate::openapi::{Message, ValidationError};
use crate::{ApiError, AppState};

/// The previous successful run's state, written by cde.
pub const PREVIOUS_STATE: &str = "input/state.json";
/// The state this run puts, read by cde after a success.
pub const NEW_STATE: &str = "output/state.json";
/// The largest state accepted, as its JSON text.
pub const MAX_STATE_BYTES: usize = 1024 * 1024;

/// The state file of the run; one writer at a time.
pub(crate) struct RunState {
    run_dir: PathBuf,
    /// What this run put last, once it put something.
    put: Mutex<Option<Map<String, Value>>>,
}

impl RunState {
    pub(crate) fn new(run_dir: &Path) -> Self {
        Self {
            run_dir: run_dir.to_owned(),
            put: Mutex::new(None),
        }
    }

    /// The state this run put, else the previous run's, else `{}`.
    fn current(&self) -> Result<Map<String, Value>, ApiError> {
        if let Some(put) = self.put.lock().expect("not poisoned").clone() {
            return Ok(put);
        }
        let path = self.run_dir.join(PREVIOUS_STATE);
        let file = match crate::nofollow::open_read(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(e) => {
                return Err(ApiError::Internal(format!(
                    "reading the previous state: {e}"
                )))
            }
        };
        let mut text = String::new();
        file.take(MAX_STATE_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(|e| ApiError::Internal(format!("reading the previous state: {e}")))?;
        match serde_json::from_str(&text) {
            Ok(Value::Object(state)) => Ok(state),
            _ => Err(ApiError::Internal(
                "the previous state is not a JSON object".into(),
            )),
        }
    }

    /// Replaces `output/state.json` as a whole: a new file under a temporary name, renamed
    /// over the old one (a rename replaces a planted symlink instead of following it).
    fn put(&self, state: Map<String, Value>) -> Result<(), ApiError> {
        let text = serde_json::to_vec(&state).map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut put = self.put.lock().expect("not poisoned");
        let path = self.run_dir.join(NEW_STATE);
        let temp = path.with_file_name(format!(".state-{}.json", uuid::Uuid::new_v4()));
        // Inside the run's container; what the connector may have linked there is its own.
        let written = std::fs::create_dir_all(self.run_dir.join("output"))
            .and_then(|()| crate::nofollow::create_new(&temp))
            .and_then(|mut file| {
                file.write_all(&text)?;
                file.sync_all()?;
                std::fs::rename(&temp, &path)
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(ApiError::Internal(format!("saving the state: {e}")));
        }
        *put = Some(state);
        Ok(())
    }
}

/// `{"message": "", "data": {...}}`
#[derive(Serialize, ToSchema)]
pub(crate) struct StateAnswer {
    message: String,
    /// The state: what this run put last, else what the last successful run put, else `{}`.
    #[schema(value_type = Object)]
    data: Map<String, Value>,
}

/// `{"data": {...}}`
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // documents the body; parsed by hand for the contract's messages
pub(crate) struct StateRequest {
    /// The whole new state, a JSON object of at most 1 MiB.
    #[schema(value_type = Object)]
    data: Map<String, Value>,
}

/// Reads the connector's incremental state
///
/// Our addition. What this run put last, else the state the last successful run of the
/// same connector with the same options (or the same pipeline step) put, else `{}`.
#[utoipa::path(
    get,
    path = "/state",
    operation_id = "get_state",
    tag = "state",
    responses(
        (status = 200, description = "The state.", body = StateAnswer,
         example = json!({"message": "", "data": {"cursor": "2024-05-01T00:00:00Z"}})),
    )
)]
pub(crate) async fn get_state(
    State(state): State<AppState>,
) -> Result<Json<StateAnswer>, ApiError> {
    Ok(Json(StateAnswer {
        message: String::new(),
        data: state.run_state().current()?,
    }))
}

/// Puts the connector's incremental state
///
/// Our addition. Replaces the state as a whole; cde keeps the last state put for the next
/// run only when this run succeeds. A state holding a secret option's value is refused:
/// state is not stored encrypted.
#[utoipa::path(
    put,
    path = "/state",
    operation_id = "put_state",
    tag = "state",
    request_body(content = StateRequest, example = json!({"data": {"cursor": "2024-05-01T00:00:00Z"}})),
    responses(
        (status = 200, description = "Saved.", body = Message, example = json!({"message": "State saved."})),
        (status = 400, description = "Not a JSON object, too large, or holding a secret; nothing was saved.", body = ValidationError,
         example = json!({"message": "Validation failed", "errors": {"data": "This value should be a JSON object."}})),
    )
)]
pub(crate) async fn put_state(
    State(state): State<AppState>,
    body: Result<JsonBody, ApiError>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let JsonBody(body) = body?;
    let mut body = json::parse_object(&body, state.config().max_depth)?;
    let Some(Value::Object(data)) = body.remove("data") else {
        return Err(ApiError::validation(
            "data",
            "This value should be a JSON object.",
        ));
    };
    let text = Value::Object(data.clone()).to_string();
    if text.len() > MAX_STATE_BYTES {
        return Err(ApiError::validation(
            "data",
            format!("This value should be at most {MAX_STATE_BYTES} bytes as JSON."),
        ));
    }
    if state.config().masker.mask(&text) != text {
        return Err(ApiError::validation(
            "data",
            "This value holds a secret option's value; state is not stored encrypted.",
        ));
    }
    let run_state = state.clone();
    tokio::task::spawn_blocking(move || run_state.run_state().put(data))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok((StatusCode::OK, Json(Message::new("State saved."))))
}
