//! The Container API: the per-run HTTP server a connector talks to (see
//! `README.md`). One module per concept of the API; [`server`] wires them into a
//! router and owns the lifecycle (bind, serve, graceful shutdown, summary).

pub mod classification;
pub mod cli;
mod conn;
pub mod diagnostics;
pub mod error;
mod extract;
mod flatten;
pub mod input;
mod json;
pub mod logs;
pub mod mask;
mod nofollow;
pub mod openapi;
pub mod output;
mod ping;
mod scan;
pub mod server;
pub mod state;
pub mod storage;
pub mod summary;
pub mod supervisor;

pub use diagnostics::{Diagnostics, SignalOutcome};
pub use error::ApiError;
pub use logs::{append_log_line, open_log_file, LogLine, LogSource, LOG_FILE, LOG_LEVELS};
pub use mask::Masker;
pub use openapi::{openapi, openapi_json};
pub use output::OutputType;
pub use server::{router, serve, AppState, Config, Server};
pub use summary::{FileSummary, Summary, SUMMARY_FILE};

/// 201 `{"message":"Written successfully."}`, the answer of every successful write.
pub(crate) type Written = (axum::http::StatusCode, axum::Json<openapi::Message>);

pub(crate) fn written() -> Written {
    (
        axum::http::StatusCode::CREATED,
        axum::Json(openapi::Message::new("Written successfully.")),
    )
}
