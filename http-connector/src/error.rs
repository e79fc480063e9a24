//! The engine's errors: [`SpecError`] for a document that cannot be used, and the
//! transport's [`Failure`] (with its kind) for everything that goes wrong during a run.

use crate::transport::{Failure, FailureKind};

/// A spec document that cannot be used; `path` is the JSON path of the problem
/// (`sourceSpec.attributes.paginationParams.limitValue`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parsing the spec: {path}: {message}")]
pub struct SpecError {
    pub path: String,
    pub message: String,
}

impl SpecError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<SpecError> for Failure {
    fn from(e: SpecError) -> Self {
        configuration(e.to_string())
    }
}

pub fn configuration(message: impl Into<String>) -> Failure {
    failure(FailureKind::Configuration, message)
}

pub fn transient(message: impl Into<String>) -> Failure {
    failure(FailureKind::Transient, message)
}

pub fn api(message: impl Into<String>) -> Failure {
    failure(FailureKind::Api, message)
}

fn failure(kind: FailureKind, message: impl Into<String>) -> Failure {
    Failure {
        kind,
        status: None,
        message: message.into(),
    }
}

/// The exit status of a run that failed with `kind` (see the crate documentation).
pub fn exit_code(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::Configuration => EX_CONFIG,
        FailureKind::Transient => EX_TEMPFAIL,
        FailureKind::Api => 1,
    }
}

/// sysexits.h: a configuration error.
pub const EX_CONFIG: u8 = 78;
/// sysexits.h: a temporary failure; the run may be retried.
pub const EX_TEMPFAIL: u8 = 75;

pub fn kind_name(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Configuration => "configuration",
        FailureKind::Transient => "transient",
        FailureKind::Api => "api",
    }
}
