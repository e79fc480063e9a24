//! `POST /logs/{level}` and the `logs.jsonl` line format shared with the orchestrator.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::extract::State;
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;

use crate::extract::ApiPath;
use crate::json::{self, JsonBody};
use crate::mask::{LineMasker, Masker};
use crate::openapi::{Message, ValidationError};
use crate::{written, ApiError, AppState, Written};

pub const LOG_LEVELS: [&str; 10] = [
    "success",
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
    "report",
];

pub const LOG_FILE: &str = "logs.jsonl";

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    Api,
    Stdout,
    Stderr,
    /// Lines the orchestrator adds about the run, e.g. warnings.
    Cde,
}

impl LogSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LogSource::Api => "api",
            LogSource::Stdout => "stdout",
            LogSource::Stderr => "stderr",
            LogSource::Cde => "cde",
        }
    }
}

impl std::str::FromStr for LogSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "api" => Ok(LogSource::Api),
            "stdout" => Ok(LogSource::Stdout),
            "stderr" => Ok(LogSource::Stderr),
            "cde" => Ok(LogSource::Cde),
            other => Err(format!("unknown log source {other:?}")),
        }
    }
}

/// One line of `logs.jsonl`, e.g.
/// `{"at":"2025-01-02T03:04:05.123456Z","source":"api","level":"info","message":"hi","context":{"a":1}}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LogLine {
    #[serde(serialize_with = "rfc3339_micros")]
    pub at: DateTime<Utc>,
    pub source: LogSource,
    pub level: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

impl LogLine {
    /// A line stamped with the current time, truncated to microseconds.
    pub fn now(
        source: LogSource,
        level: impl Into<String>,
        message: impl Into<String>,
        context: Option<Value>,
    ) -> Self {
        Self {
            at: Utc::now().trunc_subsecs(6),
            source,
            level: level.into(),
            message: message.into(),
            context,
        }
    }
}

fn rfc3339_micros<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// Opens (creating it if needed) a log file in append mode, as [`append_log_line`] requires.
/// A symlink (the connector may have planted one) or anything but a regular file is refused.
pub fn open_log_file(path: &Path) -> io::Result<File> {
    crate::nofollow::open_append(path)
}

/// Appends `line` plus `\n` to `file`, which must be opened in append mode (see
/// [`open_log_file`]). The line goes out in a single `write(2)`, so lines appended
/// concurrently by other processes never interleave with it.
pub fn append_log_line(file: &File, line: &LogLine) -> io::Result<()> {
    let mut buf = serde_json::to_vec(line)?;
    buf.push(b'\n');
    // A regular file accepts the whole buffer in one write(2); write_all only loops
    // on a short write, which for a regular file means the disk is full.
    (&*file).write_all(&buf)
}

/// The run's `logs.jsonl` as the API writes it, plus per-level counts for the summary.
pub(crate) struct ApiLogs {
    file: File,
    counts: [AtomicU64; LOG_LEVELS.len()],
    masker: Masker,
    /// The messages are one stream of lines, so a value split over two is caught too.
    messages: Mutex<LineMasker>,
}

impl ApiLogs {
    pub(crate) fn open(run_dir: &Path, masker: &Masker) -> io::Result<Self> {
        Ok(Self {
            file: open_log_file(&run_dir.join(LOG_FILE))?,
            counts: Default::default(),
            masker: masker.clone(),
            messages: Mutex::new(masker.lines()),
        })
    }

    /// Masks the secret values in `message` and `context`.
    fn mask(&self, message: String, context: &mut Option<Value>) -> String {
        if self.masker.is_empty() {
            return message;
        }
        if let Some(context) = context {
            self.masker.mask_value(context);
        }
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .mask(&message)
    }

    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    pub(crate) fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        LOG_LEVELS
            .iter()
            .zip(&self.counts)
            .map(|(level, n)| (*level, n.load(Ordering::Relaxed)))
    }

    fn append(&self, level_index: usize, line: &LogLine) -> io::Result<()> {
        append_log_line(&self.file, line)?;
        self.counts[level_index].fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A log level of `POST /logs/{level}`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // documents the path parameter
pub(crate) enum LogLevel {
    Success,
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
    Report,
}

/// `POST /logs/{level}` body.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body; parsed by hand for the contract's messages
pub(crate) struct LogRequest {
    /// Not blank.
    #[schema(example = "Fetched 120 products.")]
    message: String,
    /// Kept with the line: an object, or an array (PHP clients send `[]` for none).
    #[schema(value_type = Option<LogContext>)]
    context: Option<Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents that a context is an object or an array
pub(crate) enum LogContext {
    Object(std::collections::HashMap<String, Value>),
    List(Vec<Value>),
}

/// Writes a log line
///
/// Appended to the run's `logs.jsonl` with the level and a timestamp; counted per
/// level in `summary.json`.
#[utoipa::path(
    post,
    path = "/logs/{level}",
    operation_id = "write_log",
    tag = "logs",
    params(("level" = inline(LogLevel), Path, description = "The level of the line.")),
    request_body(content = LogRequest, example = json!({"message": "Fetched 120 products.", "context": {"page": 3}})),
    responses(
        (status = 201, description = "Written.", body = Message,
         example = json!({"message": "Written successfully."})),
        (status = 400, description = "Invalid request; nothing was written.", body = ValidationError,
         example = json!({"message": "Validation failed", "errors": {"message": "This value should not be blank."}})),
        (status = 413, description = "Body over the configured limit.", body = Message),
    )
)]
pub(crate) async fn write_log(
    State(state): State<AppState>,
    ApiPath(level): ApiPath<String>,
    body: Result<JsonBody, ApiError>,
) -> Result<Written, ApiError> {
    let level_index = LOG_LEVELS.iter().position(|l| *l == level).ok_or_else(|| {
        ApiError::validation(
            "level",
            format!("This value should be one of: {}.", LOG_LEVELS.join(", ")),
        )
    })?;
    let JsonBody(body) = body?;
    let (message, mut context) = parse_body(json::parse_value(&body, state.config().max_depth)?)?;
    let logs = state.logs();
    let message = logs.mask(message, &mut context);
    let line = LogLine::now(LogSource::Api, level, message, context);
    // A single small append; not worth a trip to the blocking pool.
    logs.append(level_index, &line)?;
    Ok(written())
}

fn parse_body(body: Value) -> Result<(String, Option<Value>), ApiError> {
    let blank = || ApiError::validation("message", "This value should not be blank.");
    let Value::Object(mut body) = body else {
        return Err(blank());
    };
    let message = match body.remove("message") {
        Some(Value::String(m)) if !m.trim().is_empty() => m,
        None | Some(Value::Null) | Some(Value::String(_)) => return Err(blank()),
        Some(_) => {
            return Err(ApiError::validation(
                "message",
                "This value should be of type string.",
            ))
        }
    };
    let context = match body.remove("context") {
        None | Some(Value::Null) => None,
        Some(context @ (Value::Object(_) | Value::Array(_))) => Some(context),
        Some(_) => {
            return Err(ApiError::validation(
                "context",
                "This value should be of type array.",
            ))
        }
    };
    Ok((message, context))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let at = DateTime::parse_from_rfc3339("2025-01-02T03:04:05.1Z")
            .unwrap()
            .with_timezone(&Utc);
        let line = LogLine {
            at,
            source: LogSource::Stderr,
            level: "error".into(),
            message: "boom".into(),
            context: None,
        };
        let text = serde_json::to_string(&line).unwrap();
        assert_eq!(
            text,
            r#"{"at":"2025-01-02T03:04:05.100000Z","source":"stderr","level":"error","message":"boom"}"#
        );
        assert_eq!(serde_json::from_str::<LogLine>(&text).unwrap(), line);
    }

    #[test]
    fn append_writes_one_line_per_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        let file = open_log_file(&path).unwrap();
        let line = LogLine::now(
            LogSource::Api,
            "info",
            "a",
            Some(serde_json::json!({"k": 1})),
        );
        append_log_line(&file, &line).unwrap();
        append_log_line(&open_log_file(&path).unwrap(), &line).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<LogLine> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, vec![line.clone(), line]);
    }
}
